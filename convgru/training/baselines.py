"""The baselines a nowcast is scored against at test, beside the model (`model.baselines`): persistence,
and pysteps' optical-flow extrapolation, S-PROG and STEPS ensemble mean (`convgru.domain.extrapolation`).

A baseline is a function (x, future) -> forecast: inputs (B, T_in, C, H, W) scaled to [0, 1] as the
data modules give them -> (B, future, C, H, W) in [0, 1], scored on the same batches as the model.
"""

from collections.abc import Callable

import torch

from convgru._checks import OptionError
from convgru.domain.extrapolation import METHODS, PystepsNowcast, check_options

BASELINES = ("persistence", *METHODS)
DEFAULT = {"persistence": {}}  # what a module built without `baselines` (e.g. from a 0.2.0 checkpoint) scores


def persistence(x: torch.Tensor, future: int) -> torch.Tensor:
    """The last input frame repeated: (B, T_in, C, H, W) -> (B, future, C, H, W) (a view)."""
    return x[:, -1:].expand(-1, future, *x.shape[2:])


def baseline_options(baselines, option: str = "model.baselines") -> dict[str, dict]:
    """`baselines` as {name: options}: from a list of names (each with its default options) or a mapping
    name -> options, where an entry set to None is left out (None itself: `DEFAULT`). OptionError naming
    `option` for unknown names or options, and when pysteps is missing for its nowcasts."""
    if baselines is None:
        return dict(DEFAULT)
    if isinstance(baselines, (list, tuple)):
        baselines = {name: {} for name in baselines}
    if not isinstance(baselines, dict) or not all(isinstance(name, str) for name in baselines):
        raise OptionError(option, f"expected a list of baselines or a mapping name -> options, of {list(BASELINES)}, "
                          f"found {baselines!r}")
    unknown = [name for name in baselines if name not in BASELINES]
    if unknown:
        raise OptionError(option, f"unknown baseline(s) {unknown}, expected some of {list(BASELINES)}")
    chosen = {name: options for name, options in baselines.items() if options is not None}
    if chosen.get("persistence"):
        raise OptionError(f"{option}.persistence", f"takes no options, found {chosen['persistence']!r}")
    for name in METHODS:
        if name in chosen:
            chosen[name] = check_options(chosen[name], f"{option}.{name}", name)
    return chosen


def build_baselines(baselines, value_range=None, units: str = "dBZ",
                    option: str = "model.baselines") -> dict[str, Callable]:
    """{name: baseline function} of `baseline_options(baselines)`, for data scaled from `value_range` in
    `units` (pysteps' nowcasts: `PystepsNowcast`, without a cache until `use_cache`)."""
    built = {}
    for name, options in baseline_options(baselines, option).items():
        built[name] = persistence if name == "persistence" else PystepsNowcast(
            name, options, value_range, units, f"{option}.{name}")
    return built
