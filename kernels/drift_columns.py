"""Drift statistics API, part 1: packed sorted samples (:class:`SortedColumns`), results, checks.

See :mod:`engine.kernels.drift` for the input layouts and the backends;
import the public names from there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _registry

DEFAULT_BINS = 10
PSI_EPS = 1e-4
WASSERSTEIN_STD_FLOOR = 1e-3


# ---------------------------------------------------------------------------
# Packed, sorted samples
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SortedColumns:
    """Columns of samples packed into one array, each sorted, NaN removed.

    Column ``j`` is ``values[offsets[j]:offsets[j + 1]]`` (ascending);
    ``nan_counts[j]`` NaN were dropped from it. Build it with
    :func:`sort_columns`, or :meth:`from_packed` for data already packed.

    Examples
    --------
    >>> s = sort_columns([np.array([3.0, np.nan, 1.0]), np.array([2.0])])
    >>> s.column(0), s.counts, s.nan_counts
    (array([1., 3.]), array([2, 1]), array([1, 0]))
    """

    values: np.ndarray
    offsets: np.ndarray
    nan_counts: np.ndarray

    def __post_init__(self):
        v, o, nc = self.values, self.offsets, self.nan_counts
        if not (isinstance(v, np.ndarray) and v.dtype == np.float64 and v.ndim == 1
                and v.flags.c_contiguous):
            raise TypeError("SortedColumns.values must be a contiguous 1-D float64 array")
        if not (isinstance(o, np.ndarray) and o.dtype == np.int64 and o.ndim == 1 and len(o) >= 1):
            raise TypeError("SortedColumns.offsets must be a 1-D int64 array of length k + 1")
        if o[0] != 0 or o[-1] != len(v) or np.any(np.diff(o) < 0):
            raise ValueError("SortedColumns.offsets must rise from 0 to len(values)")
        if not (isinstance(nc, np.ndarray) and nc.dtype == np.int64 and nc.shape == (len(o) - 1,)):
            raise TypeError("SortedColumns.nan_counts must be an int64 array with one entry per column")

    @classmethod
    def from_packed(cls, values, offsets, nan_counts=None, *, assume_sorted: bool = False,
                    backend: str | None = None) -> SortedColumns:
        """Columns already packed as ``(values, offsets)``; sorted here unless ``assume_sorted``.

        NaN in ``values`` is rejected: drop (and count) it first, or use
        :func:`sort_columns`. With ``assume_sorted=True`` the caller promises
        ascending columns (a stored profile); nothing checks it.
        """
        v = (np.ascontiguousarray(values, dtype=np.float64) if assume_sorted
             else np.array(values, dtype=np.float64, order="C"))  # a copy: sorted in place below
        o = np.ascontiguousarray(offsets, dtype=np.int64)
        if v.ndim != 1:
            raise ValueError(f"values must be 1-D, got shape {v.shape}")
        if np.isnan(v).any():
            raise ValueError("values must not contain NaN; drop it per column and pass nan_counts")
        nc = np.zeros(len(o) - 1, np.int64) if nan_counts is None else \
            np.ascontiguousarray(nan_counts, dtype=np.int64)
        out = cls(v, o, nc)
        if not assume_sorted:
            _registry.call("sort_segments", v, o, backend=backend)
        return out

    @property
    def n_columns(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        """Number of (non-NaN) values per column."""
        return np.diff(self.offsets)

    def column(self, j: int) -> np.ndarray:
        return self.values[self.offsets[j]:self.offsets[j + 1]]


def _float_column_array(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (int, bool or float), got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def sort_columns(data, *, backend: str | None = None) -> SortedColumns:
    """Drop NaN from every column (counting it), convert to float64 and sort.

    Parameters
    ----------
    data : array_like (n_obs, k) or (n_obs,), sequence of 1-D arrays, or SortedColumns
        See the module docstring for the accepted layouts.
    backend : {"numba", "reference"}, optional
        The numba backend sorts with a parallel LSD radix sort on the floats'
        bit patterns (about 5x ``np.sort`` on 100k values); ``-0.0`` sorts
        before ``+0.0``, which no statistic here can tell apart.

    Returns
    -------
    SortedColumns
    """
    return _as_sorted(data, "data", backend)


def _is_column_list(a) -> bool:
    """A list/tuple of arrays is a list of columns; a flat list of numbers is one column."""
    return isinstance(a, (list, tuple)) and len(a) > 0 and any(np.ndim(e) > 0 for e in a)


def _as_sorted(data, name: str, backend: str | None) -> SortedColumns:
    if isinstance(data, SortedColumns):
        return data
    if _is_column_list(data):
        cols = [_float_column_array(c, f"{name}[{j}]") for j, c in enumerate(data)]
        for j, c in enumerate(cols):
            if c.ndim != 1:
                raise ValueError(f"{name}[{j}] must be a 1-D array (one column), got shape {c.shape}")
        offsets = np.zeros(len(cols) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(c) for c in cols])
        # concatenate always copies, so sorting in place leaves the caller's arrays alone
        return _sort_packed(np.concatenate(cols), offsets, backend)
    arr = _float_column_array(data, name)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D (one column) or 2-D (n_obs, k), got shape {arr.shape}")
    # Column-major packing: a view of Fortran-ordered data (copied below, the sort is in
    # place), else one (blocked) transposing copy, cheaper than reading columns strided.
    values = np.ravel(arr, order="F")
    if np.may_share_memory(values, data):
        values = values.copy()
    n, k = arr.shape
    return _sort_packed(values, np.arange(k + 1, dtype=np.int64) * n, backend)


def sort_packed_columns(values: np.ndarray, offsets, *, backend: str | None = None) -> SortedColumns:
    """Drop NaN from every packed column of ``values`` and sort it, in place: no copy.

    Column ``c`` is ``values[offsets[c]:offsets[c + 1]]``. Afterwards the
    sorted columns are packed at the front of ``values``, and the result views
    them. For callers that fill one packed array themselves (a profile casts
    each column straight into its slot); :func:`sort_columns` packs for you.

    Parameters
    ----------
    values : ndarray of float64, 1-D, C-contiguous and writable
    offsets : array_like of int, rising from 0 to ``len(values)``
    backend : {"numba", "reference"}, optional

    Examples
    --------
    >>> v = np.array([3.0, np.nan, 1.0, 2.0])
    >>> s = sort_packed_columns(v, [0, 3, 4])
    >>> s.column(0), s.column(1), s.nan_counts
    (array([1., 3.]), array([2.]), array([1, 0]))
    """
    if not (isinstance(values, np.ndarray) and values.dtype == np.float64 and values.ndim == 1
            and values.flags.c_contiguous and values.flags.writeable):
        raise TypeError("values must be a writable, C-contiguous 1-D float64 array "
                        "(it is sorted in place)")
    o = np.ascontiguousarray(offsets, dtype=np.int64)
    if o.ndim != 1 or len(o) < 1 or o[0] != 0 or o[-1] != len(values) or np.any(np.diff(o) < 0):
        raise ValueError(f"offsets must rise from 0 to len(values) = {len(values)}")
    return _sort_packed(values, o, backend)


def _sort_packed(values: np.ndarray, offsets: np.ndarray, backend) -> SortedColumns:
    offsets, nan_counts = _registry.call("sort_packed", values, offsets, backend=backend)
    return SortedColumns(values[:offsets[-1]], offsets, nan_counts)


def _pair(ref, cur, backend) -> tuple[SortedColumns, SortedColumns]:
    r = _as_sorted(ref, "ref", backend)
    c = _as_sorted(cur, "cur", backend)
    if r.n_columns != c.n_columns:
        raise ValueError(f"ref has {r.n_columns} columns but cur has {c.n_columns}")
    return r, c


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnStatistic:
    """One statistic (and p-value, for tests) per column.

    Unpacks as ``statistic, pvalue = result``.

    Attributes
    ----------
    name : str
        The kernel, e.g. ``"ks_2samp"``.
    statistic, pvalue : ndarray of float64, shape (k,)
        ``pvalue`` is None for distances. NaN where ``reason`` says why.
    reason : tuple of (str or None)
        Per column: None when the statistic was computed, else why not.
    n_ref, n_cur : ndarray
        Values used per column (non-NaN values; for counts, the totals).
    nan_ref, nan_cur : ndarray of int64 or None
        NaN dropped per column (None for count inputs).
    dof : ndarray of int64 or None
        Degrees of freedom (chi-square and G tests; -1 where not computed).
    """

    name: str
    statistic: np.ndarray
    pvalue: np.ndarray | None
    reason: tuple[str | None, ...]
    n_ref: np.ndarray
    n_cur: np.ndarray
    nan_ref: np.ndarray | None = None
    nan_cur: np.ndarray | None = None
    dof: np.ndarray | None = None

    def __iter__(self):
        return iter((self.statistic, self.pvalue))


def _sample_reasons(r: SortedColumns, c: SortedColumns, min_n: int, test: str) -> list[str | None]:
    out: list[str | None] = []
    for nr, nc, xr, xc in zip(r.counts, c.counts, r.nan_counts, c.nan_counts):
        why = None
        for side, n, nan in (("reference", nr, xr), ("current", nc, xc)):
            if n == 0:
                why = f"{side} column has no values" + (f" ({nan} NaN dropped)" if nan else "")
                break
            if n < min_n:
                why = f"{test} needs at least {min_n} values per sample; {side} has {n}"
                break
        out.append(why)
    return out


def _sample_result(name, stat, pval, reasons, r, c) -> ColumnStatistic:
    return ColumnStatistic(name, stat, pval, tuple(reasons), r.counts, c.counts,
                           r.nan_counts.copy(), c.nan_counts.copy())


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    return eps


def _check_base(base: float) -> float:
    base = float(base)
    if not (base > 0 and base != 1 and np.isfinite(base)):
        raise ValueError(f"base must be a positive number other than 1, got {base}")
    return base
