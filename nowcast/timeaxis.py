"""The store's time axis, in numpy alone: which windows of consecutive frames are whole.

A store (``nowcast.store``) and the frames predict starts from (``nowcast.predict.inputs``) share
one regular time axis with a validity flag per time. A sample (training), a forecast input
(predict) and a scored start (verify) are all windows of consecutive times, and each is built
only where every time in it is valid: a window that crosses a missing time never is. This module
imports numpy only, so ``nowcast.verify`` can use it without the store's Zarr.
"""

from __future__ import annotations

import numpy as np


def whole_windows(valid: np.ndarray, length: int) -> np.ndarray:
    """Where a window of ``length`` consecutive times is all valid.

    Args:
        valid: (T,) validity flags of a regular time axis.
        length: times per window, at least 1.

    Returns:
        (max(T - length + 1, 0),) bool: True at ``s`` when ``valid[s : s + length]`` are all True.
    """
    if length < 1:
        raise ValueError(f"a window needs at least one time, got length {length}")
    valid = np.asarray(valid, dtype=bool)
    if len(valid) < length:
        return np.zeros(0, bool)
    missing = np.concatenate([[0], np.cumsum(~valid)])  # missing[k]: missing times before k
    return missing[length:] == missing[:-length]
