"""Figures of a test and of forecasts: scores against lead time, the performance diagram, forecast maps.

What eval (and train's test) writes in `figures/` beside metrics.json (`write_test_figures`):

- `<family>.png` and `.csv`: each score family against lead time, one panel per score, threshold or
  variable, the model and every baseline as lines (`lead_time_figures`): `scores` (MSE, MAE, SSIM,
  PSNR and any other score of one number per lead time), `csi`, `pod`, `far`, `hss`, `bias`,
  `csi_pool` (one row per pooling size), `fss` (one row per scale) ... per threshold for nowcasts, and
  `rmse`, `acc` per variable for fields. Methods and scores are read from the keys of the per-frame
  results (`csi_20`: the model's, `persistence/csi_20`: a baseline's), never from a list of them.
- `performance_diagram.png`: POD against success ratio (1 - FAR) with lines of equal CSI and
  frequency bias (Roebber 2009, Wea. Forecasting 24, 601-608), a line per method and threshold
  through its lead times (`performance_diagram`).
- `forecasts.png` (fields: `forecasts_<variable>.png`): inputs, targets and forecasts of the first
  test sequences in physical units (`forecast_panels`): radar on a precipitation colour scale
  (pysteps' `get_colormap`, white below its lowest level, or any matplotlib colour map on the same
  levels, e.g. cividis for readers with a colour vision deficiency), fields on a perceptually uniform
  map (viridis; RdBu_r, centred on 0, for variables of both signs) with latitude/longitude axes and
  coastlines when cartopy and its map data are there; video and arrays in grey or RGB.

Figures are matplotlib `Figure`s drawn on the Agg canvas (pyplot is never imported: no global
state, no display), PNG at DPI = 100, at most 1600 pixels wide, text of at least 10 points.
Only the training layer imports this module: `import convgru` and `import convgru.data` load no
matplotlib (tests/test_layers.py).
"""

import contextlib
import csv
import io
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator

from convgru._checks import OptionError
from convgru.domain.extrapolation import NAMES as METHOD_NAMES
from convgru.domain.fields import denormalize
from convgru.domain.units import to_physical
from convgru.training.images import LeadTime, lead_times

DPI = 100
MAX_WIDTH = 16.0  # inches: 1600 pixels at DPI
FONTS = {"font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11, "xtick.labelsize": 10, "ytick.labelsize": 10,
         "legend.fontsize": 10, "figure.titlesize": 12}
PYSTEPS_SCALES = ("pysteps", "STEPS-BE", "BOM-RF3")  # pysteps.visualization.precipfields.get_colormap colorscales
PYSTEPS_UNITS = ("dBZ", "mm/h")  # the units pysteps' intensity scales exist in
FALLBACK = "cividis"  # perceptually uniform, readable with a colour vision deficiency
SEQUENTIAL, DIVERGING = "viridis", "RdBu_r"
MISSING = (0.8, 0.8, 0.8, 1.0)  # light grey: missing pixels (NaN targets)
MAX_COLUMNS = 10  # lead times shown in the forecast panels (evenly spaced, the last included)
# Okabe and Ito (2008): eight colours told apart with any colour vision; the model first, in black.
COLORS = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("--", "-.", ":", (0, (6, 2, 1, 2, 1, 2)))  # the baselines': four apart, then again
NAMES = {"csi": "CSI", "pod": "POD", "far": "FAR", "hss": "HSS", "bias": "frequency bias", "ets": "ETS",
         "sedi": "SEDI", "fss": "FSS", "csi_pool": "pooled CSI", "mse": "MSE", "mae": "MAE", "ssim": "SSIM",
         "psnr": "PSNR (dB)", "rmse": "latitude-weighted RMSE", "acc": "ACC", "bmse": "B-MSE", "bmae": "B-MAE"}
SCALES = {"mse": "sum over a frame's pixels", "mae": "sum over a frame's pixels"}  # OpenSTL's convention
WINDOW = re.compile(r"_?(\d+)(px)?$")  # csi_pool4 -> csi_pool (4 px), fss_5px -> fss (5 px)


# --- what the figures know of the data -------------------------------------------------------

