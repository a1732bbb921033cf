"""Maximum mean discrepancy with an RBF kernel and a permutation test (multivariate drift),
and the row that :func:`engine.monitor.drift` reports for it.

Gretton et al., "A Kernel Two-Sample Test", JMLR 13 (2012). Bandwidth: the median
heuristic (median pairwise distance of the pooled sample). Statistic: the unbiased
MMD² estimate. p-value: ``(k + 1) / (B + 1)`` where ``k`` of ``B`` permutations of the
pooled rows give a statistic at least as large (Phipson & Smyth, 2010).
"""

from __future__ import annotations

import numpy as np

from engine.kernels import call
from engine.kernels.reference_mmd import mmd2_unbiased as _mmd2_unbiased  # noqa: F401  (tests)
from engine.kernels.reference_mmd import rbf_gram

# Rows of the pooled sample per block when the median heuristic gathers pairwise distances.
_BLOCK_ELEMENTS = 1 << 24


def median_bandwidth(z: np.ndarray) -> float:
    """The median heuristic: the median distance between two rows of ``z`` (over pairs
    ``i < j``), 1.0 where it is 0 or there are no pairs.

    The squared distances are ``max(|z_i|² + |z_j|² - 2 z_i·z_j, 0)``, gathered block of
    rows by block into one array of the ``N (N - 1) / 2`` pairs (8 bytes each) and
    partitioned in place.
    """
    big = len(z)
    if big < 2:
        return 1.0
    sq = np.einsum("ij,ij->i", z, z)
    pairs = np.empty(big * (big - 1) // 2, dtype=np.float64)
    rows = max(1, _BLOCK_ELEMENTS // big)
    at = 0
    for a in range(0, big, rows):
        b = min(big, a + rows)
        d2 = np.maximum(sq[a:b, None] + sq[None, :] - 2.0 * z[a:b] @ z.T, 0.0)
        for i in range(a, b):
            row = d2[i - a, i + 1:]
            pairs[at:at + len(row)] = row
            at += len(row)
    np.sqrt(pairs, out=pairs)
    med = float(np.median(pairs, overwrite_input=True))
    return med if med > 0 else 1.0


def rbf_kernel_matrix(z: np.ndarray, bandwidth: float | None = None) -> tuple[np.ndarray, float]:
    """``(K, bandwidth)``: the RBF kernel matrix of the rows of ``z`` with ``bandwidth``, by
    default the median heuristic (:func:`median_bandwidth`)."""
    if bandwidth is None:
        bandwidth = median_bandwidth(z)
    return rbf_gram(z, bandwidth), bandwidth


def mmd_permutation_test(x, y, *, permutations: int = 200, max_rows: int = 1000,
                         seed: int = 0) -> tuple[float, float, int, int]:
    """``(mmd2, p_value, n_x, n_y)`` for samples ``x`` (n, d) and ``y`` (m, d).

    Columns are standardized by ``x``'s mean and standard deviation, and at most
    ``max_rows`` rows of each side are used (a uniform subsample). The permutations
    are drawn here (``rng.permutation`` of the pooled rows, ``permutations`` times) and
    their statistics computed by kernel ``mmd2_permutations`` of ``engine.kernels``
    (the ``cuda``, ``numba`` or ``reference`` backend, as the registry picks or
    ``MLOPS_BACKEND`` forces). A permutation counts as at least as large when its
    statistic is no more than :func:`tie_tolerance` below the observed one: a
    permutation that keeps the split has the same statistic, which the backends
    compute in different orders of summation.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be 2-D with the same columns, got {x.shape} and {y.shape}")
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    rng = np.random.default_rng(seed)
    if len(x) > max_rows:
        x = x[rng.choice(len(x), max_rows, replace=False)]
    if len(y) > max_rows:
        y = y[rng.choice(len(y), max_rows, replace=False)]
    if len(x) < 2 or len(y) < 2:
        return float("nan"), float("nan"), len(x), len(y)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    sd[sd == 0] = 1.0
    z = np.ascontiguousarray((np.vstack([x, y]) - mu) / sd)
    bandwidth = median_bandwidth(z)
    n = len(x)
    perms = np.empty((permutations, len(z)), dtype=np.int64)
    for i in range(permutations):
        perms[i] = rng.permutation(len(z))
    stat, perm_stats = call("mmd2_permutations", z, n, perms, bandwidth)
    hits = int(np.count_nonzero(perm_stats >= stat - tie_tolerance(len(z))))
    return stat, (hits + 1) / (permutations + 1), len(x), len(y)


def tie_tolerance(rows: int) -> float:
    """How far below the observed MMD² a permutation's still counts as a tie: a bound on the
    rounding of sums of ``rows`` kernel values (each at most 1) over a pair count."""
    return 4.0 * rows * float(np.finfo(np.float64).eps)


def mmd_rows(ref_raw, cur_raw, names, columns, permutations, max_rows, seed) -> list[dict]:
    """The result row of :func:`engine.monitor.drift`'s ``mmd`` test over the numeric
    columns ``names`` (one row, column ``(all numeric)``, type ``multivariate``)."""
    row = {"column": "(all numeric)", "type": "multivariate", "test": "mmd", "primary": False,
           "threshold": None, "reason": None}
    x, y = _numeric_matrix(ref_raw, names, columns), _numeric_matrix(cur_raw, names, columns)
    if x is None or y is None:
        return [row | {"statistic": float("nan"), "p_value": None, "n_ref": 0, "n_cur": 0,
                       "reason": "MMD needs rows: pass raw data, not profiles"}]
    stat, p, n_x, n_y = mmd_permutation_test(x, y, permutations=permutations, max_rows=max_rows,
                                             seed=seed)
    if n_x < 2 or n_y < 2:
        row["reason"] = (f"MMD needs at least 2 rows per side without a missing numeric value; "
                         f"reference has {n_x}, current has {n_y}")
    return [row | {"statistic": stat, "p_value": p, "n_ref": n_x, "n_cur": n_y}]


def _numeric_matrix(data, names, columns=None):
    """Rows of the numeric columns ``names`` of raw ``data`` (rows with NaN dropped); None for
    a Profile. A 2-D array's columns are named as :func:`profile` names them (``columns=``
    or ``"0"``, ``"1"``, ...)."""
    import pyarrow as pa

    from .profile import Profile
    from .profile_inputs import InputColumn

    if isinstance(data, Profile):
        return None
    if isinstance(data, np.ndarray) and data.ndim == 2:
        labels = list(columns) if columns is not None else [str(i) for i in range(data.shape[1])]
        cols = {n: data[:, i] for i, n in enumerate(labels)}
    elif isinstance(data, dict):
        cols = data
    else:
        t = data if isinstance(data, (pa.Table, pa.RecordBatch)) else pa.Table.from_pandas(data)
        # as profiling reads them (nulls as NaN), and without to_numpy, which imports pandas
        cols = {n: InputColumn(n, arrow=_chunked(t.column(n))).float64() for n in names}
    m = np.column_stack([np.asarray(cols[n], dtype=np.float64) for n in names])
    return m[np.isfinite(m).all(axis=1)]


def _chunked(col):
    """A record batch's column (an Array) as a table's (a ChunkedArray)."""
    import pyarrow as pa

    return pa.chunked_array([col]) if isinstance(col, pa.Array) else col
