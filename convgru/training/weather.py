"""Forecasts of gridded fields (data=xarray) scored and written the way the field does it.

`WeatherScores`: latitude-weighted RMSE and ACC (Rasp et al. 2020, WeatherBench) per variable and
lead time in physical units, for the model and the persistence and climatology baselines, in the same
test. `weather_table`: them as text. `save_test_forecasts` (eval.save_forecasts=true) and
`predict_fields` (scripts/predict.py CKPT input.nc OUT.nc) write forecasts as NetCDF on the input's
grid, with its variable names, units and attributes.
"""

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from convgru.domain.weather import FieldScores, denormalize, latitude_weights

BASELINES = ("persistence", "climatology")


class WeatherScores(nn.Module):
    """Weather scores of a test on fields: the model, persistence (the last input step repeated) and
    climatology (the training period's mean per point, the same for every lead time), each a
    `FieldScores` on forecasts and targets brought back to physical units (`denormalize`).

    scoring: what `FieldDataModule.scoring()` gives (names, units, height H, latitudes (H,) or None,
    climatology (C, H, W) or None, mean, std, lead_hours). Without latitudes the rows are weighted equally; without
    a climatology there is no ACC nor climatology baseline.
    """

    def __init__(self, scoring: Mapping, future: int):
        super().__init__()
        self.names, self.hours = list(scoring["names"]), list(scoring["lead_hours"])
        self.units = list(scoring.get("units") or [""] * len(self.names))
        self.mean, self.std = list(scoring["mean"]), list(scoring["std"])
        clim = scoring.get("climatology")
        channels = len(self.names)
        rows = scoring.get("latitudes")
        weights = torch.ones(scoring["height"], dtype=torch.float64) if rows is None else latitude_weights(rows)
        if clim is not None:  # points never valid in training: the channel's mean
            clim = np.where(np.isnan(clim), np.asarray(self.mean)[:, None, None], clim).astype(np.float32)
            self.register_buffer("climatology", torch.from_numpy(clim), persistent=False)
        self.scores = nn.ModuleDict({"model": FieldScores(future, channels, weights, clim),
                                     "persistence": FieldScores(future, channels, weights, clim)})
        if clim is not None:
            self.scores["climatology"] = FieldScores(future, channels, weights)

    def update(self, x: torch.Tensor, forecast: torch.Tensor, y: torch.Tensor) -> None:
        """x (B, T_in, C, H, W) inputs, forecast (clamped to [0, 1]) and y (B, T, C, H, W) targets, all
        normalized as the data module gives them; y NaN where missing."""
        target = denormalize(y.float(), self.mean, self.std)
        self.scores["model"].update(denormalize(forecast.float(), self.mean, self.std), target)
        last = denormalize(x[:, -1:].float(), self.mean, self.std)
        self.scores["persistence"].update(last.expand_as(target), target)
        if "climatology" in self.scores:
            self.scores["climatology"].update(self.climatology.to(target)[None, None].expand_as(target), target)

    def results(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """({name: scalar}, {name: (future,)}): per_frame `rmse_t2m`, `acc_t2m`, `persistence/rmse_t2m`,
        ..., `climatology/rmse_t2m` per lead time; summary the same averaged over lead times and each lead
        time on its own as `rmse_t2m_6h` (the lead time in hours)."""
        summary, per_frame = {}, {}
        for who, metric in self.scores.items():
            prefix = "" if who == "model" else f"{who}/"
            for score, values in metric.compute().items():
                if who == "climatology" and score == "acc":
                    continue
                values = values.reshape(len(self.hours), len(self.names))  # torchmetrics squeezes (1, 1)
                for c, name in enumerate(self.names):
                    key = f"{prefix}{score}_{name}"
                    per_frame[key] = values[:, c].float()
                    summary[key] = values[:, c].float().nanmean()
                    for t, hours in enumerate(self.hours):
                        summary[f"{key}_{hours:g}h"] = values[t, c].float()
        return summary, per_frame

    def reset(self) -> None:
        for metric in self.scores.values():
            metric.reset()


PER_LEAD = re.compile(r"(^|/)(rmse|acc)_.+_[0-9.e+-]+h$")


def per_lead_key(key: str) -> bool:
    """Whether `key` is a weather score at one lead time (`test/rmse_t2m_72h`)."""
    return bool(PER_LEAD.search(key))


def weather_table(metrics: Mapping, prefix: str = "") -> str:
    """Latitude-weighted RMSE and ACC per lead time of the model, persistence and climatology from `metrics`
    keyed `{prefix}rmse_t2m_6h`, `{prefix}persistence/acc_t2m_6h`, ...; "" when it holds none."""
    pattern = re.compile(rf"^{re.escape(prefix)}rmse_(.+)_([0-9.e+-]+)h$")
    found: dict[str, list[float]] = {}
    for key in metrics:
        if match := pattern.match(key):
            found.setdefault(match[1], []).append(float(match[2]))
    if not found:
        return ""
    columns = [("rmse", ""), ("rmse", "persistence/"), ("rmse", "climatology/"), ("acc", ""), ("acc", "persistence/")]
    heads = ["model", "persist", "clim", "model", "persist"]
    blocks = []
    for name, hours in found.items():
        lines = [f"{'lead':>7} {'RMSE ' + name:^29} {'ACC ' + name:^19}",
                 f"{'':>7} " + " ".join(f"{h:>9}" for h in heads)]
        for h in sorted(hours) + [None]:
            cells = []
            for score, who in columns:
                value = metrics.get(f"{prefix}{who}{score}_{name}" + ("" if h is None else f"_{h:g}h"))
                shown = f"{value:9.4g}" if score == "rmse" else f"{value:9.3f}"
                cells.append(f"{'':>9}" if value is None else f"{'nan':>9}" if value != value else shown)
            lines.append(f"{'all' if h is None else f'{h:g}h':>7} " + " ".join(cells))
        blocks.append("\n".join(lines))
    return ("\nWeather scores on the test set: latitude-weighted RMSE (the variable's units) and ACC, model vs "
            "persistence and climatology of the training period:\n" + "\n\n".join(blocks))


# --- forecasts as NetCDF -------------------------------------------------------------------------

def _forecast(module, inputs: torch.Tensor, future: int | None, batch_size: int) -> torch.Tensor:
    return torch.cat([module.forecast(chunk, future).float().cpu() for chunk in inputs.split(batch_size)])


def _normalization(data: Mapping, names: list[str], where) -> tuple[list[float], list[float]]:
    """(mean, std) per channel from a checkpoint's data config; ValueError naming `where` if it has none."""
    stats = data.get("normalization") if isinstance(data, Mapping) else None
    try:
        return [float(stats[n]["mean"]) for n in names], [float(stats[n]["std"]) for n in names]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where} records no normalization for the channels {names} (data.normalization); "
                         "expected a checkpoint trained with data=xarray") from None


