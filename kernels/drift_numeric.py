"""Drift statistics API, part 2: tests and distances on numeric samples (raw or binned).

See :mod:`engine.kernels.drift` for the input layouts and the backends;
import the public names from there.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from . import _registry
from .drift_columns import (
    DEFAULT_BINS,
    PSI_EPS,
    WASSERSTEIN_STD_FLOOR,
    ColumnStatistic,
    _check_base,
    _check_eps,
    _pair,
    _sample_reasons,
    _sample_result,
    sort_columns,  # noqa: F401  (used by the examples)
)

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
    stat, pval = _registry.call("ks_2samp", r.values, r.offsets, c.values, c.offsets,
                                backend=backend)
    return _sample_result("ks_2samp", stat, pval, _sample_reasons(r, c, 1, "ks_2samp"), r, c)


def cvm_2samp_columns(ref, cur, *, backend: str | None = None) -> ColumnStatistic:
    """Two-sample Cramér-von Mises test per column.

    Same numbers as ``scipy.stats.cramervonmises_2samp(x, y, method="auto")``
    (Anderson 1962): ``T = U/(n m (n+m)) - (4nm - 1)/(6(n+m))`` with mid-ranks
    for ties; the exact p-value (Xiao, Gordon & Yakovlev 2006) when both
    samples have at most 20 values, else the limiting distribution of the
    normalized statistic (Csörgő & Faraway 1996). Needs 2 values per sample.

    Examples
    --------
    >>> t, p = cvm_2samp_columns(np.arange(10.0), np.arange(10.0) + 0.5)
    >>> round(float(t[0]), 6), bool(p[0] > 0.5)
    (0.025, True)
    """
    r, c = _pair(ref, cur, backend)
    stat, pval = _registry.call("cvm_2samp", r.values, r.offsets, c.values, c.offsets,
                                backend=backend)
    reasons = _sample_reasons(r, c, 2, "cramervonmises_2samp")
    return _sample_result("cvm_2samp", stat, pval, reasons, r, c)


def _wasserstein(ref, cur, backend):
    r, c = _pair(ref, cur, backend)
    w1, sd = _registry.call("wasserstein", r.values, r.offsets, c.values, c.offsets,
                            backend=backend)
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
                          std_floor: float = WASSERSTEIN_STD_FLOOR,
                          ref_std=None) -> dict[str, ColumnStatistic]:
    """KS, Wasserstein-1 (raw and normed) and Cramér-von Mises from one pass per column.

    The numba backend merges each pair of sorted samples once for all three
    statistics; results equal :func:`ks_2samp_columns`,
    :func:`wasserstein_columns`, :func:`wasserstein_normed_columns` and
    :func:`cvm_2samp_columns`. ``ref_std``, the reference's :func:`std_columns`
    (kept with a reference that is compared many times), saves computing it
    for the normed Wasserstein distance.

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
    if ref_std is not None:
        ref_std = np.ascontiguousarray(ref_std, dtype=np.float64)
        if ref_std.shape != (r.n_columns,):
            raise ValueError(f"ref_std must have one value per column ({r.n_columns}), "
                             f"got shape {ref_std.shape}")
    ks_s, ks_p, w1, sd, cvm_s, cvm_p = _registry.call(
        "numeric_drift", r.values, r.offsets, c.values, c.offsets, ref_std, backend=backend)
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


def std_columns(data, *, backend: str | None = None) -> np.ndarray:
    """Population standard deviation (``ddof=0``) of every column, NaN where a column is empty.

    The spread :func:`wasserstein_normed_columns` divides by (computed on
    ``x / max|x|`` where the squares would overflow or underflow).

    Examples
    --------
    >>> std_columns([np.array([1.0, 3.0]), np.array([np.nan])])
    array([ 1., nan])
    """
    s = sort_columns(data, backend=backend)
    return _registry.call("std", s.values, s.offsets, backend=backend)


def bin_sorted_columns(data, edges, *, backend: str | None = None) -> np.ndarray:
    """Counts of every column of ``data`` in the bins of its row of ``edges``.

    ``edges`` is ``(k, B + 1)``, ascending per row (``B >= 1``); the ``B + 2``
    bins are those of :class:`Histograms` (underflow, ``[e_{b-1}, e_b)`` with
    the last one closed, overflow). A row whose first edge is not finite gets
    zero counts. Returns int64 ``(k, B + 2)``.

    Examples
    --------
    >>> bin_sorted_columns([np.array([0.0, 1.0, 2.0, 2.0, 3.0])], [[1.0, 2.0]])
    array([[1, 3, 1]])
    """
    s = sort_columns(data, backend=backend)
    e = np.ascontiguousarray(edges, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] != s.n_columns or e.shape[1] < 2:
        raise ValueError(f"edges must be ({s.n_columns}, B + 1) with B >= 1, got shape {e.shape}")
    return _registry.call("bin_sorted", s.values, s.offsets, e, backend=backend)


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
    edges, rc, cc = _registry.call("histogram", r.values, r.offsets, c.values, c.offsets, q,
                                   backend=backend)
    reasons = _sample_reasons(r, c, 1, "binning")
    reasons = [why if why or np.isfinite(e[0]) else "reference column has no finite values"
               for why, e in zip(reasons, edges)]
    return Histograms(edges, rc, cc, tuple(reasons), r.nan_counts.copy(), c.nan_counts.copy())


def _binned(kernel, ref, cur, n_bins, backend, *args) -> ColumnStatistic:
    h = histogram_columns(ref, cur, n_bins, backend=backend)
    k, nb = h.ref_counts.shape
    offsets = np.arange(k + 1, dtype=np.int64) * nb
    out = _registry.call(kernel, h.ref_counts.ravel(), h.cur_counts.ravel(), offsets, *args,
                         backend=backend)
    return ColumnStatistic(kernel, out, None, h.reason, h.ref_counts.sum(axis=1),
                           h.cur_counts.sum(axis=1), h.nan_ref, h.nan_cur)


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


def jensenshannon_columns(ref, cur, n_bins: int = DEFAULT_BINS, *, base: float = 2.0,
                          backend: str | None = None) -> ColumnStatistic:
    """Jensen-Shannon distance per column over the reference's quantile bins.

    ``scipy.spatial.distance.jensenshannon(p, q, base)`` of the bin
    proportions: ``sqrt((KL(p||m) + KL(q||m)) / 2)``, ``m = (p + q)/2``; in
    [0, 1] with the default base 2 (Lin 1991).

    Examples
    --------
    >>> x = np.random.default_rng(3).normal(size=(5000, 2))
    >>> js = jensenshannon_columns(x, x + [0.0, 2.0]).statistic
    >>> bool(js[0] == 0.0), bool(js[1] > 0.5)
    (True, True)
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
