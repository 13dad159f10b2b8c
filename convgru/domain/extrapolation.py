"""The optical-flow extrapolation nowcast of pysteps, the baseline of precipitation nowcasting.

A motion field is estimated from the input frames with one of pysteps' optical-flow methods
(Lucas-Kanade by default; DARTS, VET, Proesmans, Farneback), then the last input frame is advected
along it over the lead times with pysteps' semi-Lagrangian extrapolation (Germann and Zawadzki
2002), the nowcast `pysteps.nowcasts.get_method("extrapolation")` makes (Pulkkinen et al. 2019,
"Pysteps: an open-source Python library for probabilistic precipitation nowcasting (v1.0)", GMD 12).
Both run in the data's physical units (dBZ, mm/h, ...). Pixels advected from outside the frame
get the lowest value of the data (value_range's low: no rain).

pysteps (and OpenCV, for Lucas-Kanade and Farneback) come with the `nowcast` extra,
`pip install -e ".[nowcast]"`; this module imports them only when a nowcast is made or checked.
"""

import contextlib
import io
import warnings

import numpy as np
import torch

from convgru._checks import OptionError
from convgru.domain.units import check_value_range, scale, to_physical

MOTION_METHODS = ("lucaskanade", "darts", "vet", "proesmans", "farneback")  # pysteps.motion.get_method names
NEEDS_OPENCV = ("lucaskanade", "farneback")
LAST_FRAMES = {"vet": 3, "proesmans": 2}  # methods that take only the most recent input frames
INSTALL = 'pip install -e ".[nowcast]"'


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
        raise OptionError(option, f"the extrapolation baseline needs {needs}, "
                          f"not installed here ({error}); install them with {INSTALL}, or leave the "
                          f"baseline out ({option}=null)") from None
    return pysteps.motion, pysteps.nowcasts


def check_options(options, option: str = "extrapolation") -> dict:
    """The extrapolation baseline's options ({motion}) with defaults filled in; OptionError naming
    `option` for unknown keys or methods, or when pysteps is not installed."""
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise OptionError(option, f"expected options such as {{motion: lucaskanade}}, found {options!r}")
    unknown = sorted(set(options) - {"motion"})
    if unknown:
        raise OptionError(option, f"unknown option(s) {unknown}, expected motion")
    motion = options.get("motion", "lucaskanade")
    if motion not in MOTION_METHODS:
        raise OptionError(f"{option}.motion", f"expected one of pysteps' motion methods {list(MOTION_METHODS)}, "
                          f"found {motion!r}")
    import_pysteps(option, motion)
    return {"motion": motion}


def extrapolation_nowcast(frames: np.ndarray, future: int, motion: str = "lucaskanade", outval: float = 0.0):
    """pysteps' extrapolation nowcast: frames (T_in, H, W) in physical units, T_in >= 2 (float64) ->
    (future, H, W): the motion field of `motion` (pysteps.motion.get_method) estimated from the
    input frames (all of them; the last 3 for VET, the last 2 for Proesmans, which take no more;
    DARTS with its orders lowered to fit small inputs, N_t to T_in - 2 and N_x, N_y to half the
    frame, so T_in >= 3 there), and the last frame advected along it 1, ..., future steps ahead
    (semi-Lagrangian, linear interpolation), `outval` where the flow comes from outside the frame."""
    motions, nowcasts = import_pysteps(motion=motion)
    kwargs = {}
    if motion == "darts":  # its orders (N_t 4, N_x = N_y 50 by default) must be below T_in - 1 and H / 2, W / 2
        t, h, w = frames.shape
        kwargs = {"N_t": min(4, t - 2), "N_y": min(50, (h - 1) // 2), "N_x": min(50, (w - 1) // 2)}
    # DARTS and VET print their progress; Lucas-Kanade's outlier test warns (0/0, a singular covariance)
    # where it finds few vectors, e.g. in a frame with one small cell
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pysteps\.")
        velocity = motions.get_method(motion)(frames[-LAST_FRAMES.get(motion, len(frames)):], **kwargs)
        return nowcasts.get_method("extrapolation")(frames[-1], velocity, future, extrap_kwargs={"outval": outval})


class Extrapolation:
    """The extrapolation nowcast of batches as the data modules give them.

    `Extrapolation(motion, value_range)(x, future)`: x (B, T_in, C, H, W) scaled to [0, 1] from
    `value_range` = (low, high) physical units (None: [0, 1]), T_in >= 2 -> (B, future, C, H, W)
    float32 in [0, 1] on x's device: each sequence and channel mapped to physical units
    (`to_physical`), forecast by `extrapolation_nowcast` on the CPU, and scaled back as the data
    modules scale values (`scale`). Raises OptionError (naming `option`) as `check_options`.
    """

    def __init__(self, motion: str = "lucaskanade", value_range=None, option: str = "extrapolation"):
        self.motion = check_options({"motion": motion}, option)["motion"]
        self.value_range = check_value_range(value_range) or (0.0, 1.0)

    def __call__(self, x: torch.Tensor, future: int) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] < 2:
            raise ValueError(f"extrapolation needs inputs (B, T_in, C, H, W) with T_in >= 2, got {tuple(x.shape)}")
        frames = to_physical(x.detach().to("cpu", torch.float64).numpy(), self.value_range)
        out = np.empty((x.shape[0], future, *x.shape[2:]), dtype=np.float64)
        for b in range(x.shape[0]):
            for c in range(x.shape[2]):
                out[b, :, c] = extrapolation_nowcast(frames[b, :, c], future, self.motion, self.value_range[0])
        return scale(out, self.value_range).to(x.device)
