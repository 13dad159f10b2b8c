"""Checkpoints: their format, safe loading, the checks before anything is built from one, the
upgrade of older formats, and atomic writing. The one home of what a checkpoint file is; rebuilding
a model from one is `convgru.training.restore`.

Format: a Lightning checkpoint whose `convgru` entry is {format, version} (`CHECKPOINT_FORMAT`; 1 is
convgru 0.1.0, which wrote none) and whose hyperparameters hold the ForecastModule's arguments,
among them the data config it was trained with (`portable_data_config`).

A checkpoint is data, never code. torch.load(weights_only=True) unpickles tensors and plain values
only; on top of that every config a
checkpoint carries (its hyperparameters: net, optimizer, scheduler, loss, the data config) must be
plain before anything uses it: bool, int, float, str, None, lists and dicts with string keys, no
Hydra instantiation keys (`_target_`, `_args_`, `_partial_`, `_recursive_`, `_convert_`) at any
depth but the data config's own `_target_`, which must name one of convgru's data modules
(`DATA_MODULES`), and no interpolation but convgru's own `${paths.*}`. Weights must be finite.
"""

import logging
import os
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.plugins.io import TorchCheckpointIO

import convgru
from convgru._checks import shown, shown_name, shown_path
from convgru.atomic import atomic_write
from convgru.training.paste import as_text, interpolations

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 2  # 1: convgru 0.1.0 (no "convgru" entry); 2: adds it, and the data config in hparams

# The data modules a checkpoint's data config may name (by name: nothing named in a file is imported).
DATA_MODULES = ("convgru.data.MovingMNISTDataModule", "convgru.data.ArrayDataModule", "convgru.data.RadarDataModule",
                "convgru.data.VideoDataModule", "convgru.data.FieldDataModule")
HYDRA_KEYS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_")
# The only interpolations a checkpoint may hold: convgru's own ${paths.<key>}, of the keys of the packaged paths config
PATH_KEYS = ("root_dir", "data_dir", "cache_dir", "log_dir", "output_dir")
PATHS = re.compile(r"\$\{paths\.(?:%s)\}" % "|".join(PATH_KEYS))
# Data options that name files or folders: stored absolute, so that a checkpoint works from any folder.
DATA_PATHS = ("files", "train_files", "val_files", "test_files", "mask_file", "test_file", "idx_train", "idx_test",
              "digit_bank", "mnist_root")