def check_save_forecasts(datamodule) -> None:
    """OptionError (save_forecasts) unless `datamodule` holds gridded fields (data=xarray)."""
    from convgru._checks import OptionError

    if not hasattr(datamodule, "scoring"):
        raise OptionError("save_forecasts", "expected data=xarray (forecasts are written as NetCDF on the data's "
                          f"grid), found the data module {type(datamodule).__name__}")


def save_test_forecasts(module, datamodule, folder, batch_size: int = 16) -> Path:
    """Forecast every window of the test split of a FieldDataModule and write them to `folder`/forecasts.nc as
    NetCDF in physical units (`convgru.data.fields.forecast_dataset`); returns its path."""
    from convgru.data.fields import forecast_dataset, write_forecasts

    check_save_forecasts(datamodule)
    path = Path(folder) / "forecasts.nc"
    dataset, source = datamodule.test_dataloader().dataset, datamodule.source
    mean, std = _normalization(module.hparams.get("data"), source.names, "the checkpoint")
    out = np.empty((len(dataset), module.hparams.future, len(source.names), len(source.y), len(source.x)), np.float32)
    for begin in range(0, len(dataset), batch_size):
        x = torch.stack([dataset[i][0] for i in range(begin, min(begin + batch_size, len(dataset)))])
        out[begin:begin + len(x)] = denormalize(_forecast(module, x, None, batch_size), mean, std).numpy()
    write_forecasts(path, forecast_dataset(source.grid, source.names, source.channels, out, dataset.init_times,
                                           source.step))
    return Path(path)


