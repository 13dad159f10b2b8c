"""pysteps' nowcasts, the baselines of precipitation nowcasting: optical-flow extrapolation, S-PROG
and the STEPS ensemble mean.

A motion field is estimated from the input frames with one of pysteps' optical-flow methods
(Lucas-Kanade by default; DARTS, VET, Proesmans, Farneback). Then, after Pulkkinen et al. (2019),
"Pysteps: an open-source Python library for probabilistic precipitation nowcasting (v1.0)", GMD 12:

- extrapolation: the last input frame advected along it over the lead times with pysteps'
  semi-Lagrangian extrapolation (Germann and Zawadzki 2002), `pysteps.nowcasts.get_method("extrapolation")`;
- sprog: S-PROG (Seed 2003): the last `ar_order` + 1 frames decomposed into `n_cascade_levels`
  spatial scales, each advected and evolved by its own AR(`ar_order`) model, so that the small
  scales, less predictable, are smoothed away with lead time (`pysteps.nowcasts.sprog`);
- steps: the mean of a STEPS ensemble (Bowler et al. 2006, Seed et al. 2013): S-PROG's cascade
  with stochastic noise and velocity perturbations, `members` members drawn from `seed`
  (`pysteps.nowcasts.steps`; velocity perturbations with `kmperpixel` km per pixel and frames
  `timestep` minutes apart). pysteps' guide compares MSE-trained networks with S-PROG and the STEPS
  mean: they smooth where the future is uncertain, as such networks do.

Extrapolation runs in the data's physical units. S-PROG and STEPS need a log scale with a
rain/no-rain threshold (`rain_threshold`, in the data's units; values below it are no rain): dBZ is
one and is used as it is (default threshold `rain_rate_to_dbz(0.1)`, 0.1 mm/h with HKO-7's Z-R
relation, 2.07 dBZ); any other unit is dB-transformed first, 10 log10(v) (default threshold 0.1 for
mm/h; the other units must give one), and back after. The STEPS mean is taken over the members in
the data's units. Pixels advected from outside the frame get the lowest value of the data
(value_range's low: no rain); a sequence whose last input frames hold no rain is forecast as no
rain without calling pysteps (its cascade methods need rain to fit).

pysteps (and OpenCV, for Lucas-Kanade and Farneback) come with the `nowcast` extra,
`pip install -e ".[nowcast]"`; this module imports them only when a nowcast is made or checked.
"""

import contextlib
import hashlib
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from convgru._checks import OptionError
from convgru.atomic import atomic_write
from convgru.domain.units import check_value_range, rain_rate_to_dbz, scale, to_physical

MOTION_METHODS = ("lucaskanade", "darts", "vet", "proesmans", "farneback")  # pysteps.motion.get_method names
NEEDS_OPENCV = ("lucaskanade", "farneback")
LAST_FRAMES = {"vet": 3, "proesmans": 2}  # methods that take only the most recent input frames
INSTALL = 'pip install -e ".[nowcast]"'
# each method's options and their defaults; rain_threshold None: `default_rain_threshold`
CASCADE = {"motion": "lucaskanade", "n_cascade_levels": 6, "ar_order": 2, "rain_threshold": None}
METHODS = {
    "extrapolation": {"motion": "lucaskanade"},
    "sprog": CASCADE,
    "steps": {**CASCADE, "members": 20, "seed": 0, "kmperpixel": 1.0, "timestep": 5.0},
}
NAMES = {"extrapolation": "extrapolation", "sprog": "S-PROG", "steps": "STEPS mean"}
RAIN_RATE_THRESHOLD = 0.1  # mm/h: pysteps' usual rain/no-rain threshold