@dataclass
class Rendering:
    """How frames are drawn in physical units: `kind` frames (grey or RGB in [0, 1]), radar (`units`
    one of dBZ, mm/h, kg/m^2, pixel; `physical` maps [0, 1] back through the data's value_range) or
    fields (`names` and `units` per channel, `lat` and `lon` the grid's coordinates or None).
    `physical`: tensor (..., C, H, W) as the data modules give it -> numpy array in physical units."""
    kind: str
    lead: LeadTime
    physical: Callable = field(default=lambda t: np.asarray(t, dtype=np.float32))
    names: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    thresholds: list[float] | None = None
    colors: str = "pysteps"
    lat: np.ndarray | None = None
    lon: np.ndarray | None = None


def check_colors(colors: str, option: str = "figures.radar_colors") -> str:
    """`colors` if one of pysteps' scales or a matplotlib colour map; OptionError naming `option` otherwise."""
    if colors in PYSTEPS_SCALES or colors in matplotlib.colormaps:
        return colors
    raise OptionError(option, f"expected one of pysteps' colour scales {list(PYSTEPS_SCALES)} or a matplotlib colour "
                      f"map such as {FALLBACK} (readable with a colour vision deficiency), found {colors!r}")


def rendering_of(module, datamodule=None, colors: str = "pysteps") -> Rendering:
    """The `Rendering` of a ForecastModule's data: fields when `datamodule` (or the module's data config)
    is gridded fields, radar when the data config has radar `units` and a value_range, frames otherwise."""
    data = module.hparams.get("data") if isinstance(module.hparams.get("data"), Mapping) else {}
    future = int(module.hparams.future)
    source = datamodule.open() if datamodule is not None and hasattr(datamodule, "scoring") else None
    if source is not None:
        stats = data.get("normalization") or datamodule.normalization
        mean, std = [stats[n]["mean"] for n in source.names], [stats[n]["std"] for n in source.names]
        return fields_rendering(source, lambda t: denormalize(np.asarray(t, dtype=np.float32), mean, std),
                                LeadTime(*source.step.leads(future)))
    units, value_range = data.get("units"), data.get("value_range")
    if isinstance(units, str) and value_range is not None:
        low, high = (float(v) for v in value_range)
        return Rendering("radar", lead_times(data, future),
                         lambda t: to_physical(np.asarray(t, dtype=np.float32), (low, high)), units=[units],
                         thresholds=module.hparams.get("thresholds") or data.get("thresholds"),
                         colors=check_colors(colors))
    return Rendering("frames", lead_times(data, future))


def fields_rendering(source, physical: Callable, lead: LeadTime) -> Rendering:
    """The `Rendering` of gridded fields read by a `FieldSource` (names, units, latitudes, x)."""
    lon = np.asarray(source.x, dtype=np.float64) if source.latitudes is not None else None
    return Rendering("fields", lead, physical, names=list(source.names), units=list(source.units),
                     lat=source.latitudes, lon=lon)


# --- figures as files and images -----------------------------------------------------------

