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
Each statistic is a kernel of the registry (``engine.kernels._registry``) whose
id names it everywhere: kernel ``psi`` is ``reference.psi`` and
``drift_counts_numba.psi``, and the public functions here are
``psi_columns`` (numeric samples, binned) and ``psi_counts_columns``
(category counts). The ``reference`` backends are in ``reference.py``; the
``numba`` ones in ``drift_numba.py`` (samples), ``drift_counts_numba.py``
(counts) and ``sort_numba.py`` (the sort), parallel over columns; the ``cuda``
ones in ``drift_cuda.py`` and ``drift_counts_cuda.py`` (CuPy, batches of columns,
threads over values), chosen where a GPU is present for inputs of at least
``cuda_runtime.MIN_HOST_BYTES``. The multivariate kernel ``mmd2_permutations`` (MMD² of
a split and of its permutations, for ``engine.monitor.mmd``) is in ``reference_mmd.py``,
``mmd_numba.py`` and ``mmd_cuda.py``.
``backend=`` or ``MLOPS_BACKEND`` forces one. The kernels are registered below,
when ``engine.kernels`` is imported; numba loads on first use.
"""

from __future__ import annotations

from . import cuda_runtime
from ._registry import register_kernel, renamed_module_attrs
from .drift_columns import (  # noqa: F401  (constants re-exported for callers)
    DEFAULT_BINS,
    PSI_EPS,
    WASSERSTEIN_STD_FLOOR,
    ColumnStatistic,
    SortedColumns,
    sort_columns,
    sort_packed_columns,
)
from .drift_counts import (
    chi2_columns,
    gtest_columns,
    hellinger_counts_columns,
    jensenshannon_counts_columns,
    linf_columns,
    psi_counts_columns,
)
from .drift_numeric import (
    Histograms,
    bin_sorted_columns,
    cvm_2samp_columns,
    hellinger_columns,
    histogram_columns,
    jensenshannon_columns,
    ks_2samp_columns,
    numeric_drift_columns,
    psi_columns,
    std_columns,
    wasserstein_columns,
    wasserstein_normed_columns,
)

_REF = ".reference"
_cuda = cuda_runtime.loader
_ON_GPU = {"cuda": cuda_runtime.usable}
# samples: sort, then tests and distances that walk sorted columns
register_kernel("sort_packed", reference=_REF, numba=".sort_numba",
                cuda=_cuda(".drift_cuda", "sort_packed"), is_usable_for=_ON_GPU)
register_kernel("sort_segments", reference=_REF, numba=".sort_numba",
                cuda=_cuda(".drift_cuda", "sort_segments"), is_usable_for=_ON_GPU)
register_kernel("std", reference=_REF, numba=".drift_numba",
                cuda=_cuda(".drift_cuda", "std"), is_usable_for=_ON_GPU)
register_kernel("bin_sorted", reference=_REF, numba=".drift_numba",
                cuda=_cuda(".drift_cuda", "bin_sorted"), is_usable_for=_ON_GPU)
register_kernel("histogram", reference=_REF, numba=".drift_numba",
                cuda=_cuda(".drift_cuda", "histogram"), is_usable_for=_ON_GPU)
register_kernel("ks_2samp", reference=_REF, numba=".drift_numba",
                cuda=_cuda(".drift_cuda", "ks_2samp"), is_usable_for=_ON_GPU)
register_kernel("wasserstein", reference=_REF, numba=".drift_numba",
                cuda=_cuda(".drift_cuda", "wasserstein"), is_usable_for=_ON_GPU)
register_kernel("cvm_2samp", reference=_REF, numba=".drift_numba",
                cuda=_cuda(".drift_cuda", "cvm_2samp"), is_usable_for=_ON_GPU)
register_kernel("numeric_drift", reference=_REF, numba=".drift_numba",
                cuda=_cuda(".drift_cuda", "numeric_drift"), is_usable_for=_ON_GPU)
# counts: binned samples or categories
register_kernel("psi", reference=_REF, numba=".drift_counts_numba",
                cuda=_cuda(".drift_counts_cuda", "psi"), is_usable_for=_ON_GPU)
register_kernel("jensenshannon", reference=_REF, numba=".drift_counts_numba",
                cuda=_cuda(".drift_counts_cuda", "jensenshannon"), is_usable_for=_ON_GPU)
register_kernel("hellinger", reference=_REF, numba=".drift_counts_numba",
                cuda=_cuda(".drift_counts_cuda", "hellinger"), is_usable_for=_ON_GPU)
register_kernel("linf", reference=_REF, numba=".drift_counts_numba",
                cuda=_cuda(".drift_counts_cuda", "linf"), is_usable_for=_ON_GPU)
register_kernel("chi2", reference=_REF, numba=".drift_counts_numba",
                cuda=_cuda(".drift_counts_cuda", "chi2"), is_usable_for=_ON_GPU)
# multivariate: MMD² of a split and of its permutations (engine.monitor.mmd)
register_kernel("mmd2_permutations", reference=".reference_mmd", numba=".mmd_numba",
                cuda=_cuda(".mmd_cuda", "mmd2_permutations"), is_usable_for=_ON_GPU)

# Public names before one statistic got one name (deprecated, one release).
__getattr__ = renamed_module_attrs(__name__, {
    "js_columns": "jensenshannon_columns",
    "js_counts_columns": "jensenshannon_counts_columns",
    "cvm_columns": "cvm_2samp_columns",
})

__all__ = [
    "ColumnStatistic",
    "Histograms",
    "SortedColumns",
    "bin_sorted_columns",
    "chi2_columns",
    "cvm_2samp_columns",
    "gtest_columns",
    "hellinger_columns",
    "hellinger_counts_columns",
    "histogram_columns",
    "jensenshannon_columns",
    "jensenshannon_counts_columns",
    "ks_2samp_columns",
    "linf_columns",
    "numeric_drift_columns",
    "psi_columns",
    "psi_counts_columns",
    "sort_columns",
    "sort_packed_columns",
    "std_columns",
    "wasserstein_columns",
    "wasserstein_normed_columns",
]