def import_pysteps(option: str = "extrapolation", motion: str = "lucaskanade"):
    """pysteps' motion and nowcasts modules, imported quietly (pysteps prints where its configuration file
    is on import); OptionError naming `option` and the `nowcast` extra when pysteps (or OpenCV, which
    `motion` may need) is not installed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import pysteps.motion
            import pysteps.nowcasts
        if motion in NEEDS_OPENCV:
            import cv2  # noqa: F401
    except ImportError as error:
        needs = "pysteps and OpenCV" if motion in NEEDS_OPENCV else "pysteps"
        raise OptionError(option, f"the {option.rsplit('.', 1)[-1]} baseline needs {needs}, "
                          f"not installed here ({error}); install them with {INSTALL}, or leave the "
                          f"baseline out ({option}=null)") from None
    return pysteps.motion, pysteps.nowcasts


def _is_int(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def check_options(options, option: str = "extrapolation", method: str = "extrapolation") -> dict:
    """The options of `method` (a key of `METHODS`) with defaults filled in; OptionError naming `option`
    (or `option.key`) for unknown keys, bad values, or when pysteps is not installed."""
    defaults = METHODS[method]
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise OptionError(option, f"expected options such as {{motion: lucaskanade}}, found {options!r}")
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise OptionError(option, f"unknown option(s) {unknown}, expected some of {list(defaults)}")
    chosen = {**defaults, **options}
    if chosen["motion"] not in MOTION_METHODS:
        raise OptionError(f"{option}.motion", f"expected one of pysteps' motion methods {list(MOTION_METHODS)}, "
                          f"found {chosen['motion']!r}")
    rules = {"n_cascade_levels": (lambda v: _is_int(v, 1), "an integer >= 1"),
             "ar_order": (lambda v: v in (1, 2) and not isinstance(v, bool), "1 or 2"),
             "members": (lambda v: _is_int(v, 1), "an integer >= 1"),
             "seed": (lambda v: _is_int(v, 0), "an integer >= 0"),
             "kmperpixel": (lambda v: _is_number(v) and v > 0, "a number > 0"),
             "timestep": (lambda v: _is_number(v) and v > 0, "a number > 0 (minutes)"),
             "rain_threshold": (lambda v: v is None or _is_number(v), "a number in the data's units, or null")}
    for key, (ok, expected) in rules.items():
        if key in chosen and not ok(chosen[key]):
            raise OptionError(f"{option}.{key}", f"expected {expected}, found {chosen[key]!r}")
    import_pysteps(option, chosen["motion"])
    return chosen


def default_rain_threshold(units: str, option: str = "rain_threshold") -> float:
    """S-PROG's and STEPS' rain/no-rain threshold in `units`: 0.1 mm/h, as such in mm/h and as
    `rain_rate_to_dbz(0.1)` (2.07 dBZ) in dBZ; OptionError naming `option` for other units."""
    if units == "mm/h":
        return RAIN_RATE_THRESHOLD
    if units == "dBZ":
        return float(rain_rate_to_dbz(RAIN_RATE_THRESHOLD))
    raise OptionError(option, f"expected a rain/no-rain threshold in {units} (values below it are no rain): "
                      f"there is no default for {units}, found null")


def motion_field(frames: np.ndarray, motion: str = "lucaskanade") -> np.ndarray:
    """The motion field (2, H, W) of `motion` (pysteps.motion.get_method) from frames (T_in, H, W): all
    of them (the last 3 for VET, the last 2 for Proesmans, which take no more; DARTS with its orders
    lowered to fit small inputs, N_t to T_in - 2 and N_x, N_y to half the frame, so T_in >= 3 there)."""
    motions, _ = import_pysteps(motion=motion)
    kwargs = {}
    if motion == "darts":  # its orders (N_t 4, N_x = N_y 50 by default) must be below T_in - 1 and H / 2, W / 2
        t, h, w = frames.shape
        kwargs = {"N_t": min(4, t - 2), "N_y": min(50, (h - 1) // 2), "N_x": min(50, (w - 1) // 2)}
    # DARTS and VET print their progress; Lucas-Kanade's outlier test warns (0/0, a singular covariance)
    # where it finds few vectors, e.g. in a frame with one small cell
    with _quiet():
        return motions.get_method(motion)(frames[-LAST_FRAMES.get(motion, len(frames)):], **kwargs)


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pysteps\.")
        yield


def extrapolation_nowcast(frames: np.ndarray, future: int, motion: str = "lucaskanade", outval: float = 0.0):
    """pysteps' extrapolation nowcast: frames (T_in, H, W) in physical units, T_in >= 2 (float64) ->
    (future, H, W): the last frame advected along `motion_field(frames, motion)` 1, ..., future steps
    ahead (semi-Lagrangian, linear interpolation), `outval` where the flow comes from outside the frame."""
    _, nowcasts = import_pysteps(motion=motion)
    velocity = motion_field(frames, motion)
    with _quiet():
        return nowcasts.get_method("extrapolation")(frames[-1], velocity, future, extrap_kwargs={"outval": outval})


def cascade_nowcast(method: str, frames: np.ndarray, future: int, units: str = "dBZ", outval: float = 0.0,
                    motion: str = "lucaskanade", n_cascade_levels: int = 6, ar_order: int = 2,
                    rain_threshold: float | None = None, members: int = 20, seed: int = 0,
                    kmperpixel: float = 1.0, timestep: float = 5.0) -> np.ndarray:
    """pysteps' S-PROG (`method` "sprog") or STEPS ensemble mean ("steps") of frames (T_in, H, W) in
    `units`, T_in >= ar_order + 1 (float64) -> (future, H, W) in `units` (see the module's docstring:
    the log scale, the rain threshold, the members). The motion is estimated from all input frames
    (`motion_field`), the cascade from the last ar_order + 1; `outval` (no rain) where the forecast is
    below the rain threshold or comes from outside the frame."""
    _, nowcasts = import_pysteps(motion=motion)
    if rain_threshold is None:
        rain_threshold = default_rain_threshold(units)
    if units == "dBZ":
        field, threshold = frames, rain_threshold
    else:  # pysteps' dB transform: 10 log10(v) at and above the threshold, 5 dB below it elsewhere
        threshold = 10 * np.log10(rain_threshold)
        field = np.where(frames >= rain_threshold, 10 * np.log10(np.maximum(frames, rain_threshold)), threshold - 5)
    recent = field[-(ar_order + 1):]
    if not (recent >= threshold).any():  # nothing to fit the cascade to: no rain stays no rain
        return np.full((future, *frames.shape[1:]), outval, dtype=np.float64)
    velocity = motion_field(frames, motion)
    common = {"precip_thr": threshold, "n_cascade_levels": n_cascade_levels, "ar_order": ar_order}
    with _quiet():
        if method == "sprog":
            out = nowcasts.get_method("sprog")(recent, velocity, future, **common)
        else:
            out = nowcasts.get_method("steps")(recent, velocity, future, n_ens_members=members, seed=seed,
                                               kmperpixel=kmperpixel, timestep=timestep, **common)
    if units != "dBZ":
        out = np.where(out >= threshold, 10 ** (out / 10), outval)
    out = np.where(np.isfinite(out) & (out >= rain_threshold), out, outval)
    return out.mean(0) if method == "steps" else out


class PystepsNowcast:
    """A pysteps nowcast (`method`: extrapolation | sprog | steps) of batches as the data modules give them.

    `PystepsNowcast(method, options, value_range, units)(x, future)`: x (B, T_in, C, H, W) scaled to
    [0, 1] from `value_range` = (low, high) in `units` (None: [0, 1]), T_in >= 2 (S-PROG and STEPS:
    >= ar_order + 1) -> (B, future, C, H, W) float32 in [0, 1] on x's device: each sequence and
    channel mapped to physical units (`to_physical`), forecast on the CPU (`extrapolation_nowcast`,
    `cascade_nowcast`), and scaled back as the data modules scale values (`scale`). `options` are
    `check_options`' (OptionError naming `option` as it does).

    With `cache_dir`, each batch's forecast is kept in `cache_dir`/baselines/<method>-<key>.npy, the
    key a SHA-256 of the method, its options (seed included), value_range, units, future and the
    inputs' bytes, and read back when the same batch comes again (a later test or eval of the same
    data): a file that is not a float32 array of the forecast's shape is recomputed and replaced.
    `seconds` and `sequences` add up the time spent forecasting and the sequences forecast (cache
    hits not counted), `cached` the sequences read from the cache.
    """

    def __init__(self, method: str = "extrapolation", options: dict | None = None, value_range=None,
                 units: str = "dBZ", option: str = "extrapolation", cache_dir=None):
        if method not in METHODS:
            raise OptionError(option, f"expected one of pysteps' nowcasts {list(METHODS)}, found {method!r}")
        self.method, self.units = method, units
        self.options = check_options(options, option, method)
        if method != "extrapolation" and self.options["rain_threshold"] is None:
            self.options["rain_threshold"] = default_rain_threshold(units, f"{option}.rain_threshold")
        self.value_range = check_value_range(value_range) or (0.0, 1.0)
        self.use_cache(cache_dir)

    def use_cache(self, cache_dir) -> None:
        """Keep forecasts in `cache_dir`/baselines from now on (None: no cache), and count afresh."""
        self.cache_dir = None if cache_dir is None else Path(cache_dir) / "baselines"
        self.seconds, self.sequences, self.cached = 0.0, 0, 0

    def _key(self, x: np.ndarray, future: int) -> str:
        described = json.dumps([self.method, self.options, self.value_range, self.units, future, x.shape, str(x.dtype)],
                               sort_keys=True)
        return hashlib.sha256(described.encode() + x.tobytes()).hexdigest()[:32]

    def _forecast(self, x: np.ndarray, future: int) -> np.ndarray:
        frames = to_physical(x.astype(np.float64), self.value_range)
        out = np.empty((x.shape[0], future, *x.shape[2:]), dtype=np.float64)
        low = self.value_range[0]
        for b in range(x.shape[0]):
            for c in range(x.shape[2]):
                if self.method == "extrapolation":
                    out[b, :, c] = extrapolation_nowcast(frames[b, :, c], future, self.options["motion"], low)
                else:
                    out[b, :, c] = cascade_nowcast(self.method, frames[b, :, c], future, self.units, low,
                                                   **self.options)
        return scale(out, self.value_range).numpy()

    def __call__(self, x: torch.Tensor, future: int) -> torch.Tensor:
        needs = 2 if self.method == "extrapolation" else self.options["ar_order"] + 1
        if x.ndim != 5 or x.shape[1] < max(2, needs):
            raise ValueError(f"{NAMES[self.method]} needs inputs (B, T_in, C, H, W) with T_in >= {max(2, needs)}, "
                             f"got {tuple(x.shape)}")
        inputs = x.detach().to("cpu", torch.float32).numpy()
        shape = (x.shape[0], future, *x.shape[2:])
        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / f"{self.method}-{self._key(inputs, future)}.npy"
            try:
                out = np.load(path, allow_pickle=False)
                if out.shape == shape and out.dtype == np.float32:
                    self.cached += x.shape[0]
                    return torch.from_numpy(out).to(x.device)
            except (OSError, ValueError):
                pass  # absent or unreadable: computed again below
        start = time.perf_counter()
        out = self._forecast(inputs, future)
        self.seconds += time.perf_counter() - start
        self.sequences += x.shape[0]
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, f"the {NAMES[self.method]} cache") as tmp:
                np.save(tmp, out)
        return torch.from_numpy(out).to(x.device)


class Extrapolation(PystepsNowcast):
    """`PystepsNowcast("extrapolation", {"motion": motion}, value_range)`: the optical-flow extrapolation
    of batches (x, future) -> forecast, without a cache."""

    def __init__(self, motion: str = "lucaskanade", value_range=None, option: str = "extrapolation"):
        super().__init__("extrapolation", {"motion": motion}, value_range, option=option)