def new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A Figure `width` x `height` inches (width capped at MAX_WIDTH), on the Agg canvas; `layout` None
    for a grid of panels placed by `subplots_adjust` (a constrained layout costs seconds on many panels)."""
    figure = Figure(figsize=(min(width, MAX_WIDTH), height), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def as_image(figure: Figure) -> np.ndarray:
    """The figure drawn as an (H, W, 3) uint8 RGB array (what TensorBoard's add_image takes, HWC)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save(figure: Figure, path) -> None:
    """`figure` as a PNG file at DPI (whatever the name's extension)."""
    figure.savefig(path, dpi=DPI, facecolor="white", format="png")


# --- scores against lead time ----------------------------------------------------------------

def parse_key(key: str) -> tuple[str, str, str | None]:
    """(method, score, level) of a per-frame key: `csi_20` -> (model, csi, 20), `persistence/fss_5px_mean`
    -> (persistence, fss_5px, mean), `climatology/rmse_t2m` -> (climatology, rmse, t2m), `mse` ->
    (model, mse, None)."""
    method, _, name = key.rpartition("/")
    head, _, tail = name.rpartition("_")
    if head and (tail == "mean" or _is_number(tail)):
        return method or "model", head, tail
    score, _, variable = name.partition("_")
    return method or "model", score, variable or None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _level_order(level: str) -> tuple:
    return (1, 0.0, "") if level == "mean" else (0, float(level), "") if _is_number(level) else (0, 0.0, level)


def families(per_frame: Mapping) -> dict[str, dict[str, dict[str, dict[str, str]]]]:
    """{family: {score: {level: {method: key}}}} of the per-frame keys: `scores` holds the scores of one
    value per lead time (level ""), the others one family per score with its window sizes (csi_pool4 and
    csi_pool16: csi_pool) per threshold or variable. Methods in the order met, the model first."""
    found: dict = {}
    for key in per_frame:
        method, score, level = parse_key(key)
        family = "scores" if level is None else WINDOW.sub("", score) or score
        found.setdefault(family, {}).setdefault(score, {}).setdefault(level or "", {})[method] = key
    for family, scores in found.items():
        ordered = sorted(scores, key=lambda s: int(m[1]) if (m := WINDOW.search(s)) else 0)
        found[family] = {s: dict(sorted(scores[s].items(), key=lambda kv: _level_order(kv[0]))) for s in ordered}
    return found


def methods_of(per_frame: Mapping) -> list[str]:
    """The methods of per-frame keys (`csi_20`, `persistence/csi_20`, ...): model first, then the
    baselines in their order there (model.baselines'), which fixes their colours in every figure."""
    names = ["model"]
    for key in per_frame:
        method = parse_key(key)[0]
        if method not in names:
            names.append(method)
    return names


def method_style(method: str, methods: list[str]) -> dict:
    """Colour, marker, line of `method` among `methods` (methods_of): the same in every figure."""
    i = methods.index(method) % len(COLORS)
    return {"color": COLORS[i], "marker": MARKERS[i], "linewidth": 2.2 if method == "model" else 1.5,
            "linestyle": "-" if method == "model" else LINESTYLES[(i - 1) % len(LINESTYLES)], "markersize": 5,
            "label": method_label(method)}


def method_label(method: str) -> str:
    """A method's name in figures: pysteps' baselines by their names in the field (S-PROG, STEPS mean)."""
    return METHOD_NAMES.get(method, method)


def _panel_title(score: str, level: str, units: str | None, family: str) -> str:
    name = NAMES.get(score, NAMES.get(family, score.upper()))
    if m := WINDOW.search(score):
        name = f"{NAMES.get(family, family.upper())} ({m[1]} px)"
    if not level:
        return name
    if level == "mean":
        return f"{name}, mean over thresholds"
    if _is_number(level):
        return f"{name} at >= {level} {units or ''}".rstrip()
    return f"{name} of {level}"


def lead_time_figures(per_frame: Mapping, lead: LeadTime, units: Mapping | None = None,
                      thresholds_units: str | None = None) -> dict[str, tuple[Figure, list[list]]]:
    """{family: (figure, CSV rows)} of every score family in `per_frame` ({key: values per lead time},
    as eval's per_frame.csv) against `lead`: one panel per score and threshold (or variable), one line
    per method. `units`: {variable: unit} of the fields' RMSE; `thresholds_units`: the thresholds' unit.
    CSV rows: a header (lead time, then each key drawn), one row per lead time."""
    methods, out = methods_of(per_frame), {}
    units = units or {}
    for family, scores in families(per_frame).items():
        panels = [(score, level, keys) for score, levels in scores.items() for level, keys in levels.items()]
        wide = family == "scores" or len(scores) == 1
        columns = min(4, len(panels) if wide else max(len(v) for v in scores.values()))
        rows = math.ceil(len(panels) / columns)
        with matplotlib.rc_context(FONTS):
            figure = new_figure(4.0 * columns, 3.0 * rows + 0.8, layout=None)
            width, height = figure.get_size_inches()
            figure.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=0.6 / height,
                                   top=1 - 0.75 / height, wspace=0.3, hspace=0.45)
            # one score at several thresholds (CSI, FSS at its scales, ...) on one y scale; scores.png (MSE, SSIM,
            # ...) and the fields' scores per variable (in their units) each panel on its own
            thresholds = family != "scores" and all(_is_number(lv) or lv == "mean" for _, lv, _ in panels)
            axes = figure.subplots(rows, columns, squeeze=False, sharex=True, sharey=thresholds)
            for ax, (score, level, keys) in zip(axes.flat, panels):
                for method, key in keys.items():
                    values = np.asarray(per_frame[key], dtype=np.float64)
                    ax.plot(lead.values[:len(values)], values, **method_style(method, methods))
                ax.set_title(_panel_title(score, level, thresholds_units, family))
                unit = units.get(level) if score == "rmse" else SCALES.get(score)
                ax.set_ylabel(NAMES.get(score, NAMES.get(family, score.upper())) + (f" ({unit})" if unit else ""))
                ax.grid(True, alpha=0.3)
            for ax in axes.flat[len(panels):]:
                ax.set_visible(False)
            for ax in axes[-1]:
                ax.set_xlabel(lead.label)
            handles, labels = axes.flat[0].get_legend_handles_labels()
            for ax in axes.flat[1:len(panels)]:  # a method missing from the first panel
                for h, label in zip(*ax.get_legend_handles_labels()):
                    if label not in labels:
                        handles.append(h)
                        labels.append(label)
            figure.legend(handles, labels, loc="upper center", ncols=min(len(labels), 6), frameon=False)
        keys = [key for _, _, keys in panels for key in keys.values()]
        rows_csv = [[f"lead_time_{lead.unit}", *keys]]
        rows_csv += [[f"{t:g}", *(_csv_value(per_frame[k], i) for k in keys)] for i, t in enumerate(lead.values)]
        out[family] = (figure, rows_csv)
    return out


