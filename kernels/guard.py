"""The guard's batch checks: range/NaN codes, unseen-category codes, text scripts and trigram scores.

Public functions validate and convert, then dispatch to the kernel registry
(``engine.kernels._registry``): kernel ``guard_range`` is
``reference_guard.guard_range``, ``guard_numba.guard_range`` and
``guard_cuda.guard_range`` (CuPy, one thread per value or per string; picked where a GPU
is present for inputs of at least ``cuda_runtime.MIN_HOST_BYTES``), kernels
``guard_category`` and ``guard_text`` likewise. The codes are documented in
:mod:`engine.kernels.reference_guard`. ``engine.monitor.guard`` uses them for
:meth:`Guard.check` on batches.

Examples
--------
>>> import numpy as np
>>> range_codes(np.array([1.0, 9.0, np.nan]), 0.0, 5.0, nan_ok=True).tolist()
[0, 2, 0]
"""

from __future__ import annotations

import math

import numpy as np

from . import _registry, cuda_runtime
from ._registry import register_kernel

_ON_GPU = {"cuda": cuda_runtime.usable}
register_kernel("guard_range", reference=".reference_guard", numba=".guard_numba",
                cuda=cuda_runtime.loader(".guard_cuda", "guard_range"), is_usable_for=_ON_GPU)
register_kernel("guard_category", reference=".reference_guard", numba=".guard_numba",
                cuda=cuda_runtime.loader(".guard_cuda", "guard_category"), is_usable_for=_ON_GPU)
register_kernel("guard_text", reference=".reference_guard", numba=".guard_numba",
                cuda=cuda_runtime.loader(".guard_cuda", "guard_text"), is_usable_for=_ON_GPU)


def range_codes(x, lo: float, hi: float, *, nan_ok: bool, backend: str | None = None) -> np.ndarray:
    """Per value: 0 in ``[lo, hi]``, 1 below, 2 above, 3 NaN (0 when ``nan_ok``).

    ``x`` is a 1-D array of floats or integers (integers are read as float64).
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got shape {x.shape}")
    if x.dtype.kind in "iub":
        x = x.astype(np.float64)
    elif x.dtype.kind != "f":
        raise TypeError(f"x must hold numbers, got dtype {x.dtype}")
    elif x.dtype != np.float64:
        x = x.astype(np.float64)
    lo, hi = float(lo), float(hi)
    if math.isnan(lo) or math.isnan(hi) or lo > hi:
        raise ValueError(f"lo and hi must be numbers with lo <= hi, got [{lo}, {hi}]")
    return _registry.call("guard_range", np.ascontiguousarray(x), lo, hi, bool(nan_ok),
                          backend=backend)


def category_codes(indices, seen, *, null_ok: bool, backend: str | None = None) -> np.ndarray:
    """Per value: 0 seen, 1 unseen, 3 null (``index < 0``; 0 when ``null_ok``).

    ``indices`` are dictionary indices (int32 or int64), ``seen`` one bool per
    dictionary entry.
    """
    idx = np.asarray(indices)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise ValueError(f"indices must be a 1-D integer array, got {idx.dtype}{idx.shape}")
    seen = np.ascontiguousarray(np.asarray(seen, dtype=np.bool_))
    if len(idx) and int(idx.max(initial=-1)) >= len(seen):
        raise ValueError(f"indices go up to {int(idx.max())} but seen has {len(seen)} entries")
    return _registry.call("guard_category", np.ascontiguousarray(idx, dtype=np.int64), seen,
                          bool(null_ok), backend=backend)


def text_scores(data, offsets, char_ok, scores, *, backend: str | None = None):
    """Per string of a UTF-8 buffer: ``(unseen, sums, ntri)`` (see
    :mod:`engine.kernels.reference_guard`): whether a character is not allowed by
    ``char_ok`` (one bool per code point, the last entry for every code point past
    it), the summed ``scores`` of its hashed character trigrams, and their number.

    ``data`` is the bytes (uint8), ``offsets`` the ``n + 1`` non-decreasing string
    boundaries into it, as in an Arrow string array.

    Examples
    --------
    >>> ok = np.ones(0x110002, bool)
    >>> data = np.frombuffer(b"abcd", np.uint8)
    >>> [a.tolist() for a in text_scores(data, np.array([0, 4]), ok, np.full(16, 0.5))]
    [[0], [1.0], [2]]
    """
    data = np.asarray(data)
    if data.ndim != 1 or data.dtype != np.uint8:
        raise ValueError(f"data must be a 1-D uint8 array, got {data.dtype}{data.shape}")
    off = np.asarray(offsets)
    if off.ndim != 1 or off.dtype.kind not in "iu" or len(off) < 1:
        raise ValueError(f"offsets must be a non-empty 1-D integer array, got {off.dtype}{off.shape}")
    off = np.ascontiguousarray(off, dtype=np.int64)
    if len(off) > 1 and (off[0] < 0 or off[-1] > len(data) or bool((np.diff(off) < 0).any())):
        raise ValueError(f"offsets must be non-decreasing within [0, {len(data)}]")
    ok = np.ascontiguousarray(np.asarray(char_ok, dtype=np.bool_))
    if ok.ndim != 1 or len(ok) < 1:
        raise ValueError("char_ok must be a non-empty 1-D array of bools")
    sc = np.ascontiguousarray(np.asarray(scores, dtype=np.float64))
    if sc.ndim != 1 or len(sc) < 1:
        raise ValueError("scores must be a non-empty 1-D array of floats")
    return _registry.call("guard_text", np.ascontiguousarray(data), off, ok, sc, backend=backend)


__all__ = ["category_codes", "range_codes", "text_scores"]
