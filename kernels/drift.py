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
(``drift_numba.py`` for samples and ``drift_counts_numba.py`` for counts,
parallel over columns; the sort in ``sort_numba.py``);
``backend=`` or ``MLOPS_BACKEND`` forces one. The kernels are registered when
``engine.kernels`` is imported; numba loads on first use.
"""

from __future__ import annotations

from . import _registry
from .drift_columns import (  # noqa: F401  (constants re-exported for callers)
    DEFAULT_BINS,
    PSI_EPS,
    WASSERSTEIN_STD_FLOOR,
    ColumnStatistic,
    SortedColumns,
    sort_columns,
)
from .drift_counts import (
    chi2_columns,
    gtest_columns,
    hellinger_counts_columns,
    js_counts_columns,
    linf_columns,
    psi_counts_columns,
)
from .drift_numeric import (
    Histograms,
    bin_sorted_columns,
    cvm_columns,
    hellinger_columns,
    histogram_columns,
    js_columns,
    ks_2samp_columns,
    numeric_drift_columns,
    psi_columns,
    std_columns,
    wasserstein_columns,
    wasserstein_normed_columns,
)

_NUMBA_HINT = "pip install 'mlops-engine[numba]'"

# kernel name -> (reference function, numba "module:function"), both in engine.kernels.
# Registered as strings: numba is imported by the registry on first use, never here.
KERNELS = {
    "drift_sort_columns": ("drift_sort_columns", "sort_numba:sort_columns"),
    "drift_sort_segments": ("drift_sort_segments", "sort_numba:sort_segments"),
    "drift_sort_packed": ("drift_sort_packed", "sort_numba:sort_packed"),
    "drift_bin_sorted": ("drift_bin_sorted", "drift_numba:bin_sorted"),
    "drift_std": ("drift_std_columns", "drift_numba:std_columns"),
    "ks_2samp": ("ks_2samp_columns", "drift_numba:ks_2samp"),
    "wasserstein": ("wasserstein_columns", "drift_numba:wasserstein"),
    "cvm_2samp": ("cvm_2samp_columns", "drift_numba:cvm_2samp"),
    "numeric_drift": ("numeric_drift_columns", "drift_numba:numeric_drift"),
    "quantile_bins": ("quantile_bin_counts", "drift_numba:quantile_bins"),
    "psi": ("psi_counts", "drift_counts_numba:psi"),
    "jensenshannon": ("jensenshannon_counts", "drift_counts_numba:jensenshannon"),
    "hellinger": ("hellinger_counts", "drift_counts_numba:hellinger"),
    "linf": ("linf_counts", "drift_counts_numba:linf"),
    "chi2_contingency": ("chi2_contingency_counts", "drift_counts_numba:chi2_contingency"),
}
for _name, (_ref, _nb) in KERNELS.items():
    _registry.register(_name, "reference", f"engine.kernels.reference:{_ref}")
    _registry.register(_name, "numba", f"engine.kernels.{_nb}", install_hint=_NUMBA_HINT)

__all__ = [
    "ColumnStatistic",
    "Histograms",
    "SortedColumns",
    "bin_sorted_columns",
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
    "std_columns",
    "wasserstein_columns",
    "wasserstein_normed_columns",
]
