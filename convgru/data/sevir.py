"""SEVIR (Veillette et al. 2020) vertically integrated liquid (VIL): stored pixel values to kg/m^2."""

import numpy as np

VIL_MISSING = 255  # pixel value of missing data in SEVIR's `vil` files


def vil_to_kgm2(pixels) -> np.ndarray:
    """SEVIR VIL pixel values (uint8, 0..254; 255 = missing) -> VIL in kg/m^2 (float32, NaN where missing).

    The decoding published with SEVIR (MIT Lincoln Laboratory, SEVIR tutorial, "Decoding SEVIR
    data": github.com/MIT-AI-Accelerator/eie-sevir, examples/SEVIR_Tutorial.ipynb), for a stored
    value X:

        0                        if X <= 5
        (X - 2) / 90.66          if 5 < X <= 18
        exp((X - 83.9) / 38.9)   if 18 < X <= 254

    and X = 255 where data are missing. The map is non-decreasing, so a threshold on pixel values
    (e.g. 16, 74, 133, 160, 181, 219, the CSI thresholds of the SEVIR nowcasting literature) is
    the threshold vil_to_kgm2(X) in kg/m^2. M. Veillette, S. Samsi, C. Mattioli, "SEVIR: A Storm
    Event Imagery Dataset for Deep Learning Applications in Radar and Satellite Meteorology",
    NeurIPS 2020.
    """
    x = np.asarray(pixels, dtype=np.float32)
    vil = np.where(x <= 18, (x - 2) / np.float32(90.66), np.exp((x - np.float32(83.9)) / np.float32(38.9)))
    vil[x <= 5] = 0.0
    vil[x == VIL_MISSING] = np.nan
    return vil