def _csv_value(values, i: int) -> str:
    return f"{float(values[i]):.6g}" if i < len(values) else ""


def performance_diagram(per_frame: Mapping, lead: LeadTime, units: str | None = None) -> Figure | None:
    """Roebber's (2009) performance diagram: POD against success ratio SR = 1 - FAR for each method
    (colour) and threshold (marker), a line through its lead times from the first (large marker) to the
    last, over lines of equal CSI = 1 / (1/SR + 1/POD - 1) (shaded, labelled) and of equal frequency
    bias = POD / SR (dashed). None without POD and FAR per threshold in `per_frame`."""
    found = families(per_frame)
    pod, far = found.get("pod", {}).get("pod", {}), found.get("far", {}).get("far", {})
    levels = [lv for lv in pod if lv in far and lv != "mean"]
    if not levels:
        return None
    methods = methods_of(per_frame)
    with matplotlib.rc_context(FONTS):
        figure = new_figure(9.0, 8.0)
        ax = figure.add_subplot()
        sr, pd = np.meshgrid(np.linspace(0.01, 1, 200), np.linspace(0.01, 1, 200))
        csi = 1 / (1 / sr + 1 / pd - 1)
        shaded = ax.contourf(sr, pd, csi, levels=np.linspace(0, 1, 11), cmap="Greys", alpha=0.35)
        lines = ax.contour(sr, pd, csi, levels=np.linspace(0.1, 0.9, 9), colors="grey", linewidths=0.6)
        ax.clabel(lines, fmt="%.1f", fontsize=10)
        for bias in (0.3, 0.5, 0.8, 1.0, 1.3, 2.0, 3.0, 5.0):
            x = np.linspace(0, 1, 50)
            ax.plot(x, bias * x, color="grey", linestyle="--", linewidth=0.8)
            # outside the frame, on its right and top edges as in Roebber's diagram: inside, they met the
            # CSI labels and the points
            end, offset, ha, va = ((1.0, bias), (3, 0), "left", "center") if bias <= 1 else \
                ((1 / bias, 1.0), (0, 3), "center", "bottom")
            ax.annotate(f"{bias:g}", end, xytext=offset, textcoords="offset points", fontsize=10, color="dimgrey",
                        ha=ha, va=va, annotation_clip=False)
        ax.annotate("bias", (1.0, 1.0), xytext=(3, 3), textcoords="offset points", fontsize=10, color="dimgrey",
                    ha="left", va="bottom", style="italic", annotation_clip=False)
        for m, method in enumerate(methods):
            for t, level in enumerate(levels):
                if method not in pod[level] or method not in far[level]:
                    continue
                p = np.asarray(per_frame[pod[level][method]], dtype=np.float64)
                s = 1 - np.asarray(per_frame[far[level][method]], dtype=np.float64)
                color, marker = COLORS[m % len(COLORS)], MARKERS[t % len(MARKERS)]
                ax.plot(s, p, color=color, marker=marker, markersize=4, linewidth=1.2)
                ax.plot(s[:1], p[:1], color=color, marker=marker, markersize=10, markeredgecolor="black",
                        linestyle="none")
        colours = [Line2D([], [], color=COLORS[m % len(COLORS)], linewidth=2, label=method_label(method))
                   for m, method in enumerate(methods)]
        markers = [Line2D([], [], color="black", marker=MARKERS[t % len(MARKERS)], linestyle="none",
                          label=f">= {level} {units or ''}".rstrip()) for t, level in enumerate(levels)]
        # below the axes (inside, it hid the points of a method that over-forecasts, upper left): methods
        # in the first row, thresholds in the second (a legend fills column by column)
        columns = max(len(colours), len(markers))
        blank = Line2D([], [], linestyle="none", label=" ")
        colours, markers = (row + [blank] * (columns - len(row)) for row in (colours, markers))
        handles = [handle for pair in zip(colours, markers) for handle in pair]
        figure.legend(handles=handles, loc="outside lower center", ncol=columns)
        ax.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", xlabel="success ratio (1 - FAR)",
               ylabel="probability of detection (POD)")
        first, last = lead.text(lead.values[0]), lead.text(lead.values[-1])
        ax.set_title(f"Performance diagram: lines from {first} (large marker) to {last};\n"
                     "shading and solid lines: CSI, dashed: frequency bias (labelled outside)", pad=18)
        figure.colorbar(shaded, ax=ax, shrink=0.6, pad=0.06, label="CSI")
    return figure


