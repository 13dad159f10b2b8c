"""The figures of a test (convgru/training/figures.py), checked without eyes: the files eval writes, lead-time
axes of frames_out points (read back from their CSV), colour bars in the data's units, pixels in colour where
the data says so, text of at least 10 points, at most 1600 pixels wide. From the suite's tiny runs: one eval
of the nowcast run with figures, the video run's forecasts, real NetCDF fields."""

import csv
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.text import Annotation, Text
from PIL import Image

from conftest import ROOT, compose_config
from convgru.training import evaluate, load_module
from convgru.training.figures import (
    LeadTime,
    Rendering,
    as_image,
    colorize,
    fields_rendering,
    forecast_panels,
    lead_time_figures,
    method_style,
    performance_diagram,
    radar_scale,
    rendering_of,
)
from convgru.training.images import first_forecasts


def _colour_bar(figure, unit: str):
    """The axes of the colour bar labelled with `unit`."""
    (bar,) = [ax for ax in figure.axes if unit in ax.get_ylabel()]
    return bar


@pytest.mark.slow
def test_make_figures_evaluates_a_checkpoint(nowcast_run, tmp_path, cache_dir):
    """scripts/make_figures.py --ckpt (how the docs' figures are made): the checkpoint evaluated, no training,
    the three figures the Training page shows copied to --out; the overrides reach the eval (its cache)."""
    best = next((nowcast_run[0] / "checkpoints").glob("epoch_*.ckpt"))
    work, out = tmp_path / "work", tmp_path / "figures"
    subprocess.run([sys.executable, "scripts/make_figures.py", "--ckpt", str(best), "--out", str(out), "--work",
                    str(work), f"paths.cache_dir={cache_dir}"], cwd=ROOT, check=True, capture_output=True)
    assert not (work / "train").exists()
    for name in ("forecasts.png", "csi.png", "performance_diagram.png"):
        assert (out / name).read_bytes() == (work / "eval" / "figures" / name).read_bytes()
    assert "persistence/csi_20" in (work / "eval" / "metrics.json").read_text()


def _small_text(figure) -> list[str]:
    return [t.get_text() for t in figure.findobj(Text) if t.get_text() and t.get_fontsize() < 10]


def test_eval_writes_the_nowcast_figures(nowcast_run, tmp_path, cache_dir):
    """One eval with figures: every score family against lead time in minutes (frames_out points, the
    model and both baselines, found from the keys), the performance diagram and the radar maps."""
    out, _, cfg, _ = nowcast_run
    best = next((out / "checkpoints").glob("epoch_*.ckpt"))
    overrides = [f"ckpt_path={best}", "num_images=2", "figures.enabled=true"]
    evaluate(compose_config("eval", tmp_path, overrides, cache_dir), overrides)
    folder = tmp_path / "figures"
    for name in ("scores", "csi", "pod", "far", "hss", "bias", "csi_pool", "fss"):
        rows = list(csv.reader(open(folder / f"{name}.csv")))
        assert rows[0][0] == "lead_time_min" and [r[0] for r in rows[1:]] == ["5", "10"], name  # frames_out = 2
        with Image.open(folder / f"{name}.png") as image:
            assert image.width <= 1600 and image.info["dpi"] == pytest.approx((100, 100), abs=0.01)
    header = next(csv.reader(open(folder / "csi.csv")))
    assert {"csi_20", "persistence/csi_20", "extrapolation/csi_40", "csi_mean"} <= set(header)
    fss = next(csv.reader(open(folder / "fss.csv")))
    assert {"fss_1px_20", "fss_21px_mean", "extrapolation/fss_5px_30"} <= set(fss)
    per_frame = {r["frame"]: r for r in csv.DictReader(open(tmp_path / "per_frame.csv"))}
    drawn = list(csv.DictReader(open(folder / "csi.csv")))
    for frame, row in zip(("1", "2"), drawn):
        assert float(row["persistence/csi_30"]) == pytest.approx(float(per_frame[frame]["persistence/csi_30"]),
                                                                 rel=1e-4, nan_ok=True)
    for name in ("performance_diagram", "forecasts"):
        with Image.open(folder / f"{name}.png") as image:
            assert image.width <= 1600
            rgb = np.asarray(image.convert("RGB")).astype(int)
    saturation = rgb.max(-1) - rgb.min(-1)
    assert (saturation > 100).sum() > 50  # the radar maps: rain in colour (synthetic cells of 20-60 dBZ)


