"""A trained model on gridded fields: the input steps read from NetCDF / Zarr as the checkpoint's data
config names them (variables, levels, dims, time step), normalized with the checkpoint's statistics,
and the forecast written as NetCDF on the input's grid (what scripts/predict.py runs for fields)."""

import numpy as np
import torch

from convgru._checks import OptionError, shown_name
from convgru.data.fields import (
    NO_GRID,
    FieldSource,
    check_grid,
    expand,
    forecast_dataset,
    parse_step,
    write_forecasts,
)
from convgru.deploy.forecast import check_forecast_memory
from convgru.domain.fields import denormalize, normalize
from convgru.training.fields import forecast_batches, stored_normalization


def output_inside_input(output, input_pattern) -> bool:
    """Whether the file `output` is one of the input files, or inside one (a Zarr store's folder)."""
    output = output.resolve()
    return any(output == p.resolve() or p.resolve() in output.parents for p in expand(input_pattern, "INPUT"))


def read_fields(module, input_pattern, init: str | None, say=print):
    """(source, frames (frames_in, C, H, W) in physical units, index of the init step) of the input
    `input_pattern` (NetCDF files, a glob, or a Zarr store) for `module`: the checkpoint's variables,
    the `data.frames_in` consecutive steps up to `init` (default: the input's last step), on the grid
    the checkpoint was trained on (`FieldSource.align`: reordered where the input's is flipped or its
    longitudes rolled; `say(line, warning)` tells so, and warns of another grid size or of a checkpoint
    that records no grid). Raises OSError or ValueError naming what is missing or the grids that differ,
    or, before reading, the memory the input's declared grid would need (`check_forecast_memory`)."""
    data = module.hparams["data"]
    try:  # a checkpoint's own value, before it is compared with the input's step
        parse_step(data.get("time_step"))
    except OptionError as error:
        raise ValueError(f"the checkpoint's data.time_step: {error.message}") from None
    paths, options = expand(input_pattern, "INPUT"), (data["variables"], data.get("levels"), data.get("dims"))
    try:  # at the checkpoint's time step (a finer input sampled at it, a coarser one refused)
        source = FieldSource(paths, *options, data.get("time_step"))
    except OptionError as error:
        if error.option != "time_step":
            raise
        step, found = data["time_step"], FieldSource(paths, *options).step.text
        raise ValueError(f"its times are {found} apart; expected {step} (the "
                         f"checkpoint's data.time_step: it was trained on steps of {step}), or a step that divides it "
                         f"(the input is then read every {step})") from None
    if data.get("grid") is None:
        say(NO_GRID, True)
    elif said := source.align(check_grid(data["grid"], "the checkpoint's data.grid")):
        say(said[1], said[0])
    frames_in = int(data["frames_in"])
    end = len(source.times) - 1 if init is None else _init_index(source, init)
    start = end - frames_in + 1
    steps = source.times[max(start, 0):end + 1]
    if start < 0 or not source.step.follows(steps).all():
        raise ValueError(f"expected {frames_in} consecutive steps of {source.step.text} "
                         f"(the checkpoint's data.frames_in and data.time_step) up to "
                         f"{source.label(source.times[end])}, found {len(steps)} step(s) "
                         f"{[source.label(t) for t in steps[:3]]}{' ...' if len(steps) > 3 else ''}")
    check_forecast_memory(module, 1, frames_in, len(source.y), len(source.x), None)
    return source, source.read(start, end + 1), end


def forecast_fields(module, source, frames: np.ndarray, future: int | None, batch_size: int, where) -> np.ndarray:
    """The forecast (1, future, C, H, W) in physical units of `frames` (frames_in, C, H, W, physical
    units; NaN missing: 0.5 once normalized), normalized with the checkpoint's statistics
    (ValueError naming `where` when it has none), forecast `batch_size` sequences at a time and mapped back
    to the variables' units."""
    mean, std = stored_normalization(module.hparams["data"], source.names, where)
    x = torch.from_numpy(np.nan_to_num(normalize(frames, mean, std), nan=0.5)).float()[None]
    return denormalize(forecast_batches(module, x, future, batch_size), mean, std).numpy()


def write_field_forecast(path, source, forecast: np.ndarray, end: int) -> None:
    """Write `forecast` (1, T, C, H, W, in the order `source.read` gives) from the input's step `end` as NetCDF
    on the input's grid, in its order, with lead times from the init time `source.times[end]` in steps of the
    input's time step (`convgru.data.fields.write_forecasts`: atomically, never a partial file; OSError
    naming the OUTPUT file when the write fails, ValueError when NetCDF refuses a name or the writer refuses
    what it is given)."""
    write_forecasts(path, forecast_dataset(source.grid, source.names, source.channels, source.to_file_order(forecast),
                                           source.times[end:end + 1], source.step, source.calendar), "OUTPUT file")


def _init_index(source, init: str) -> int:
    """The index of time `init` (a date of the input's calendar) in the input: that step, or the one step inside
    the period it names (2002-03: the month's step of monthly data); ValueError naming --init otherwise."""
    try:
        when = source.calendar.point(init, "--init")
    except OptionError:
        raise ValueError(f"--init {init!r}: expected a time such as 2018-01-01T00 (in the input's calendar, "
                         f"{source.calendar.name})") from None
    found = np.flatnonzero(source.times == when)
    if not len(found):
        try:
            first, last = source.calendar.period(init, "--init")
            found = np.flatnonzero((source.times >= first) & (source.times <= last))
        except OptionError:
            found = []
    if len(found) != 1:
        raise ValueError(f"--init {shown_name(init)}: not a time step of the input ({source.label(source.times[0])} .. "
                         f"{source.label(source.times[-1])}, every {source.step.text})")
    return int(found[0])