# --- forecast maps ----------------------------------------------------------------------------

def radar_scale(units: str, colors: str = "pysteps", thresholds=None, value_range=None):
    """(colour map, norm, ticks, note) of radar values in `units`: pysteps' intensity scale `colors`
    (dBZ and mm/h; values below its lowest level transparent), or the matplotlib colour map `colors` on
    the same levels; kg/m^2, pixel, or without pysteps: a perceptually uniform map from the lowest
    threshold (transparent below) to the top of `value_range`. `note`: one line when pysteps is wanted
    but not installed, else ""."""
    note, levels = "", None
    if units in PYSTEPS_UNITS:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                from pysteps.visualization.precipfields import get_colormap
        except ImportError:
            note = ("radar figures: pysteps is not installed (pip install -e \".[nowcast]\"), so they use the "
                    f"'{FALLBACK}' colour map instead of pysteps' precipitation scale")
        else:
            scale = colors if colors in PYSTEPS_SCALES else "pysteps"
            if scale == "BOM-RF3" and units != "mm/h":
                scale = "pysteps"
            cmap, norm, levels, _ = get_colormap("intensity", units, scale)
            if colors in PYSTEPS_SCALES:
                return cmap, norm, [float(v) for v in levels], note
            mapped = matplotlib.colormaps[colors].resampled(len(levels) - 1).with_extremes(under=(1, 1, 1, 0),
                                                                                            bad=MISSING)
            return mapped, BoundaryNorm(levels, len(levels) - 1), [float(v) for v in levels], note
    low, high = (float(v) for v in value_range) if value_range is not None else (0.0, 1.0)
    floor = float(thresholds[0]) if thresholds else low
    name = colors if colors in matplotlib.colormaps else FALLBACK
    cmap = matplotlib.colormaps[name].with_extremes(under=(1, 1, 1, 0), bad=MISSING)
    return cmap, Normalize(floor, high), None, note


def _frames(values: np.ndarray | None, count: int, pick: list[int]) -> list[np.ndarray | None]:
    if values is None:
        return [None] * count
    return [values[i] for i in pick] + [None] * (count - len(pick))