def test_radar_maps_on_pysteps_scale_white_below_it():
    """dBZ: pysteps' levels 10 .. 60 dBZ on the colour bar; 50 dBZ drawn in pysteps' colour of 50 dBZ,
    0 dBZ white; cividis on the same levels as the colour-vision-friendly option."""
    lead = LeadTime([5.0, 10.0], "min")
    frames = np.zeros((1, 2, 1, 16, 16), np.float32)
    frames[..., 8:] = 50.0  # right half 50 dBZ, left half 0 dBZ
    for colors in ("pysteps", "cividis"):
        rendering = Rendering("radar", lead, units=["dBZ"], thresholds=[20, 30, 40], colors=colors)
        (figure,) = forecast_panels(frames, frames, frames, rendering)[0].values()
        bar = _colour_bar(figure, "dBZ")
        assert bar.get_ylim() == pytest.approx((10, 60)) and _small_text(figure) == []
        cmap, norm, ticks, note = radar_scale("dBZ", colors)
        assert note == "" and ticks[0] == 10 and ticks[-1] == 60
        expected = (np.asarray(cmap(norm(50.0))[:3]) * 255).round().astype(int)
        rgb = as_image(figure).astype(int)
        assert (np.abs(rgb - expected).max(-1) <= 1).sum() > 16 * 16  # 50 dBZ, in 6 panels of 8 x 16 pixels
        assert as_image(figure).shape[1] <= 1600
    coloured = colorize(torch.from_numpy(frames / 70), Rendering("radar", lead, lambda t: np.asarray(t) * 70,
                                                                  units=["dBZ"]))
    assert coloured.shape == (1, 2, 3, 16, 16)
    assert (coloured[..., :8] == 1).all() and (coloured[..., 8:] < 0.9).any()  # white below 10 dBZ, colour above