def predict_fields(argv, description: str = "") -> None:
    """scripts/predict.py CKPT INPUT.nc OUTPUT.nc [--init TIME] [--future M] [--force]: the forecast from
    the `frames_in` steps up to --init (default: the input's last step) as NetCDF on the input's grid."""
    from convgru.data.fields import FieldSource, expand, forecast_dataset, write_forecasts
    from convgru.domain.weather import normalize
    from convgru.training import CheckpointError, load_module
    from convgru.training.cli import output_error, positive_int

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", type=Path, metavar="CKPT", help="checkpoint trained with data=xarray")
    parser.add_argument("input", metavar="INPUT", help="NetCDF file(s) (a glob) or Zarr store with the input steps")
    parser.add_argument("output", type=Path, metavar="OUTPUT", help="NetCDF file for the forecast")
    parser.add_argument("--init", help="initialization time (the last input step), e.g. 2018-01-01T00; "
                                       "default: the input's last time step")
    parser.add_argument("--future", type=positive_int, help="steps to forecast (default: the checkpoint's)")
    parser.add_argument("--force", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.output.suffix.lower() not in (".nc", ".nc4", ".netcdf"):
        parser.error(f"OUTPUT {args.output}: expected a NetCDF file (.nc) for a forecast of fields, "
                     f"found the extension {args.output.suffix or '(none)'!r}")
    if error := output_error(args.output, args.force, "OUTPUT"):
        parser.error(error)
    try:
        output = args.output.resolve()
        if any(output == p.resolve() or p.resolve() in output.parents for p in expand(args.input, "INPUT")):
            parser.error(f"OUTPUT {args.output} is INPUT or inside it (a Zarr store's folder): writing it would "
                         "damage the input; choose an OUTPUT outside the input")
    except (OSError, ValueError) as error:
        parser.error(str(error))
    try:
        module = load_module(args.ckpt).to(args.device)
    except CheckpointError as error:
        parser.error(str(error))
    data = module.hparams.get("data")
    if not isinstance(data, Mapping) or data.get("_target_") != "convgru.data.FieldDataModule":
        parser.error(f"CKPT {args.ckpt} was not trained with data=xarray (NetCDF / Zarr fields); a NetCDF INPUT "
                     "needs one that was")
    try:
        paths = expand(args.input, "INPUT")
        source = FieldSource(paths, data["variables"], data.get("levels"), data.get("dims"), data.get("time_step"))
        mean, std = _normalization(data, source.names, args.ckpt)
        frames_in = int(data["frames_in"])
        end = len(source.times) - 1 if args.init is None else _init_index(source, args.init)
        start = end - frames_in + 1
        steps = source.times[max(start, 0):end + 1]
        if start < 0 or (np.diff(steps) != source.step).any():
            raise ValueError(f"expected {frames_in} consecutive steps of {source.step / np.timedelta64(1, 'h'):g}h "
                             f"(the checkpoint's data.frames_in and data.time_step) up to {source.times[end]}, found "
                             f"{len(steps)} step(s) {[str(t) for t in steps[:3]]}{' ...' if len(steps) > 3 else ''}")
        frames = source.read(start, end + 1)
    except (OSError, ValueError) as error:
        parser.error(f"INPUT {args.input}: {error}")
    x = torch.from_numpy(np.nan_to_num(normalize(frames, mean, std), nan=0.5)).float()[None]
    forecast = denormalize(_forecast(module, x, args.future, args.batch_size), mean, std).numpy()
    if not np.isfinite(forecast).all():
        parser.error(f"the forecast of CKPT {args.ckpt} holds NaN or inf; nothing was written")
    dataset = forecast_dataset(source.grid, source.names, source.channels, forecast, source.times[end:end + 1],
                               source.step)
    try:
        write_forecasts(args.output, dataset, "OUTPUT file")
    except OSError as error:
        parser.error(f"OUTPUT {args.output}: cannot write it ({error}); nothing was written there")
    init = np.datetime_as_string(source.times[end], unit="m")
    print(f"Wrote the forecast ({forecast.shape[1]} lead times from {init}) of {', '.join(source.names)} "
          f"to {args.output}", file=sys.stdout)


def _init_index(source, init: str) -> int:
    """The index of time `init` in the input; ValueError naming --init when it is not one of its steps."""
    try:
        when = np.datetime64(np.datetime64(init), "ns")
    except ValueError:
        raise ValueError(f"--init {init!r}: expected a time such as 2018-01-01T00") from None
    found = np.flatnonzero(source.times == when)
    if not len(found):
        raise ValueError(f"--init {init}: not a time step of the input ({source.times[0]} .. {source.times[-1]}, "
                         f"every {source.step / np.timedelta64(1, 'h'):g}h)")
    return int(found[0])
