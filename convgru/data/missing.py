"""Missing pixels: a declared no-data value and coverage mask, and the check for undeclared NaN / inf."""

import numpy as np

from .arrays import SequenceArray


class MissingPixels:
    """Which pixels of a sequence array are valid: not equal to `value` (nan: not NaN) and nonzero in `mask`.

    `mask` is None, an (H, W) array (a static coverage mask) or a SequenceArray shaped like the data.
    """

    def __init__(self, value: float | None = None, mask: np.ndarray | SequenceArray | None = None):
        self.value, self.mask = value, mask

    def valid(self, frames: np.ndarray, n: int, t0: int) -> np.ndarray:
        """Boolean array shaped like `frames` (T, C, H, W), the frames t0.. of sequence n: True where valid."""
        valid = np.ones(frames.shape, dtype=bool)
        if self.value is not None:
            valid &= ~np.isnan(frames) if np.isnan(self.value) else frames != self.value
        if isinstance(self.mask, SequenceArray):
            valid &= self.mask.clip(n, t0, t0 + len(frames)) != 0
        elif self.mask is not None:
            valid &= self.mask != 0
        return valid


def check_finite(frames: np.ndarray, valid: np.ndarray | None, where: str, t0: int, frames_in: int | None = None):
    """Raise ValueError naming `where` and the frames when float `frames` (T, C, H, W), the frames t0.. of a
    sequence, hold NaN or inf where `valid` (None: everywhere) says a pixel is not declared missing.
    `frames_in` (None: not a window) tells input frames from target frames in the message."""
    if not np.issubdtype(frames.dtype, np.floating):
        return
    bad = ~np.isfinite(frames)
    if valid is not None:
        bad &= valid
    if not bad.any():
        return
    kinds = " and ".join(name for name, test in (("NaN", np.isnan), ("inf", np.isinf)) if (test(frames) & bad).any())
    frames_bad, count = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1)), int(bad.sum())
    role = ("" if frames_in is None else "input " if frames_bad[-1] < frames_in
            else "target " if frames_bad[0] >= frames_in else "input and target ")
    shown = ", ".join(str(t0 + t) for t in frames_bad[:5]) + (", ..." if len(frames_bad) > 5 else "")
    raise ValueError(
        f"{where}: {kinds} in {role}frame{'s' * (len(frames_bad) > 1)} {shown} ({count} value{'s' * (count > 1)}). "
        "Declare missing pixels with data.missing_value=nan (or the file's no-data value) and/or data.mask_file=... "
        "so they are left out (inputs 0, targets NaN), or clean the file"
    )