def test_radar_maps_without_pysteps_say_so(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pysteps.visualization.precipfields", None)
    cmap, norm, ticks, note = radar_scale("dBZ", "pysteps", [20, 30], (0, 70))
    assert "pysteps is not installed" in note and "\n" not in note
    assert cmap.name.startswith("cividis") and (norm.vmin, norm.vmax, ticks) == (20, 70, None)


def test_video_maps_in_grey(trained_run):
    """Moving MNIST: the maps are frames in grey (no colour anywhere), lead times in frames."""
    out, _, cfg = trained_run
    module = load_module(next((out / "checkpoints").glob("epoch_*.ckpt")))
    import hydra

    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("test")
    rendering = rendering_of(module)
    assert rendering.kind == "frames" and rendering.lead.values == [1.0, 2.0] and rendering.lead.unit == "frames"
    x, y, pred = first_forecasts(module, datamodule.test_dataloader().dataset, 2)
    (figure,) = forecast_panels(x.numpy(), y.numpy(), pred.numpy(), rendering)[0].values()
    rgb = as_image(figure).astype(int)
    assert (rgb.max(-1) - rgb.min(-1)).max() <= 2 and rgb.shape[1] <= 1600 and _small_text(figure) == []


def test_fields_maps_and_scores_in_their_units(tmp_path):
    """Real NetCDF fields: a map per variable with a colour bar in its units over the data's range
    (t2m in K on a sequential map, u10 of both signs on a diverging one centred on 0), latitudes in
    degrees; RMSE and ACC against lead hours for the model, persistence and climatology."""
    pytest.importorskip("xarray")
    from convgru.data.fields import FieldSource
    from convgru.training.fields import FieldTestScores
    from fields_data import write_netcdf

    source = FieldSource(write_netcdf(tmp_path, 1), ["t2m", "u10"])
    frames = source.read(0, 5)[None]  # (1, 5, 2, 8, 16) in K and m s-1
    rendering = fields_rendering(source, lambda t: np.asarray(t), LeadTime([6.0, 12.0], "h"))
    panels, _ = forecast_panels(frames[:, :3], frames[:, 3:], frames[:, 3:] + 1, rendering)
    assert set(panels) == {"forecasts_t2m", "forecasts_u10"}
    t2m = _colour_bar(panels["forecasts_t2m"], "(K)")
    assert t2m.get_ylabel() == "t2m (K)"
    values = np.concatenate([frames[:, :, 0].ravel(), frames[:, 3:, 0].ravel() + 1])
    assert t2m.get_ylim() == pytest.approx((np.nanmin(values), np.nanmax(values)), rel=1e-5)
    u10 = _colour_bar(panels["forecasts_u10"], "m s-1")
    low, high = u10.get_ylim()
    assert low == pytest.approx(-high) and low < 0  # centred on 0
    image = panels["forecasts_t2m"].axes[0]
    labels = [t.get_text() for t in image.get_yticklabels()]
    assert any(label.endswith("°N") for label in labels) and any(label.endswith("°S") for label in labels)
    assert all(_small_text(f) == [] for f in panels.values())

    mean, std = np.nanmean(frames, (0, 1, 3, 4)), np.nanstd(frames, (0, 1, 3, 4))
    from convgru.domain.fields import normalize

    scoring = {"names": source.names, "units": source.units, "height": 8, "latitudes": source.latitudes,
               "climatology": np.nanmean(source.read(0, 20), 0)[None], "mean": mean, "std": std, "lead_times": [6, 12],
               "lead_unit": "h"}
    scores = FieldTestScores(scoring, 2)  # a climatology table of one row, every target's
    z = torch.from_numpy(normalize(frames, mean, std)).float()
    scores.update(z[:, :3].nan_to_num(0.5), z[:, 3:].nan_to_num(0.5).clamp(0, 1), z[:, 3:], torch.zeros(1, 2).long())
    figures = lead_time_figures(scores.results()[1], LeadTime([6.0, 12.0], "h"), dict(zip(source.names,
                                                                                              source.units)))
    assert set(figures) == {"rmse", "acc"}
    figure, rows = figures["rmse"]
    assert rows[0] == ["lead_time_h", "rmse_t2m", "persistence/rmse_t2m", "climatology/rmse_t2m", "rmse_u10",
                       "persistence/rmse_u10", "climatology/rmse_u10"]
    assert [r[0] for r in rows[1:]] == ["6", "12"]
    assert [len(line.get_xdata()) for line in figure.axes[0].get_lines()] == [2, 2, 2]
    assert figure.axes[0].get_ylabel() == "latitude-weighted RMSE (K)" and _small_text(figure) == []


def test_frame_scores_say_their_scale():
    """MSE and MAE are sums over a frame's pixels (OpenSTL's convention): their axes say so, SSIM's does not."""
    per_frame = {"mse": [82.0, 81.0], "mae": [220.0, 218.0], "ssim": [0.03, 0.03]}
    figure, _ = lead_time_figures(per_frame, LeadTime([1.0, 2.0], "frames"))["scores"]
    labels = [ax.get_ylabel() for ax in figure.axes if ax.get_visible()]
    assert labels == ["MSE (sum over a frame's pixels)", "MAE (sum over a frame's pixels)", "SSIM"]


def test_baselines_named_and_styled_apart_thresholds_on_one_scale():
    """The baselines by the field's names (S-PROG, STEPS mean), each line style its own; the panels of one
    score at several thresholds share their y scale, scores.png's panels do not; the performance diagram's
    bias labels lie outside the frame and its legend below the axes."""
    methods = ("", "persistence/", "extrapolation/", "sprog/", "steps/")
    per_frame = {f"{m}{s}_{t}": [0.9 - 0.1 * i - 0.2 * (t == 40), 0.5 - 0.05 * i]
                 for i, m in enumerate(methods) for s in ("csi", "pod", "far") for t in (20, 40)}
    per_frame.update({"mse": [82.0, 81.0], "ssim": [0.5, 0.4]})
    lead = LeadTime([5.0, 10.0], "min")
    drawn = lead_time_figures(per_frame, lead, thresholds_units="dBZ")
    figure = drawn["csi"][0]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == [
        "model", "persistence", "extrapolation", "S-PROG", "STEPS mean"]
    names = ["model", "persistence", "extrapolation", "sprog", "steps"]
    assert len({str(method_style(m, names)["linestyle"]) for m in names}) == 5
    axes = [ax for ax in figure.axes if ax.get_visible()]
    assert len({ax.get_ylim() for ax in axes}) == 1
    scores = [ax for ax in drawn["scores"][0].axes if ax.get_visible()]
    assert scores[0].get_ylim() != scores[1].get_ylim()  # MSE and SSIM each on their own
    diagram = performance_diagram(per_frame, lead, "dBZ")
    ax = diagram.axes[0]
    bias = [t for t in ax.texts if isinstance(t, Annotation)]  # the CSI lines' labels are plain Text
    assert {"0.5", "2", "bias"} <= {t.get_text() for t in bias} and not ax.get_legend()
    assert all((t.xy[0] == 1.0 or t.xy[1] == 1.0) and t.get_annotation_clip() is False for t in bias)
    assert "STEPS mean" in [t.get_text() for t in diagram.legends[0].get_texts()]


def test_predict_draws_radar_in_its_colours(nowcast_run, tmp_path):
    """predict.py --png / --gif with a radar checkpoint: maps in dBZ on pysteps' scale, a coloured GIF."""
    from convgru.deploy.predict import main

    out, _, cfg, _ = nowcast_run
    rng = np.random.default_rng(0)
    frames = np.zeros((2, cfg.data.frames_in, 1, 16, 16), np.float32)
    frames[..., 4:12, 4:12] = rng.uniform(30, 60, (2, cfg.data.frames_in, 1, 8, 8))  # a storm in dBZ
    np.save(tmp_path / "radar.npy", frames)
    main([str(next((out / "checkpoints").glob("epoch_*.ckpt"))), str(tmp_path / "radar.npy"), str(tmp_path / "o.npy"),
          "--value-range", "0", "70", "--png", str(tmp_path / "o.png"), "--gif", str(tmp_path / "o.gif")])
    with Image.open(tmp_path / "o.png") as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    assert image.width <= 1600 and ((rgb.max(-1) - rgb.min(-1)) > 100).sum() > 100  # the storm in colour
    with Image.open(tmp_path / "o.gif") as gif:
        assert gif.n_frames == cfg.data.frames_in + cfg.data.frames_out
        colours = np.asarray(gif.convert("RGB")).astype(int)
    assert ((colours.max(-1) - colours.min(-1)) > 100).any()
