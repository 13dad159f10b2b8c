"""Physical units of radar data: the [0, 1] scaling of the data modules and the Z-R relation of HKO-7."""

import numpy as np

# Marshall-Palmer-type Z-R relation used by HKO-7 (Shi et al. 2017): Z = A * R**B, Z in mm^6 m^-3, R in mm/h.
ZR_A = 58.53
ZR_B = 1.56
# Units of radar data (data.units, model.loss_units): what the physical values of value_range are.
UNITS = {
    "dBZ": "radar reflectivity",
    "mm/h": "rain rate",
    "kg/m^2": "vertically integrated liquid (VIL)",
    "pixel": "stored pixel values, e.g. SEVIR VIL 0..254 (255: missing)",
}


def to_physical(x, value_range):
    """Map values scaled to [0, 1] back to physical units: low + x * (high - low), `value_range` = (low, high)."""
    low, high = value_range
    return low + x * (high - low)


def rain_rate_to_dbz(rate, a: float = ZR_A, b: float = ZR_B):
    """Rain rate R (mm/h, > 0) -> reflectivity in dBZ: 10 log10(Z) with Z = a R^b (HKO-7: a=58.53, b=1.56).

    With the defaults 0.5, 2, 5, 10, 30 mm/h give 12.98, 22.37, 28.58, 33.27, 40.72 dBZ. Works on
    floats and arrays; the inverse is R = (10^(dBZ / 10) / a)^(1 / b).
    """
    return 10.0 * np.log10(a) + 10.0 * b * np.log10(rate)
