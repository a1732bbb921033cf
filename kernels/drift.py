"""Two-sample drift statistics over many columns at once: validation, packing, backend dispatch.

Numeric columns are compared sample against sample; categorical columns
through their per-category counts. Every function returns one value per
column, and a column that cannot be tested (empty after dropping NaN, too few
values) gets NaN and a ``reason`` instead of an exception.

Input representation
--------------------
Numeric samples (``ref``, ``cur``) may be

* a 2-D array of shape ``(n_obs, k)``: one column per feature. Fortran order
  (column-major, e.g. ``np.asfortranarray`` or a columnar table's
  ``to_numpy``) is read contiguously; C order works but reads with a stride;
* a 1-D array: a single column;
* a list or tuple of ``k`` 1-D arrays: columns of different lengths (a flat
  list of numbers is one column);
* a :class:`SortedColumns`: columns already packed and sorted. A reference
  profile sorts once (:func:`sort_columns`) and is reused for every batch,
  which removes the most expensive step from each comparison.

Integers, booleans and float16/32 are converted to float64. NaN is dropped per
column and counted (``nan_ref``/``nan_cur`` of the result); ``+-inf`` are kept
as ordinary, extreme values.

Category counts (``ref_counts``, ``cur_counts``) are, per column, the counts of
each category in the reference and in the current batch: the two rows of that
column's 2 x K contingency table. Either 2-D arrays of shape ``(k, K)`` (one row
per column; pad with zeros), a 1-D array (one column), or lists of ``k`` 1-D
arrays whose lengths may differ between columns.

Backends
--------
Each statistic is a kernel of the registry (``engine.kernels._registry``) with
a ``reference`` (NumPy, ``reference.py``) and a ``numba`` backend
(``drift_numba.py``, parallel over columns; the sort in ``sort_numba.py``);
``backend=`` or ``MLOPS_BACKEND`` forces one. The kernels are registered when
``engine.kernels`` is imported; numba loads on first use.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from . import _registry

_NUMBA_HINT = "pip install 'mlops-engine[numba]'"

# kernel name -> (reference function, numba "module:function"), both in engine.kernels.
# Registered as strings: numba is imported by the registry on first use, never here.
KERNELS = {
    "drift_sort_columns": ("drift_sort_columns", "sort_numba:sort_columns"),
    "drift_sort_segments": ("drift_sort_segments", "sort_numba:sort_segments"),
    "ks_2samp": ("ks_2samp_columns", "drift_numba:ks_2samp"),
    "wasserstein": ("wasserstein_columns", "drift_numba:wasserstein"),
    "cvm_2samp": ("cvm_2samp_columns", "drift_numba:cvm_2samp"),
    "numeric_drift": ("numeric_drift_columns", "drift_numba:numeric_drift"),
    "quantile_bins": ("quantile_bin_counts", "drift_numba:quantile_bins"),
    "psi": ("psi_counts", "drift_numba:psi"),
    "jensenshannon": ("jensenshannon_counts", "drift_numba:jensenshannon"),
    "hellinger": ("hellinger_counts", "drift_numba:hellinger"),
    "linf": ("linf_counts", "drift_numba:linf"),
    "chi2_contingency": ("chi2_contingency_counts", "drift_numba:chi2_contingency"),
}
for _name, (_ref, _nb) in KERNELS.items():
    _registry.register(_name, "reference", f"engine.kernels.reference:{_ref}")
    _registry.register(_name, "numba", f"engine.kernels.{_nb}", install_hint=_NUMBA_HINT)

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
            _registry.get("drift_sort_segments", backend)(v, o)
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
        keep = [c[~np.isnan(c)] for c in cols]
        nan_counts = np.array([len(c) - len(kc) for c, kc in zip(cols, keep)], dtype=np.int64)
        offsets = np.zeros(len(cols) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(kc) for kc in keep])
        # concatenate always copies, so sorting in place leaves the caller's arrays alone
        values = np.concatenate(keep) if keep else np.empty(0)
        _registry.get("drift_sort_segments", backend)(values, offsets)
        return SortedColumns(values, offsets, nan_counts)
    arr = _float_column_array(data, name)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D (one column) or 2-D (n_obs, k), got shape {arr.shape}")
    if not (arr.flags.f_contiguous or arr.flags.c_contiguous):
        arr = np.asfortranarray(arr)
    values, offsets, nan_counts = _registry.get("drift_sort_columns", backend)(arr)
    return SortedColumns(values, offsets, nan_counts)


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


# ---------------------------------------------------------------------------
# Tests on numeric samples
# ---------------------------------------------------------------------------


def ks_2samp_columns(ref, cur, *, backend: str | None = None) -> ColumnStatistic:
    """Two-sided two-sample Kolmogorov-Smirnov test per column.

    Same numbers as ``scipy.stats.ks_2samp(x, y, method="auto")``: the
    statistic ``D = max |F_ref - F_cur|`` with the ECDFs evaluated at every
    pooled value (ties included). When ``max(n_ref, n_cur) <= 10000`` the
    p-value is exact (Hodges 1958; Viehmann 2021) and, as scipy returns it, the
    statistic is the nearest lattice value ``h / lcm(n_ref, n_cur)``;
    otherwise ``kstwo.sf(D, round(n_ref*n_cur/(n_ref+n_cur)))`` (Simard &
    L'Ecuyer 2011).

    Parameters
    ----------
    ref, cur : numeric samples (see module docstring)
    backend : {"numba", "reference"}, optional

    Returns
    -------
    ColumnStatistic
        NaN where a column is empty (``reason`` says which side).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(1000, 3))
    >>> cur = ref + [0.0, 0.0, 1.0]
    >>> stat, p = ks_2samp_columns(ref, cur)
    >>> bool(p[2] < 1e-6), float(stat[0])
    (True, 0.0)
    """
    r, c = _pair(ref, cur, backend)
    stat, pval = _registry.get("ks_2samp", backend)(r.values, r.offsets, c.values, c.offsets)
    return _sample_result("ks_2samp", stat, pval, _sample_reasons(r, c, 1, "ks_2samp"), r, c)


def cvm_columns(ref, cur, *, backend: str | None = None) -> ColumnStatistic:
    """Two-sample Cramér-von Mises test per column.

    Same numbers as ``scipy.stats.cramervonmises_2samp(x, y, method="auto")``
    (Anderson 1962): ``T = U/(n m (n+m)) - (4nm - 1)/(6(n+m))`` with mid-ranks
    for ties; the exact p-value (Xiao, Gordon & Yakovlev 2006) when both
    samples have at most 20 values, else the limiting distribution of the
    normalized statistic (Csörgő & Faraway 1996). Needs 2 values per sample.

    Examples
    --------
    >>> t, p = cvm_columns(np.arange(10.0), np.arange(10.0) + 0.5)
    >>> round(float(t[0]), 6), bool(p[0] > 0.5)
    (0.025, True)
    """
    r, c = _pair(ref, cur, backend)
    stat, pval = _registry.get("cvm_2samp", backend)(r.values, r.offsets, c.values, c.offsets)
    reasons = _sample_reasons(r, c, 2, "cramervonmises_2samp")
    return _sample_result("cvm_2samp", stat, pval, reasons, r, c)


def _wasserstein(ref, cur, backend):
    r, c = _pair(ref, cur, backend)
    w1, sd = _registry.get("wasserstein", backend)(r.values, r.offsets, c.values, c.offsets)
    return r, c, w1, sd


def wasserstein_columns(ref, cur, *, backend: str | None = None) -> ColumnStatistic:
    """Wasserstein-1 (earth mover's) distance per column.

    ``W1 = integral |F_ref(t) - F_cur(t)| dt``, as
    ``scipy.stats.wasserstein_distance(x, y)`` (the integral between
    consecutive pooled values). Intervals where the ECDFs agree contribute 0
    even when they are infinitely wide, so equal masses at ``+-inf`` cancel
    (scipy's ``0 * inf`` would give NaN); unequal ones give ``inf``.

    Examples
    --------
    >>> float(wasserstein_columns([0.0, 1.0, 3.0], [5.0, 6.0, 8.0]).statistic[0])
    5.0
    """
    r, c, w1, _ = _wasserstein(ref, cur, backend)
    return _sample_result("wasserstein", w1, None, _sample_reasons(r, c, 1, "wasserstein"), r, c)


def wasserstein_normed_columns(ref, cur, *, backend: str | None = None,
                               std_floor: float = WASSERSTEIN_STD_FLOOR) -> ColumnStatistic:
    """Wasserstein-1 divided by the reference's spread, as Evidently's ``wasserstein``.

    ``W1(ref, cur) / max(np.std(ref), std_floor)`` with the population standard
    deviation (``ddof=0``) and ``std_floor = 0.001``: comparable across
    columns of different scales; the floor keeps constant references finite.

    Examples
    --------
    >>> float(wasserstein_normed_columns([0.0, 2.0], [1.0, 3.0]).statistic[0])
    1.0
    """
    if not (np.isfinite(std_floor) and std_floor > 0):
        raise ValueError(f"std_floor must be a positive number, got {std_floor!r}")
    r, c, w1, sd = _wasserstein(ref, cur, backend)
    with np.errstate(invalid="ignore"):
        normed = w1 / np.maximum(sd, std_floor)
    reasons = _normed_reasons(_sample_reasons(r, c, 1, "wasserstein"), sd)
    return _sample_result("wasserstein_normed", normed, None, reasons, r, c)


def numeric_drift_columns(ref, cur, *, backend: str | None = None,
                          std_floor: float = WASSERSTEIN_STD_FLOOR) -> dict[str, ColumnStatistic]:
    """KS, Wasserstein-1 (raw and normed) and Cramér-von Mises from one pass per column.

    The numba backend merges each pair of sorted samples once for all three
    statistics; results equal :func:`ks_2samp_columns`,
    :func:`wasserstein_columns`, :func:`wasserstein_normed_columns` and
    :func:`cvm_columns`.

    Returns
    -------
    dict
        ``{"ks_2samp", "wasserstein", "wasserstein_normed", "cvm_2samp"}`` to
        :class:`ColumnStatistic`.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> ref = sort_columns(rng.normal(size=(5000, 4)))  # once, as a profile would
    >>> out = numeric_drift_columns(ref, rng.normal(size=(3000, 4)) + [0, 0, 0, 1])
    >>> [bool(p < 0.01) for p in out["ks_2samp"].pvalue]
    [False, False, False, True]
    """
    if not (np.isfinite(std_floor) and std_floor > 0):
        raise ValueError(f"std_floor must be a positive number, got {std_floor!r}")
    r, c = _pair(ref, cur, backend)
    ks_s, ks_p, w1, sd, cvm_s, cvm_p = _registry.get("numeric_drift", backend)(
        r.values, r.offsets, c.values, c.offsets)
    one = _sample_reasons(r, c, 1, "ks_2samp")
    with np.errstate(invalid="ignore"):
        normed = w1 / np.maximum(sd, std_floor)
    return {
        "ks_2samp": _sample_result("ks_2samp", ks_s, ks_p, one, r, c),
        "wasserstein": _sample_result("wasserstein", w1, None, one, r, c),
        "wasserstein_normed": _sample_result("wasserstein_normed", normed, None,
                                             _normed_reasons(one, sd), r, c),
        "cvm_2samp": _sample_result("cvm_2samp", cvm_s, cvm_p,
                                    _sample_reasons(r, c, 2, "cramervonmises_2samp"), r, c),
    }


def _normed_reasons(reasons, sd):
    return [why if why or np.isfinite(s) else "reference standard deviation is not finite"
            for why, s in zip(reasons, sd)]


# ---------------------------------------------------------------------------
# Binned numeric samples
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Histograms:
    """Both samples counted in bins placed at the reference's quantiles.

    ``edges[j]`` are ``numpy.quantile`` (linear) of column ``j``'s finite
    reference values at ``0, 1/B, ..., 1``. Counts have ``B + 2`` bins: bin 0
    below the reference minimum, bins ``1..B`` between edges (``[e_{b-1},
    e_b)``, the last one closed), bin ``B + 1`` above the reference maximum.
    Tied quantiles leave empty bins, which no distance here is affected by.
    """

    edges: np.ndarray
    ref_counts: np.ndarray
    cur_counts: np.ndarray
    reason: tuple[str | None, ...]
    nan_ref: np.ndarray
    nan_cur: np.ndarray


def _n_bins(n_bins) -> int:
    try:
        n = operator.index(n_bins)
    except TypeError:
        raise TypeError(f"n_bins must be an integer, got {type(n_bins).__name__}") from None
    if n < 1:
        raise ValueError(f"n_bins must be >= 1, got {n}")
    return n


def histogram_columns(ref, cur, n_bins: int = DEFAULT_BINS, *,
                      backend: str | None = None) -> Histograms:
    """Quantile bins of the reference and both samples' counts in them (see :class:`Histograms`)."""
    n = _n_bins(n_bins)
    r, c = _pair(ref, cur, backend)
    q = np.linspace(0.0, 1.0, n + 1)
    edges, rc, cc = _registry.get("quantile_bins", backend)(r.values, r.offsets, c.values,
                                                            c.offsets, q)
    reasons = _sample_reasons(r, c, 1, "binning")
    reasons = [why if why or np.isfinite(e[0]) else "reference column has no finite values"
               for why, e in zip(reasons, edges)]
    return Histograms(edges, rc, cc, tuple(reasons), r.nan_counts.copy(), c.nan_counts.copy())


def _binned(kernel, ref, cur, n_bins, backend, *args) -> ColumnStatistic:
    h = histogram_columns(ref, cur, n_bins, backend=backend)
    k, nb = h.ref_counts.shape
    offsets = np.arange(k + 1, dtype=np.int64) * nb
    out = _registry.get(kernel, backend)(h.ref_counts.ravel(), h.cur_counts.ravel(), offsets, *args)
    return ColumnStatistic(kernel, out, None, h.reason, h.ref_counts.sum(axis=1),
                           h.cur_counts.sum(axis=1), h.nan_ref, h.nan_cur)


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


def psi_columns(ref, cur, n_bins: int = DEFAULT_BINS, *, eps: float = PSI_EPS,
                backend: str | None = None) -> ColumnStatistic:
    """Population stability index per column over the reference's quantile bins.

    ``PSI = sum_b (p_b - q_b) ln(p_b / q_b)`` with ``p``, ``q`` the reference
    and current proportions in the ``n_bins + 2`` bins of
    :func:`histogram_columns`, each clipped below at ``eps`` (``1e-4``) before
    the logarithm: ``p_b = max(count_b / n, eps)``, not renormalized. Empty
    bins in both samples contribute 0. Common reading: < 0.1 stable, 0.1-0.25
    moderate shift, > 0.25 major shift (Siddiqi 2006; Evidently's ``psi``).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(20000, 2))
    >>> psi = psi_columns(x, x + [0.0, 1.0]).statistic
    >>> bool(psi[0] == 0.0), bool(psi[1] > 0.25)
    (True, True)
    """
    return _binned("psi", ref, cur, n_bins, backend, _check_eps(eps))


def js_columns(ref, cur, n_bins: int = DEFAULT_BINS, *, base: float = 2.0,
               backend: str | None = None) -> ColumnStatistic:
    """Jensen-Shannon distance per column over the reference's quantile bins.

    ``scipy.spatial.distance.jensenshannon(p, q, base)`` of the bin
    proportions: ``sqrt((KL(p||m) + KL(q||m)) / 2)``, ``m = (p + q)/2``; in
    [0, 1] with the default base 2 (Lin 1991).
    """
    return _binned("jensenshannon", ref, cur, n_bins, backend, _check_base(base))


def hellinger_columns(ref, cur, n_bins: int = DEFAULT_BINS, *,
                      backend: str | None = None) -> ColumnStatistic:
    """Hellinger distance per column over the reference's quantile bins.

    ``H = sqrt(sum_b (sqrt p_b - sqrt q_b)^2 / 2)``, in [0, 1]. This form is
    used rather than the equal ``sqrt(1 - sum sqrt(p q))`` because it cannot
    go negative under rounding and keeps its precision near 0.
    """
    return _binned("hellinger", ref, cur, n_bins, backend)


# ---------------------------------------------------------------------------
# Category counts
# ---------------------------------------------------------------------------


def _count_columns(a, name: str) -> list[np.ndarray]:
    if _is_column_list(a):
        cols = [_float_column_array(c, f"{name}[{j}]") for j, c in enumerate(a)]
        for j, col in enumerate(cols):
            if col.ndim != 1:
                raise ValueError(f"{name}[{j}] must be 1-D (counts of one column), got {col.shape}")
        return cols
    arr = _float_column_array(a, name)
    if arr.ndim == 1:
        return [arr]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (k, n_categories), 1-D or a list of 1-D arrays, "
                         f"got shape {arr.shape}")
    return list(arr)


def _pack_counts(ref_counts, cur_counts):
    rcols = _count_columns(ref_counts, "ref_counts")
    ccols = _count_columns(cur_counts, "cur_counts")
    if len(rcols) != len(ccols):
        raise ValueError(f"ref_counts has {len(rcols)} columns but cur_counts has {len(ccols)}")
    for j, (r, c) in enumerate(zip(rcols, ccols)):
        if len(r) != len(c):
            raise ValueError(f"column {j}: ref_counts has {len(r)} categories, cur_counts {len(c)}")
    offsets = np.zeros(len(rcols) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(r) for r in rcols])
    rc = np.ascontiguousarray(np.concatenate(rcols) if rcols else np.empty(0), dtype=np.float64)
    cc = np.ascontiguousarray(np.concatenate(ccols) if ccols else np.empty(0), dtype=np.float64)
    for name, v in (("ref_counts", rc), ("cur_counts", cc)):
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            raise ValueError(f"{name} must be finite and non-negative")
    n_ref = np.add.reduceat(rc, offsets[:-1]) if len(rc) else np.zeros(len(rcols))
    n_cur = np.add.reduceat(cc, offsets[:-1]) if len(cc) else np.zeros(len(rcols))
    empty = np.diff(offsets) == 0  # reduceat repeats the next value for empty segments
    n_ref[empty], n_cur[empty] = 0.0, 0.0
    reasons = tuple("reference counts sum to 0" if nr == 0 else
                    "current counts sum to 0" if nc == 0 else None
                    for nr, nc in zip(n_ref, n_cur))
    return rc, cc, offsets, n_ref, n_cur, reasons


