"""Drift statistics API, part 3: tests and distances on category counts.

See :mod:`engine.kernels.drift` for the input layouts and the backends;
import the public names from there.
"""

from __future__ import annotations

import numpy as np

from . import _registry
from .drift_columns import (
    PSI_EPS,
    ColumnStatistic,
    _check_base,
    _check_eps,
    _float_column_array,
    _is_column_list,
)

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
    out = _registry.call(kernel, rc, cc, offsets, *args, backend=backend)
    return ColumnStatistic(kernel, out, None, reasons, n_ref, n_cur)


def _chi2(name, ref_counts, cur_counts, log_likelihood, correction, backend):
    rc, cc, offsets, n_ref, n_cur, reasons = _pack_counts(ref_counts, cur_counts)
    stat, pval, dof = _registry.call("chi2", rc, cc, offsets, log_likelihood, bool(correction),
                                     backend=backend)
    return ColumnStatistic(name, stat, pval, reasons, n_ref, n_cur, dof=dof)


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
    Yates' correction as in :func:`chi2_columns` (the same kernel, ``chi2``, with
    ``log_likelihood``).
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


def jensenshannon_counts_columns(ref_counts, cur_counts, *, base: float = 2.0,
                                 backend: str | None = None) -> ColumnStatistic:
    """Jensen-Shannon distance of the category proportions (see :func:`jensenshannon_columns`).

    Examples
    --------
    >>> res = jensenshannon_counts_columns([[30, 10, 60]], [[25, 25, 50]])
    >>> round(float(res.statistic[0]), 4)
    0.1699
    """
    return _counts_stat("jensenshannon", ref_counts, cur_counts, backend, _check_base(base))


def psi_counts_columns(ref_counts, cur_counts, *, eps: float = PSI_EPS,
                       backend: str | None = None) -> ColumnStatistic:
    """Population stability index of the category proportions (see :func:`psi_columns`)."""
    return _counts_stat("psi", ref_counts, cur_counts, backend, _check_eps(eps))


def hellinger_counts_columns(ref_counts, cur_counts, *,
                             backend: str | None = None) -> ColumnStatistic:
    """Hellinger distance of the category proportions (see :func:`hellinger_columns`)."""
    return _counts_stat("hellinger", ref_counts, cur_counts, backend)