def _pick(frames: int, columns: int) -> list[int]:
    """`columns` frame indices out of `frames`, evenly spaced, the last included."""
    if frames <= columns:
        return list(range(frames))
    return sorted({int(round(v)) for v in np.linspace(frames - 1, 0, columns)[::-1]})


def forecast_panels(inputs: np.ndarray, targets: np.ndarray | None, forecasts: np.ndarray,
                    rendering: Rendering) -> tuple[dict[str, Figure], str]:
    """({name: figure}, note) of each sequence: a row of inputs, of targets (none
    when `targets` is None) and of forecasts each, panels titled with their time (inputs: up to the
    last, 0; forecasts: their lead time), with a colour bar in the data's units. inputs (N, T_in, C, H,
    W), targets and forecasts (N, T, C, H, W), numpy, in physical units (`rendering.physical`). Radar and
    frames: one figure `forecasts`; fields: one per variable, `forecasts_<name>`. `note`: `radar_scale`'s."""
    n = len(forecasts)
    if rendering.kind == "fields":
        return {f"forecasts_{name}": _field_figure(inputs[:n, :, c:c + 1], None if targets is None else
                                                   targets[:n, :, c:c + 1], forecasts[:n, :, c:c + 1], rendering, c)
                for c, name in enumerate(rendering.names)}, ""
    note = ""
    if rendering.kind == "radar":
        cmap, norm, ticks, note = radar_scale(rendering.units[0], rendering.colors, rendering.thresholds,
                                              _range(rendering))
        draw = {"cmap": cmap, "norm": norm}
        label = f"{_radar_quantity(rendering.units[0])} ({rendering.units[0]})"
        bar = (label, ticks)
    else:
        draw, bar = None, None
    return {"forecasts": _panels(inputs[:n], None if targets is None else targets[:n], forecasts[:n], rendering,
                                 draw, bar)}, note


def _range(rendering: Rendering) -> tuple[float, float]:
    zero, one = (float(rendering.physical(np.float32(v))) for v in (0.0, 1.0))
    return zero, one


def _radar_quantity(units: str) -> str:
    return {"dBZ": "reflectivity", "mm/h": "rain rate", "kg/m^2": "VIL"}.get(units, "value")


def _field_figure(inputs, targets, forecasts, rendering: Rendering, channel: int) -> Figure:
    values = np.concatenate([a.reshape(-1) for a in (inputs, targets, forecasts) if a is not None])
    values = values[np.isfinite(values)]
    low, high = (float(np.min(values)), float(np.max(values))) if values.size else (0.0, 1.0)
    if low < 0 < high:  # both signs: anomalies, wind components: diverging, centred on 0
        edge = max(-low, high)
        draw = {"cmap": matplotlib.colormaps[DIVERGING].with_extremes(bad=MISSING),
                "norm": TwoSlopeNorm(0, -edge, edge)}
    else:
        draw = {"cmap": matplotlib.colormaps[SEQUENTIAL].with_extremes(bad=MISSING),
                "norm": Normalize(low, high if high > low else low + 1)}
    unit = rendering.units[channel] if channel < len(rendering.units) else ""
    label = f"{rendering.names[channel]}" + (f" ({unit})" if unit else "")
    return _panels(inputs, targets, forecasts, rendering, draw, (label, None))


