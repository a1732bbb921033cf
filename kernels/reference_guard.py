"""Plain NumPy references of the guard's batch kernels (the ground truth for ``guard_numba``).

Codes (uint8, one per value), shared by every backend:

* ``guard_range``: 0 inside ``[lo, hi]``, 1 below ``lo``, 2 above ``hi``, 3 NaN when
  ``nan_ok`` is false (NaN is 0 when it is true). Comparisons are IEEE: ``-0.0 == 0.0``,
  ``inf`` is above any finite ``hi`` and inside ``[lo, inf]``.
* ``guard_category``: 0 a seen category (``seen[index]``), 1 an unseen one, 3 a null
  (``index < 0``) when ``null_ok`` is false (0 when it is true).
"""

from __future__ import annotations

import numpy as np


def guard_range(x: np.ndarray, lo: float, hi: float, nan_ok: bool) -> np.ndarray:
    """Range and NaN codes of ``x`` (see the module docstring).

    Examples
    --------
    >>> guard_range(np.array([0.0, -1.0, 5.0, np.nan]), 0.0, 1.0, False).tolist()
    [0, 1, 2, 3]
    """
    x = np.asarray(x)
    out = np.zeros(len(x), dtype=np.uint8)
    out[x < lo] = 1
    out[x > hi] = 2
    if not nan_ok:
        out[np.isnan(x)] = 3
    return out


def guard_category(indices: np.ndarray, seen: np.ndarray, null_ok: bool) -> np.ndarray:
    """Category codes of dictionary ``indices`` (``-1``: null) given ``seen`` per dictionary entry.

    Examples
    --------
    >>> guard_category(np.array([0, 1, -1]), np.array([True, False]), False).tolist()
    [0, 1, 3]
    """
    idx = np.asarray(indices)
    out = np.zeros(len(idx), dtype=np.uint8)
    valid = idx >= 0
    out[valid] = np.where(np.asarray(seen, dtype=bool)[idx[valid]], 0, 1)
    if not null_ok:
        out[~valid] = 3
    return out
