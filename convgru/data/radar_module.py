"""LightningDataModule for radar sequences in physical units: the array loader plus units, score
thresholds and offline synthetic radar."""

from pathlib import Path

from convgru._checks import OptionError
from convgru.domain import UNITS, check_thresholds
from convgru.domain.scores import check_sizes

from .array_module import SPLITS, ArrayDataModule
from .cache import USER_CACHE
from .synthetic_radar import (
    check_generation_memory,
    check_params,
    ensure_radar_dataset,
    radar_cache_path,
)

SYNTHETIC_OPTIONS = ("num_sequences", "seed", "num_frames", "image_size", "max_cells", "speed", "dynamics")


class RadarDataModule(ArrayDataModule):
    """Radar sequences (dBZ, mm/h, kg/m^2 or stored pixel values) from arrays, or synthetic radar.

    `value_range` = [low, high] (required) are the physical values, in `units` (one of `UNITS`),
    that map to 0 and 1; `thresholds` (in the same units, within value_range, or None) are the
    intensities at which forecasts are scored (model.thresholds takes them), `fss_scales` the
    neighbourhood sizes of the fractions skill score and `csi_pool_sizes` the max-pooling windows
    of pooled CSI, in pixels (model.fss_scales and model.csi_pool_sizes take them). With no files, `synthetic` =
    {num_sequences, seed, num_frames, image_size, max_cells, speed, dynamics} (num_frames defaults to
    frames_in + frames_out) generates `generate_radar` sequences in dBZ into `cache_dir` once and
    reads them as `files`, cut by `split`. `time_step_minutes` (None: unknown) is the time between two
    frames: the lead times of the figures in minutes. Every other option is ArrayDataModule's (`missing_value`
    and `mask_file` declare missing pixels: inputs 0, targets NaN).
    """

    def __init__(self, units: str = "dBZ", thresholds: list[float] | None = None, synthetic: dict | None = None,
                 cache_dir=USER_CACHE, value_range: list[float] | None = None,
                 layout: str = "NTHW", frames_in: int = 13, frames_out: int = 12, fss_scales: list[int] | None = None,
                 csi_pool_sizes: list[int] | None = None, time_step_minutes: float | None = None, **options):
        if units not in UNITS:
            raise OptionError("units", f"expected one of {list(UNITS)}, found {units!r}")
        if value_range is None:
            raise OptionError("value_range", f"expected [low, high], the values in {units} that map to 0 and 1 "
                             "(e.g. [0, 70] for reflectivity in dBZ), found None")
        self.synthetic = None
        if all(options.get(name) is None for name in ("files", *(f"{split}_files" for split in SPLITS))):
            if synthetic is None:
                raise OptionError("files", "expected array files (files, or train_files / val_files / test_files), or "
                                 "the synthetic option to generate synthetic radar, found neither")
            self.synthetic = _synthetic_options(synthetic, units, layout, frames_in + frames_out)
            options["files"] = [str(radar_cache_path(cache_dir, **self.synthetic))]
        super().__init__(value_range=value_range, layout=layout, frames_in=frames_in, frames_out=frames_out,
                         **options)
        self.thresholds = check_thresholds(thresholds, value_range) if thresholds is not None else None
        self.fss_scales = check_sizes(fss_scales, "fss_scales")
        self.csi_pool_sizes = check_sizes(csi_pool_sizes, "csi_pool_sizes")
        step = time_step_minutes
        if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or not step > 0):
            raise OptionError("time_step_minutes", f"expected a positive number of minutes or null, found "
                              f"{time_step_minutes!r}")
        self.units, self.cache_dir, self.time_step_minutes = units, Path(cache_dir), time_step_minutes

    def prepare_data(self) -> None:
        """Write the synthetic radar file into cache_dir unless it is there (once per node)."""
        if self.synthetic is not None:
            ensure_radar_dataset(self.cache_dir, **self.synthetic)

    def setup(self, stage: str | None = None) -> None:
        self.prepare_data()  # a no-op when prepare_data ran; generates when used without a Trainer
        super().setup(stage)


def _synthetic_options(synthetic, units: str, layout: str, length: int) -> dict:
    """The keyword arguments of ensure_radar_dataset (but cache_dir) from the `synthetic` option."""
    unknown = sorted(set(synthetic) - set(SYNTHETIC_OPTIONS))
    if unknown:
        raise OptionError("synthetic", f"unknown option(s) {unknown}, expected some of {list(SYNTHETIC_OPTIONS)}")
    options = {"num_frames": length, **{k: synthetic[k] for k in synthetic if synthetic[k] is not None}}
    if not isinstance(options.get("num_sequences"), int) or options["num_sequences"] < 1:
        raise OptionError("synthetic.num_sequences",
                          f"expected an integer >= 1, found {options.get('num_sequences')!r}")
    if options["num_frames"] < length:
        raise OptionError("synthetic.num_frames", f"expected at least frames_in + frames_out = {length}, "
                         f"found {options['num_frames']}")
    try:
        check_params(options["num_frames"], options.get("image_size", 64), options.get("max_cells", 4),
                     options.get("dynamics", "linear"))
    except OptionError as error:
        raise OptionError(f"synthetic.{error.option}", error.message) from None
    if units != "dBZ":
        raise OptionError("units", f"synthetic radar is reflectivity in dBZ, found units={units!r}")
    if layout != "NTHW":
        raise OptionError("layout", f"synthetic radar is stored (N, T, H, W), expected NTHW, found {layout!r}")
    if "speed" in options:
        options["speed"] = tuple(options["speed"])
    frames = ("data.frames_in + data.frames_out" if synthetic.get("num_frames") is None
              else "data.synthetic.num_frames")
    check_generation_memory(options["num_sequences"], options["num_frames"], options.get("image_size", 64),
                            options.get("max_cells", 4), f"{frames} = {options['num_frames']} frames: ",
                            f"lower {frames.replace(' + ', ', ')} or data.synthetic.image_size")
    return options