def _panels(inputs, targets, forecasts, rendering: Rendering, draw: dict | None, bar) -> Figure:
    """The panel figure: per sequence a row of inputs, of targets and of forecasts, each row one axes
    holding its frames side by side (times above each frame; fields: latitudes on the left, longitudes
    below the last row); `draw`: imshow's cmap and norm (None: grey or RGB in [0, 1]); `bar`: (label,
    ticks) of the colour bar, or None."""
    n, t_in, t_out = len(forecasts), inputs.shape[1], forecasts.shape[1]
    columns = min(MAX_COLUMNS, max(t_in, t_out))
    lead = _pick(t_out, columns)
    kinds = [("input", inputs, list(range(max(0, t_in - columns), t_in))),
             *([("target", targets, lead)] if targets is not None else []), ("forecast", forecasts, lead)]
    h, w = forecasts.shape[-2:]
    geo = rendering.kind == "fields" and rendering.lat is not None
    x0, x1, y0, y1 = _extent(rendering) if geo else (0.0, float(w), 0.0, float(h))
    width, gap = x1 - x0, 0.06 * (x1 - x0)
    panel = min((MAX_WIDTH - 2.5) / columns, 2.4)  # inches per frame
    rows = n * len(kinds)
    with matplotlib.rc_context(FONTS):
        figure = new_figure(panel * columns + 2.5, rows * (panel * (y1 - y0) / width + 0.55) + 1.0)
        axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
        image = None
        for s in range(n):
            for k, (kind, values, pick) in enumerate(kinds):
                ax = axes[s * len(kinds) + k]
                lefts = [x0 + j * (width + gap) for j in range(len(pick))]
                for left, index in zip(lefts, pick):
                    image = _show(ax, values[s, index], draw, (left, left + width, y0, y1), rendering)
                    ax.add_patch(Rectangle((left, y0), width, y1 - y0, fill=False, edgecolor="grey", linewidth=0.6))
                top = ax.secondary_xaxis("top")
                times = rendering.lead.inputs(t_in) if kind == "input" else rendering.lead.leads(t_out)
                top.set_xticks([left + width / 2 for left in lefts], [times[i] for i in pick])
                top.tick_params(length=0)
                ax.set_xlim(x0 - gap / 2, x0 + columns * (width + gap) - gap / 2)
                ax.set_ylim(y0, y1)
                ax.set_aspect("equal")
                ax.set_ylabel(f"{kind} {s + 1}")
                for spine in (*ax.spines.values(), *top.spines.values()):
                    spine.set_visible(False)
                if geo:
                    ax.yaxis.set_major_locator(MaxNLocator(3))
                    ax.yaxis.set_major_formatter(_degrees("N", "S"))
                    ax.set_xticks([])
                else:
                    ax.set_xticks([])
                    ax.set_yticks([])
        if geo:
            ticks = [t for t in MaxNLocator(3).tick_values(x0, x1) if x0 <= t <= x1]
            last = axes[-1]
            last.set_xticks([t + j * (width + gap) for j in range(columns) for t in ticks],
                            [_degrees("E", "W")(t, None) for _ in range(columns) for t in ticks])
            last.set_xlabel("longitude (each frame); latitude on the left")
            _coastlines(axes, [x0 + j * (width + gap) - x0 for j in range(columns)])
        if bar and image is not None:
            label, ticks = bar
            figure.colorbar(image, ax=axes, shrink=min(1.0, 4 / rows + 0.3), label=label, ticks=ticks)
        figure.suptitle(f"Forecasts ({rendering.kind}): inputs up to 0, " +
                        ("targets and forecasts" if targets is not None else "forecasts") +
                        f" at their lead time ({rendering.lead.unit})")
    return figure


def _show(ax, frame: np.ndarray, draw: dict | None, extent, rendering: Rendering):
    """imshow of one frame (C, H, W) at `extent` (left, right, bottom, top): channel 0 with `draw`'s cmap
    and norm; without: grey or RGB in [0, 1]. Row 0 is drawn at the top unless it is the southernmost latitude."""
    up = rendering.lat is not None and rendering.kind == "fields" and rendering.lat[0] < rendering.lat[-1]
    where = {"extent": extent, "origin": "lower" if up else "upper", "interpolation": "nearest"}
    if draw is None:
        if frame.shape[0] == 3:
            return ax.imshow(np.clip(np.nan_to_num(frame.transpose(1, 2, 0)), 0, 1), **where)
        return ax.imshow(frame[0], cmap=matplotlib.colormaps["gray"].with_extremes(bad=MISSING), vmin=0, vmax=1,
                         **where)
    return ax.imshow(np.ma.masked_invalid(frame[0]), **where, **draw)