def _counts_stat(kernel, ref_counts, cur_counts, backend, *args) -> ColumnStatistic:
    rc, cc, offsets, n_ref, n_cur, reasons = _pack_counts(ref_counts, cur_counts)
    out = _registry.get(kernel, backend)(rc, cc, offsets, *args)
    return ColumnStatistic(kernel, out, None, reasons, n_ref, n_cur)


def _chi2(kernel, ref_counts, cur_counts, log_likelihood, correction, backend):
    rc, cc, offsets, n_ref, n_cur, reasons = _pack_counts(ref_counts, cur_counts)
    stat, pval, dof = _registry.get("chi2_contingency", backend)(rc, cc, offsets, log_likelihood,
                                                                 bool(correction))
    return ColumnStatistic(kernel, stat, pval, reasons, n_ref, n_cur, dof=dof)


def chi2_columns(ref_counts, cur_counts, *, correction: bool = True,
                 backend: str | None = None) -> ColumnStatistic:
    """Pearson's chi-square test of homogeneity per column on its 2 x K table.

    Same numbers as ``scipy.stats.chi2_contingency([ref_counts, cur_counts])``
    (statistic, p-value, dof): expected counts from the margins, and, like
    scipy's default, Yates' continuity correction when ``correction`` and the
    table has dof == 1. Categories absent from both samples are dropped
    first (scipy would reject their zero expected count); a column with a
    single remaining category has dof 0, statistic 0 and p-value 1.

    Examples
    --------
    >>> res = chi2_columns([[30, 10, 60]], [[25, 25, 50]])
    >>> round(float(res.statistic[0]), 4), round(float(res.pvalue[0]), 4), int(res.dof[0])
    (7.7922, 0.0203, 2)
    """
    return _chi2("chi2", ref_counts, cur_counts, False, correction, backend)


