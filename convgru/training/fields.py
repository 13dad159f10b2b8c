"""Gridded fields (data=fields) in a test: scored and written the way weather and climate do it.

`FieldTestScores`: latitude-weighted RMSE and ACC (Rasp et al. 2020, WeatherBench) per variable and
lead time in physical units, for the model and the persistence and climatology baselines, in the same
test (`convgru.training.report.field_table` prints them). `save_test_forecasts`
(eval.save_forecasts=true) writes the test forecasts as NetCDF on the data's grid, with its variable
names, units and attributes; `convgru.deploy.fields` forecasts new files.
"""

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from convgru.domain.fields import FieldScores, denormalize, latitude_weights

BASELINES = ("persistence", "climatology")


class FieldTestScores(nn.Module):
    """The scores of a test on gridded fields: the model, persistence (the last input step repeated) and
    climatology (the training period's by day of year and hour of day, at each target's valid time), each
    a `FieldScores` on forecasts and targets brought back to physical units (`denormalize`); ACC is
    against that climatology too (Rasp et al. 2020; WeatherBench 2).

    scoring: what `FieldDataModule.scoring()` gives (names, units, height H, latitudes (H,) or None,
    climatology: the table (rows, C, H, W) or None, note, mean, std, lead_times in lead_unit: h or mo).
    Without latitudes the rows are weighted equally; without a climatology there is no ACC nor climatology
    baseline, and `note` says why.
    """

    def __init__(self, scoring: Mapping, future: int):
        super().__init__()
        self.names, self.leads = list(scoring["names"]), list(scoring["lead_times"])
        self.unit = str(scoring["lead_unit"])
        self.units = list(scoring.get("units") or [""] * len(self.names))
        self.mean, self.std = list(scoring["mean"]), list(scoring["std"])
        self.note = scoring.get("note") or ""
        clim = scoring.get("climatology")
        channels = len(self.names)
        rows = scoring.get("latitudes")
        weights = torch.ones(scoring["height"], dtype=torch.float64) if rows is None else latitude_weights(rows)
        if clim is not None:  # points never valid in training: the channel's mean
            clim = np.where(np.isnan(clim), np.asarray(self.mean)[:, None, None], clim).astype(np.float32)
            self.register_buffer("climatology", torch.from_numpy(clim), persistent=False)
        acc = clim is not None
        self.scores = nn.ModuleDict({"model": FieldScores(future, channels, weights, acc),
                                     "persistence": FieldScores(future, channels, weights, acc)})
        if acc:
            self.scores["climatology"] = FieldScores(future, channels, weights)

    def update(self, x: torch.Tensor, forecast: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None
               ) -> None:
        """x (B, T_in, C, H, W) inputs, forecast (clamped to [0, 1]) and y (B, T, C, H, W) targets, all
        normalized as the data module gives them; y NaN where missing; rows (B, T): the climatology's row at
        each target's valid time (the data's third item), needed with a climatology."""
        target = denormalize(y.float(), self.mean, self.std)
        clim = None
        if "climatology" in self.scores:
            if rows is None or bool((rows < 0).any()):
                raise ValueError("the fields' scores need the climatology's row of each target (the third item of a "
                                 "FieldDataset's window)")
            clim = self.climatology.to(target.device)[rows.to(target.device)]  # (B, T, C, H, W)
        self.scores["model"].update(denormalize(forecast.float(), self.mean, self.std), target, clim)
        last = denormalize(x[:, -1:].float(), self.mean, self.std)
        self.scores["persistence"].update(last.expand_as(target), target, clim)
        if clim is not None:
            self.scores["climatology"].update(clim.to(target.dtype), target)

    def results(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """({name: scalar}, {name: (future,)}): per_frame `rmse_t2m`, `acc_t2m`, `persistence/rmse_t2m`,
        ..., `climatology/rmse_t2m` per lead time; summary the same averaged over lead times and each lead
        time on its own as `rmse_t2m_6h` (the lead time in hours, or `rmse_t2m_1mo` in calendar months)."""
        summary, per_frame = {}, {}
        for who, metric in self.scores.items():
            prefix = "" if who == "model" else f"{who}/"
            for score, values in metric.compute().items():
                if who == "climatology" and score == "acc":
                    continue
                values = values.reshape(len(self.leads), len(self.names))  # torchmetrics squeezes (1, 1)
                for c, name in enumerate(self.names):
                    key = f"{prefix}{score}_{name}"
                    per_frame[key] = values[:, c].float()
                    summary[key] = values[:, c].float().nanmean()
                    for t, lead in enumerate(self.leads):
                        summary[f"{key}_{lead:g}{self.unit}"] = values[t, c].float()
        return summary, per_frame

    def reset(self) -> None:
        for metric in self.scores.values():
            metric.reset()


# --- forecasts as NetCDF -------------------------------------------------------------------------

def forecast_batches(module, inputs: torch.Tensor, future: int | None, batch_size: int) -> torch.Tensor:
    return torch.cat([module.forecast(chunk, future).float().cpu() for chunk in inputs.split(batch_size)])


def stored_normalization(data: Mapping, names: list[str], where) -> tuple[list[float], list[float]]:
    """(mean, std) per channel from a checkpoint's data config; ValueError naming `where` if it has none."""
    stats = data.get("normalization") if isinstance(data, Mapping) else None
    try:
        return [float(stats[n]["mean"]) for n in names], [float(stats[n]["std"]) for n in names]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where} records no normalization for the channels {names} (data.normalization); "
                         "expected a checkpoint trained with data=fields") from None


def check_save_forecasts(datamodule, folder) -> Path:
    """Where the test forecasts go (`folder`/forecasts.nc); OptionError (save_forecasts) unless `datamodule` holds
    gridded fields (data=fields) whose names NetCDF takes (`convgru.data.fields.check_forecast_names`)."""
    from convgru._checks import OptionError
    from convgru.data.fields import check_forecast_names

    if not hasattr(datamodule, "scoring"):
        raise OptionError("save_forecasts", "expected data=fields (forecasts are written as NetCDF on the data's "
                          f"grid), found the data module {type(datamodule).__name__}")
    path = Path(folder) / "forecasts.nc"
    try:
        check_forecast_names(datamodule.open(), path)
    except ValueError as error:
        raise OptionError("save_forecasts", str(error)) from None
    return path


def save_test_forecasts(module, datamodule, folder, batch_size: int = 16) -> Path:
    """Forecast every window of the test split of a FieldDataModule and write them to `folder`/forecasts.nc as
    NetCDF in physical units (`convgru.data.fields.forecast_dataset`) on the files' grid, in their order; returns its
    path."""
    from convgru.data.fields import forecast_dataset, write_forecasts

    path = check_save_forecasts(datamodule, folder)
    dataset, source = datamodule.test_dataloader().dataset, datamodule.source
    mean, std = stored_normalization(module.hparams.get("data"), source.names, "the checkpoint")
    out = np.empty((len(dataset), module.hparams.future, len(source.names), len(source.y), len(source.x)), np.float32)
    for begin in range(0, len(dataset), batch_size):
        x = torch.stack([dataset[i][0] for i in range(begin, min(begin + batch_size, len(dataset)))])
        out[begin:begin + len(x)] = denormalize(forecast_batches(module, x, None, batch_size), mean, std).numpy()
    write_forecasts(path, forecast_dataset(source.grid, source.names, source.channels, source.to_file_order(out),
                                           dataset.init_times, source.step, source.calendar))
    return Path(path)