def _extent(rendering: Rendering) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) of the grid in degrees, half a cell beyond the outer points."""
    lat, lon = np.asarray(rendering.lat), np.asarray(rendering.lon)
    dy = abs(lat[1] - lat[0]) / 2 if len(lat) > 1 else 0.5
    dx = abs(lon[1] - lon[0]) / 2 if len(lon) > 1 else 0.5
    return float(lon.min() - dx), float(lon.max() + dx), float(lat.min() - dy), float(lat.max() + dy)


def _degrees(positive: str, negative: str):
    return FuncFormatter(lambda v, _: f"{abs(v):g}°{positive if v > 0 else negative if v < 0 else ''}")


def _coastlines(axes, shifts: list[float]) -> None:
    """Coastlines on every frame (shifted by `shifts` degrees of longitude) when cartopy and its Natural
    Earth data are installed (never required; without them the maps have none)."""
    try:
        import cartopy.io.shapereader as shapereader
        path = shapereader.natural_earth(resolution="110m", category="physical", name="coastline")
        lines = [np.asarray(g.coords) for g in shapereader.Reader(path).geometries() if hasattr(g, "coords")]
    except Exception:  # no cartopy, or no map data offline: maps without coastlines
        return
    for ax in axes:
        limits = ax.get_xlim(), ax.get_ylim()
        for shift in shifts:
            for line in lines:
                for wrap in (0.0, 360.0):  # grids of longitudes 0..360 and -180..180
                    ax.plot(line[:, 0] + wrap + shift, line[:, 1], color="black", linewidth=0.5)
        ax.set_xlim(limits[0])
        ax.set_ylim(limits[1])


def colorize(frames: torch.Tensor, rendering: Rendering) -> torch.Tensor:
    """Frames (..., C, H, W) as the data modules give them -> RGB (..., 3, H, W) in [0, 1] on the figures'
    colour scale, over white (radar: `radar_scale`; fields: channel 0 on viridis over its range);
    frames kind: unchanged."""
    if rendering.kind == "frames":
        return frames
    values = rendering.physical(frames.detach().float().cpu())[..., 0, :, :]
    if rendering.kind == "radar":
        cmap, norm, _, _ = radar_scale(rendering.units[0], rendering.colors, rendering.thresholds, _range(rendering))
    else:
        finite = values[np.isfinite(values)]
        cmap = matplotlib.colormaps[SEQUENTIAL].with_extremes(bad=MISSING)
        norm = Normalize(float(finite.min()), float(finite.max())) if finite.size else Normalize(0, 1)
    rgba = cmap(norm(np.ma.masked_invalid(values)))
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])  # transparent: white
    return torch.from_numpy(np.moveaxis(rgb, -1, -3).astype(np.float32))


# --- a test's figures ---------------------------------------------------------------------------

def test_figures(per_frame: Mapping, forecasts, rendering: Rendering, thresholds_units: str | None = None,
                 field_units: Mapping | None = None) -> tuple[dict[str, tuple[Figure, list | None]], str]:
    """({name: (figure, CSV rows or None)}, note) of a test: `lead_time_figures` of `per_frame`, the
    `performance_diagram` and the `forecast_panels` of `forecasts` = (inputs, targets, predictions) as the
    data modules give them (tensors; None: no panels)."""
    out = {name: pair for name, pair in lead_time_figures(per_frame, rendering.lead, field_units,
                                                          thresholds_units).items()}
    if (diagram := performance_diagram(per_frame, rendering.lead, thresholds_units)) is not None:
        out["performance_diagram"] = (diagram, None)
    note = ""
    if forecasts is not None:
        x, y, pred = (rendering.physical(t.float().cpu()) for t in forecasts)
        panels, note = forecast_panels(x, y, pred, rendering)
        out.update({name: (figure, None) for name, figure in panels.items()})
    return out, note


def write_test_figures(folder: Path, figures: Mapping[str, tuple[Figure, list | None]]) -> Path:
    """Write each figure as `folder`/figures/<name>.png (and its CSV rows as <name>.csv); returns the folder."""
    out = Path(folder) / "figures"
    out.mkdir(parents=True, exist_ok=True)
    for name, (figure, rows) in figures.items():
        save(figure, out / f"{name}.png")
        if rows is not None:
            with open(out / f"{name}.csv", "w", newline="") as file:
                csv.writer(file).writerows(rows)
    return out


def field_units(rendering: Rendering) -> dict[str, str]:
    """{variable: unit} of a fields rendering (the RMSE axes' units)."""
    return dict(zip(rendering.names, rendering.units))