# Data options about this machine rather than the model: eval uses its own, never a checkpoint's.
MACHINE_DATA = {"cache_dir": "${paths.cache_dir}", "download": False}
def foreign_interpolations(text: str) -> bool:
    """Whether `text` holds an interpolation (`interpolations`) other than convgru's own `${paths.<key>}`."""
    return any(not PATHS.match(found) for found in interpolations(text))


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, unsafe, from a newer convgru, or does not match the model asked for."""


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a Lightning checkpoint written by scripts/train.py, safely.

    torch.load(weights_only=True), then `check_plain` on its hyperparameters and `check_finite` on its
    weights. Raises CheckpointError (one line, naming `path`) when the file is missing, empty, not a
    PyTorch checkpoint, truncated, holds pickled objects (named, as torch lists them), holds a config
    that is not plain data, holds NaN or inf weights, is not a ForecastModule's, or is of a newer format.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {shown_path(path)} (expected a .ckpt file written by "
                              f"scripts/train.py)")
    try:
        with warnings.catch_warnings():  # bytes of another file read as pickle opcodes name odd "protocols"
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise _unpicklable(path) from None
    # another kind of file read as torch's legacy pickle format fails on its first opcodes in any of these
    # (a text file: KeyError; a GIF: struct.error; measured over 6,000 random and text-like byte strings)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError, IndexError, struct.error):
        raise _unreadable(path) from None
    return check_checkpoint(checkpoint, path)


def check_checkpoint(checkpoint, path) -> dict:
    """`checkpoint` (as loaded from `path`) after the checks `load_checkpoint` describes; raises CheckpointError."""
    required = ("state_dict", "hyper_parameters")
    if not isinstance(checkpoint, dict) or any(key not in checkpoint for key in required):
        raise CheckpointError(f"{shown_path(path)} is not a Lightning training checkpoint (no {' / '.join(required)})")
    hparams = checkpoint["hyper_parameters"]
    if not isinstance(hparams, Mapping) or "net" not in hparams:
        raise CheckpointError(f"{shown_path(path)} has no 'net' hyperparameters: it was not written by ForecastModule")
    written = checkpoint.get("convgru") or {}
    check_plain(written, path, "convgru")
    if not isinstance(written, Mapping) or not isinstance(written.get("format", 1), int):
        raise CheckpointError(f"refused {shown_path(path)}: its key 'convgru' must be "
                              f"{{format: <int>, version: <str>}}, "
                              f"found {shown(written)}")
    if written.get("format", 1) > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{shown_path(path)} was written by convgru {shown_name(written.get('version', '?'))} in checkpoint format "
            f"{written['format']}; "
            f"this is convgru {convgru.__version__}, which reads formats up to {CHECKPOINT_FORMAT}. "
            "Upgrade convgru to load it."
        )
    if not isinstance(checkpoint["state_dict"], Mapping):
        raise CheckpointError(f"refused {shown_path(path)}: its state_dict must map names to tensors, found "
                              f"{shown(checkpoint['state_dict'])}")
    if not isinstance(hparams.get("data"), (Mapping, type(None))):
        raise CheckpointError(f"refused {shown_path(path)}: hyper_parameters.data must be a data config (a mapping) "
                              f"or null, "
                              f"found {shown(hparams['data'])}")
    try:
        check_plain(hparams, path, "hyper_parameters", data_key="data")
    except RecursionError:
        raise CheckpointError(f"refused {shown_path(path)}: its hyperparameters are nested too deeply to be a "
                              f"config") from None
    check_callback_paths(checkpoint, path)
    check_finite(checkpoint["state_dict"], path)
    return checkpoint


def check_plain(value, path, key: str, data_key: str | None = None) -> None:
    """Raise CheckpointError naming `path` and the dotted `key` unless `value` is plain data: bool,
    int, float, str, None, lists/tuples and dicts with string keys, without Hydra instantiation keys
    and with no interpolation but `${paths.<PATH_KEYS>}` (never resolved otherwise; an escaped `\\${` is text,
    `interpolations`). `value[data_key]` is a data config, whose own `_target_` may name one of DATA_MODULES."""
    def refuse(where: str, found: str):
        where = shown_name(where)
        raise CheckpointError(f"refused {shown_path(path)}: {where} holds {found}; a checkpoint may hold only plain "
                              f"values "
                              "(numbers, strings, lists, mappings) and convgru's data modules, so nothing in it "
                              "is run or resolved. Do not use this file")

    data_where = f"{key}.{data_key}"

    def walk(item, where: str, data: bool) -> None:
        if isinstance(item, Mapping):
            for name, child in item.items():
                inner = f"{where}.{name}"
                if not isinstance(name, str):
                    refuse(where, f"a key of type {type(name).__name__} ({shown(name)})")
                if name == "_target_" and data and where == data_where:
                    if child not in DATA_MODULES:
                        refuse(inner, f"{shown(child)}, not one of convgru's data modules {list(DATA_MODULES)}")
                    continue
                if name in HYDRA_KEYS:
                    refuse(inner, f"the Hydra key {name} ({shown(child)}), which would build or call an object")
                walk(child, inner, data)
        elif isinstance(item, (list, tuple)):
            for i, child in enumerate(item):
                walk(child, f"{where}[{i}]", data)
        elif isinstance(item, str):
            if foreign_interpolations(item):
                refuse(where, f"the interpolation {shown(item)} (only convgru's own "
                       f"{', '.join('${paths.%s}' % k for k in PATH_KEYS)} are kept)")
        elif item is not None and not isinstance(item, (bool, int, float)):
            refuse(where, f"a {type(item).__module__}.{type(item).__qualname__}")

    if isinstance(value, Mapping) and data_key is not None:
        for name, child in value.items():
            walk({name: child} if name != data_key else child, key if name != data_key else f"{key}.{name}",
                 name == data_key)
    else:
        walk(value, key, False)


def check_callback_paths(checkpoint: dict, path) -> None:
    """Raise CheckpointError unless every file a ModelCheckpoint state in the checkpoint names
    (best, last, k-th best, the best k) is a .ckpt file right in that state's own `dirpath` (no `..`):
    a resumed run may replace or remove those files, and must never reach another file or folder."""
    callbacks = checkpoint.get("callbacks") or {}
    if not isinstance(callbacks, Mapping):
        raise CheckpointError(f"refused {shown_path(path)}: its key 'callbacks' must be a mapping, found "
                              f"{shown(callbacks)}")
    for name, state in callbacks.items():
        if not (isinstance(name, str) and name.startswith("ModelCheckpoint")):
            continue
        if not isinstance(state, Mapping):
            raise CheckpointError(f"refused {shown_path(path)}: callbacks.{shown_name(name)} must be a mapping, "
                                  f"found {shown(state)}")
        folder = state.get("dirpath")
        best_k = state.get("best_k_models") or {}
        files = [state.get(k) for k in ("best_model_path", "kth_best_model_path", "last_model_path")]
        files += list(best_k) if isinstance(best_k, Mapping) else [best_k]
        for file in files:
            if file in (None, ""):
                continue
            inside = (isinstance(file, str) and isinstance(folder, str) and ".." not in Path(file).parts
                      and Path(file).suffix == ".ckpt"
                      and Path(os.path.normpath(file)).parent == Path(os.path.normpath(folder)))
            if not inside:
                raise CheckpointError(f"refused {shown_path(path)}: callbacks.{shown_name(name)} names "
                                      f"{shown(file)}, not a .ckpt "
                                      f"file in its checkpoint folder {shown(folder)}; a resumed run could replace "
                                      "or remove it")


def check_finite(state_dict: Mapping, path) -> None:
    """Raise CheckpointError naming the first floating-point tensor of `state_dict` that holds NaN or inf."""
    for name, tensor in state_dict.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            kind = "NaN" if bool(tensor.isnan().any()) else "inf"
            raise CheckpointError(f"refused {shown_path(path)}: weight {shown_name(name)} holds {kind} ({bad} of "
                                  f"{tensor.numel()} "
                                  "values); "
                                  "the run diverged before this checkpoint was saved: use an earlier one")


def portable_data_config(data, cwd=None) -> dict:
    """`data` (a data config node) as a checkpoint stores it: plain values, the command line's own
    interpolations resolved (`${data.val_size}`, `${oc.env:HOME}/x`: a checkpoint may hold no other) but
    `${paths.*}` kept as they are (portable), a `${` in a resolved value and an escaped `\\${` kept as text (a
    path holding `${`: `as_text`), and the file and folder options (DATA_PATHS) made absolute against `cwd`
    (default: where the run was started), so that eval and predict find them from any folder."""
    from omegaconf import OmegaConf

    def kept(value, key: str):
        """`value` (unresolved) of the dotted `key`, resolved where it holds interpolations but convgru's own."""
        if isinstance(value, dict):
            return {k: kept(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [kept(v, f"{key}.{i}") for i, v in enumerate(value)]
        if isinstance(value, str) and foreign_interpolations(value):
            resolved = OmegaConf.select(data, key)  # as text: a `${` in the value (a path's) is not resolved again
            resolved = OmegaConf.to_container(resolved, resolve=True) if OmegaConf.is_config(resolved) else resolved
            return as_text(resolved)
        return value
    data = kept(OmegaConf.to_container(data, resolve=False), "") if OmegaConf.is_config(data) else data
    if cwd is None:
        from hydra.core.hydra_config import HydraConfig
        cwd = HydraConfig.get().runtime.cwd if HydraConfig.initialized() else os.getcwd()

    def absolute(value):
        if isinstance(value, (list, tuple)):
            return [absolute(v) for v in value]
        if isinstance(value, str) and not interpolations(value):
            return os.path.normpath(os.path.join(cwd, os.path.expanduser(value)))
        return value
    return {k: absolute(v) if k in DATA_PATHS else v for k, v in data.items()}


def _unpicklable(path: Path) -> CheckpointError:
    """A refusal naming the pickled globals that `path` needs (as torch lists them)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint torch can list: the legacy format, or damaged
        names = []
    if not names:
        return _unreadable(path)
    return CheckpointError(
        f"refused to load {shown_path(path)}: it holds a pickled {', '.join(names)}, not only tensors and plain "
        f"values, and "
        "loading that could run code. Only load checkpoints written by convgru from a source you trust."
    )


def _unreadable(path: Path) -> CheckpointError:
    """Why torch.load could not read `path`, as far as its bytes tell."""
    with open(path, "rb") as file:
        head = file.read(4)
    if not head:
        why = "the file is empty (0 bytes)"
    elif head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError):
            names, damaged = None, True
        if names is not None and not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            why = ("it is a zip archive but not a PyTorch checkpoint (no data.pkl in it; expected a .ckpt file "
                   "written by scripts/train.py)")
        elif damaged:
            why = ("the file is truncated or damaged (a PyTorch checkpoint is a zip archive and this one is "
                   "incomplete; an interrupted copy or download?)")
        else:
            why = "the file is damaged (torch cannot read the zip archive's contents)"
    else:
        why = "it is not a PyTorch checkpoint (expected a .ckpt file written by scripts/train.py)"
    return CheckpointError(f"cannot read checkpoint {shown_path(path)}: {why}")


def stamp(world_size: int | None = None) -> dict:
    """The `convgru` entry of a checkpoint written now: {format, version} and, written by a trainer, the
    `world_size` (processes: trainer.devices x trainer.num_nodes) it trained on."""
    written = {"format": CHECKPOINT_FORMAT, "version": convgru.__version__}
    return written if world_size is None else {**written, "world_size": int(world_size)}


def one_line(error: BaseException) -> str:
    """`error`'s message on one line (torch's load_state_dict errors span several)."""
    return re.sub(r"\s*\n\s*", " ", str(error)).strip()


# --- older formats -----------------------------------------------------------------------------

def merge_rz_norm_states(checkpoint: dict, module: torch.nn.Module) -> None:
    """Merge a 0.1.0 checkpoint's optimizer state of each cell's separate r and z GroupNorms
    (norm_r, norm_z) into the one norm_rz of 0.2.0, as ConvGRUCell merges their weights on
    loading, so that a 0.1.0 run resumes. Other checkpoints are left as they are."""
    if (checkpoint.get("convgru") or {}).get("format", 1) > 1:
        return
    names = [name for name, _ in module.named_parameters()]
    old = []  # 0.1.0's parameter order: ..., norm_r.weight, norm_r.bias, norm_z.weight, norm_z.bias, ...
    for name in names:
        if name.endswith(".norm_rz.weight"):
            prefix = name[: -len("norm_rz.weight")]
            old += [f"{prefix}norm_{g}.{p}" for g in "rz" for p in ("weight", "bias")]
        elif not name.endswith(".norm_rz.bias"):
            old.append(name)
    if old == names:
        return
    index = {name: i for i, name in enumerate(old)}
    for optimizer in checkpoint.get("optimizer_states", []):
        groups, state = optimizer["param_groups"], optimizer["state"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(old):
            return
        merged = {}
        for i, name in enumerate(names):
            if ".norm_rz." in name:
                r, z = (state.get(index[name.replace("norm_rz", f"norm_{g}")]) for g in "rz")
                if r is not None and z is not None:
                    merged[i] = {k: torch.cat([v, z[k]]) if torch.is_tensor(v) and v.dim() else v for k, v in r.items()}
            elif index[name] in state:
                merged[i] = state[index[name]]
        optimizer["state"], groups[0]["params"] = merged, list(range(len(names)))


# --- atomic writes -----------------------------------------------------------------------------

ADVICE = ("the previous checkpoints are kept whole; free some space (or set paths.log_dir to another disk) and "
          "resume from last.ckpt")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a local checkpoint with `convgru.atomic.atomic_write`: to a temporary file beside it,
    flushed to disk, then renamed over the target, so a run killed at any moment leaves the previous
    file or the new one, never a partial one, and a full disk is one error naming the folder and the
    bytes needed. Lightning's own writer stages the file in the system's temp folder and moves it,
    which is a copy (and can be cut short) when that folder is on another disk. Remote paths (s3://,
    ...) go through Lightning's writer."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "checkpoint", tensor_bytes(checkpoint), ADVICE) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        """Lightning's load (resume, test from a checkpoint), always weights_only, then `check_checkpoint` on
        what was read: the bytes Lightning restores are the bytes checked, even if the file changed after an
        earlier check. A file without a `state_dict` (the weights Lightning itself passes between processes)
        is returned as loaded."""
        where = {} if map_location is None else {"map_location": map_location}
        checkpoint = super().load_checkpoint(path, weights_only=True, **where)
        if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint:
            check_checkpoint(checkpoint, path)
        return checkpoint


def tensor_bytes(value) -> int:
    """Bytes of the tensors in a (nested) checkpoint: about what torch.save writes."""
    if torch.is_tensor(value):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0