def gtest_columns(ref_counts, cur_counts, *, correction: bool = True,
                  backend: str | None = None) -> ColumnStatistic:
    """G-test (log-likelihood ratio) of homogeneity per column on its 2 x K table.

    ``scipy.stats.chi2_contingency(table, lambda_="log-likelihood")``:
    ``G = 2 sum O ln(O / E)``, chi-square distributed with ``K - 1`` dof;
    Yates' correction as in :func:`chi2_columns`.
    """
    return _chi2("gtest", ref_counts, cur_counts, True, correction, backend)


def linf_columns(ref_counts, cur_counts, *, backend: str | None = None) -> ColumnStatistic:
    """L-infinity distance ``max_i |p_i - q_i|`` of the category proportions per column.

    TensorFlow Data Validation's drift/skew comparator for categorical features.

    Examples
    --------
    >>> round(float(linf_columns([[30, 10, 60]], [[25, 25, 50]]).statistic[0]), 6)
    0.15
    """
    return _counts_stat("linf", ref_counts, cur_counts, backend)


def js_counts_columns(ref_counts, cur_counts, *, base: float = 2.0,
                      backend: str | None = None) -> ColumnStatistic:
    """Jensen-Shannon distance of the category proportions per column (see :func:`js_columns`)."""
    return _counts_stat("jensenshannon", ref_counts, cur_counts, backend, _check_base(base))


def psi_counts_columns(ref_counts, cur_counts, *, eps: float = PSI_EPS,
                       backend: str | None = None) -> ColumnStatistic:
    """Population stability index of the category proportions (see :func:`psi_columns`)."""
    return _counts_stat("psi", ref_counts, cur_counts, backend, _check_eps(eps))


def hellinger_counts_columns(ref_counts, cur_counts, *,
                             backend: str | None = None) -> ColumnStatistic:
    """Hellinger distance of the category proportions (see :func:`hellinger_columns`)."""
    return _counts_stat("hellinger", ref_counts, cur_counts, backend)


__all__ = [
    "ColumnStatistic",
    "Histograms",
    "SortedColumns",
    "chi2_columns",
    "cvm_columns",
    "gtest_columns",
    "hellinger_columns",
    "hellinger_counts_columns",
    "histogram_columns",
    "js_columns",
    "js_counts_columns",
    "ks_2samp_columns",
    "linf_columns",
    "numeric_drift_columns",
    "psi_columns",
    "psi_counts_columns",
    "sort_columns",
    "wasserstein_columns",
    "wasserstein_normed_columns",
]
