"""Physical units: the [0, 1] scaling of every data module (`scale`), its inverse and thresholds in
the scaled space (`to_scaled`), the units of radar data and the Z-R relation of HKO-7.

Domain layer: below the data modules and training, above the library; imports torch, numpy and
the library's argument checks.
"""

import math

import numpy as np
import torch

from convgru._checks import OptionError

# Marshall-Palmer-type Z-R relation used by HKO-7 (Shi et al. 2017): Z = A * R**B, Z in mm^6 m^-3, R in mm/h.
ZR_A = 58.53
ZR_B = 1.56
#: Units of radar data (data.units, model.loss_units): what the physical values of value_range are.
UNITS = {
    "dBZ": "radar reflectivity",
    "mm/h": "rain rate",
    "kg/m^2": "vertically integrated liquid (VIL)",
    "pixel": "stored pixel values, e.g. SEVIR VIL 0..254 (255: missing)",
}


def check_value_range(value_range, option: str = "value_range") -> tuple[float, float] | None:
    """`value_range` as (low, high) floats, or None for None: the physical values that map to 0 and 1.
    Raises OptionError naming `option` unless it is two numbers with high > low."""
    if value_range is None:
        return None
    try:
        low, high = (float(v) for v in value_range) if not isinstance(value_range, (str, bytes)) else (None, None)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise OptionError(option, "expected [low, high] with high > low (the physical values that map to 0 and 1), "
                          f"found {value_range!r}")
    return low, high


def to_physical(x, value_range):
    """Map values scaled to [0, 1] back to physical units: low + x * (high - low), `value_range` = (low, high).

    Approximate (float32 rounding: 53 mm/h of value_range [0, 100] comes back as 52.999996), so
    never compare its result with a threshold; compare the scaled values with `to_scaled(thr)`.
    """
    low, high = value_range
    return low + x * (high - low)


def scale(frames, value_range, clip: bool = True) -> torch.Tensor:
    """Values in physical units -> float32 tensor mapped from `value_range` = (low, high) to [0, 1].

    The one scaling of convgru: every data module scales its values with it, and `to_scaled` scales
    thresholds with it. float32 first, then (v - low) / (high - low) and the clip to [0, 1] (with
    `clip`), each in float32; always a copy, never a view of `frames` (any array-like).
    """
    low, high = value_range
    values = torch.from_numpy(np.array(frames, dtype=np.float32))
    if low != 0:
        values.sub_(low)
    if high - low != 1:
        values.div_(high - low)
    if clip:
        values.clamp_(0.0, 1.0)
    return values


def to_scaled(values, value_range) -> torch.Tensor:
    """Physical values (thresholds) -> 1-d float32 tensor of what the data modules make of them.

    Runs the values through `scale`, as the data modules do, so that, each step rounding
    monotonically, a value v >= thr in the user's units (as stored in the files) gives a scaled
    value >= to_scaled(thr): comparing scaled data with scaled thresholds counts every such value,
    where mapping the data back with `to_physical` loses some to rounding. Values that the float32
    scaling cannot tell from thr count as well.
    """
    low, high = (float(v) for v in value_range)
    return scale(np.asarray(values, dtype=np.float64).reshape(-1), (low, high))


def rain_rate_to_dbz(rate, a: float = ZR_A, b: float = ZR_B):
    """Rain rate R (mm/h, > 0) -> reflectivity in dBZ: 10 log10(Z) with Z = a R^b (HKO-7: a=58.53, b=1.56).

    With the defaults 0.5, 2, 5, 10, 30 mm/h give 12.98, 22.37, 28.58, 33.27, 40.72 dBZ. Works on
    floats and arrays; the inverse is R = (10^(dBZ / 10) / a)^(1 / b).
    """
    return 10.0 * np.log10(a) + 10.0 * b * np.log10(rate)
