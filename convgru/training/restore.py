"""A trained model back from its checkpoint: the ForecastModule rebuilt from a checkpoint's own
hyperparameters and weights (sizes checked first), the configured model compared with the stored one,
and eval's data config taken from the checkpoint. What a checkpoint holds and how it is read safely
is `convgru.training.checkpoint`.
"""

import copy
import inspect
import logging

import torch
from omegaconf import OmegaConf, open_dict

from convgru._checks import shown_path
from convgru.data.resources import check_memory
from convgru.forecaster import EncoderForecaster
from convgru.training.checkpoint import MACHINE_DATA, CheckpointError, load_checkpoint, one_line, tensor_bytes
from convgru.training.cli import group_choices, override_keys
from convgru.training.module import ForecastModule
from convgru.training.paste import paste_command

log = logging.getLogger(__name__)
BANK_BEFORE_0_3 = "${paths.data_dir}/mnist_5k.npz"  # digit_bank of convgru <= 0.2.0: data/ of the clone


def stored_data_config(checkpoint: dict) -> dict | None:
    """The data config a checkpoint was trained with (None for convgru 0.1.0), with this machine's
    cache folder and no download (MACHINE_DATA): a checkpoint never says where eval writes. The
    bundled digit bank of convgru <= 0.2.0 (BANK_BEFORE_0_3) is the bundled bank now in the package."""
    data = checkpoint["hyper_parameters"].get("data")
    if data is None:
        return None
    moved = {"digit_bank": None} if data.get("digit_bank") == BANK_BEFORE_0_3 else {}
    return {**data, **moved, **{k: v for k, v in MACHINE_DATA.items() if k in data}}



def use_checkpoint_data(cfg, checkpoint: dict, overrides) -> bool:
    """Make cfg.data (a composed eval config) the checkpoint's data config (`stored_data_config`) with
    the command line's data.* settings and ~deletions on top, unless the command line chose a data
    config (data=...) or the checkpoint (convgru 0.1.0) has none; returns whether it did."""
    stored = stored_data_config(checkpoint)
    if group_choices(overrides, ("data",)):
        return False
    if stored is None:
        log.warning("%s does not record its data (written by convgru 0.1.0): evaluating on the configured data; "
                    "pass the experiment= or data.* options it was trained with", cfg.ckpt_path)
        return False
    given = {k: OmegaConf.select(cfg.data, k) for k in override_keys(overrides, "data")}
    dropped = override_keys(overrides, "data", delete=True)
    with open_dict(cfg):
        cfg.data = stored
        for key, value in given.items():
            OmegaConf.update(cfg.data, key, value, merge=False, force_add=True)
        for key in dropped:
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg.data, parent) if parent else cfg.data
            if node is not None and leaf in node:
                del node[leaf]
    return True



def check_model_config(checkpoint: dict, model: dict, path, source: str = "config", keys=None,
                       resume: bool = False) -> None:
    """Raise CheckpointError where the configured `model` (ForecastModule kwargs) and the checkpoint's
    differ in what defines the forecast: every net option and `future`, or only `keys` (dotted, such
    as "net.kernel_size"). `source` names where the configured values came from; `resume` says to
    select the checkpoint's model (a resumed run must train the same model) rather than drop options."""
    saved, given = forecast_options(checkpoint["hyper_parameters"]), forecast_options(model)
    both = saved.keys() | given.keys()
    names = sorted(both) if keys is None else [k for k in keys if k in both]
    differ = [k for k in names if _plain(saved.get(k)) != _plain(given.get(k))]
    if not differ:
        return
    lines = [f"  model.{k}: checkpoint {saved.get(k)!r}, {source} {given.get(k)!r}" for k in differ]
    if resume:
        overrides = paste_command(None, [(f"model.{k}", saved.get(k)) for k in differ])
        fix = f"Pick the model=... (or experiment=...) it was trained with, or pass: {overrides}"
    else:
        fix = "The checkpoint defines the model: drop those options (and any model=/experiment= for another model)."
    raise CheckpointError(f"the model in {shown_path(path)} does not match the {source}:\n" + "\n".join(lines)
                          + "\n" + fix)



def module_from_checkpoint(checkpoint: dict, path="checkpoint"):
    """The ForecastModule of a loaded checkpoint (its own hyperparameters and weights, not compiled)."""
    hparams = {**checkpoint["hyper_parameters"], "compile": False}
    try:
        with torch.device("meta"):  # sizes first: a checkpoint's hyperparameters must not exhaust the machine
            model = ForecastModule(**hparams)
    except (TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"cannot rebuild the model of {shown_path(path)} from its hyperparameters: "
                              f"{one_line(error)}") from None
    metric_states = [[*getattr(m, "_defaults", {}).values()] * 2 for m in model.modules()]  # state and default
    try:
        check_memory(tensor_bytes([[*model.parameters()], [*model.buffers()], metric_states]),
                     f"the model of {shown_path(path)}",
                     "its hyperparameters (model.net sizes, future) describe a model too large for this machine")
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    module = ForecastModule(**hparams)
    check_weights_fit(module, checkpoint, path)
    module.load_state_dict(checkpoint["state_dict"])
    return module


def check_weights_fit(module: torch.nn.Module, checkpoint: dict, path) -> None:
    """Raise CheckpointError (one line) unless the checkpoint's weights load into `module` (a copy is tried)."""
    try:
        copy.deepcopy(module).load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"the weights in {shown_path(path)} do not fit the model: {one_line(error)}") from None



def load_module(path, map_location="cpu"):
    """Rebuild a ForecastModule from a checkpoint's own hyperparameters and weights, safely."""
    module = module_from_checkpoint(load_checkpoint(path, map_location), path)
    return module.to(map_location) if isinstance(map_location, (str, torch.device)) else module


COMPUTE_OPTIONS = ("checkpoint_every",)  # net options of how the forecast is computed, not what it is
NET_DEFAULTS = {name: p.default for name, p in inspect.signature(EncoderForecaster).parameters.items()
                if p.default is not inspect.Parameter.empty}  # what a net option left out is built with


def forecast_options(hparams: dict) -> dict:
    """{"net.<option>": value, "future": value}: what defines a ForecastModule's forecast. A net option
    that `hparams` leaves out (a checkpoint written before the option existed, such as norm_eps) has
    EncoderForecaster's default, as the model is rebuilt with it."""
    net = {k: v for k, v in {**NET_DEFAULTS, **(hparams.get("net") or {})}.items() if k not in COMPUTE_OPTIONS}
    return {**{f"net.{k}": v for k, v in net.items()}, "future": hparams.get("future")}


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value
