"""Slow, obvious NumPy implementations: the ground truth for every kernel.

Each function is the ``reference`` backend of the kernel of the same name
(``psi`` is kernel ``psi``), registered in ``cdc.py`` and ``drift.py``. Every
accelerated backend is tested against these functions (``tests/test_kernels.py``).
They favour being evidently correct over being fast; none of them is used on a
hot path. ``gear_window_hashes`` and ``cdc_cut_points`` are helpers of the
tests, not kernels.
"""

from __future__ import annotations

import math

import numpy as np

from ._registry import renamed_module_attrs
from .gear import GEAR

# Scalar distributions of the drift p-values (plain-Python ports of scipy's),
# kept importable from here: kstwo_sf and smirnov_sf are re-exported only.
from .reference_distributions import (
    _cdf_cvm_inf,
    _cvm_exact_pvalue,
    chi2_sf,
    ks_2samp_pvalue,
)
from .reference_distributions import kstwo_sf as kstwo_sf
from .reference_distributions import smirnov_sf as smirnov_sf

_U64 = np.uint64

# Names before kernel ids and function names became one (deprecated, one release).
__getattr__ = renamed_module_attrs(__name__, {
    "cdc_scan_cuts": "cdc_scan", "drift_sort_segments": "sort_segments",
    "drift_sort_packed": "sort_packed", "drift_bin_sorted": "bin_sorted",
    "ks_2samp_columns": "ks_2samp", "wasserstein_columns": "wasserstein",
    "drift_std_columns": "std", "numeric_drift_columns": "numeric_drift",
    "cvm_2samp_columns": "cvm_2samp", "quantile_bin_counts": "histogram", "psi_counts": "psi",
    "jensenshannon_counts": "jensenshannon", "hellinger_counts": "hellinger",
    "linf_counts": "linf", "chi2_contingency_counts": "chi2",
})

# ---------------------------------------------------------------------------
# Content-defined chunking (gear hash), see docs/architecture.md
# ---------------------------------------------------------------------------


def gear_window_hashes(data: np.ndarray) -> np.ndarray:
    """Gear hash after every byte: ``h[i] = sum_k GEAR[data[i-k]] << k (mod 2**64)``.

    Terms with ``k >= 64`` shift out of a 64-bit word, so the sum runs over
    ``k = 0 .. min(i, 63)``; this is the definition, computed one shift at a
    time over the whole array.
    """
    data = np.asarray(data, dtype=np.uint8)
    g = GEAR[data]
    h = np.zeros(len(data), dtype=_U64)
    with np.errstate(over="ignore"):
        for k in range(min(64, len(data))):
            h[k:] += g[: len(data) - k] << _U64(k)
    return h


def cdc_candidates(buf, start, mask):
    """End offsets ``i + 1`` (``i >= start``) of every byte whose window hash has ``h & mask == 0``.

    The hash at ``i`` covers ``buf[max(0, i - 63):i + 1]``: the caller gives
    63 bytes of look-back before ``start`` (or ``buf`` starts the stream).
    """
    data = np.frombuffer(buf, dtype=np.uint8)
    lo = max(0, start - 63)
    h = gear_window_hashes(data[lo:])
    hits = np.flatnonzero((h & _U64(mask)) == 0).astype(np.int64) + lo
    return hits[hits >= start] + 1


def cdc_resolve(cand, n, min_size, max_size):
    """Chunk end offsets of a stream of ``n`` bytes from its sorted candidates.

    A chunk from ``s`` ends at the first candidate in ``[s + min_size, s + max_size]``,
    else at ``s + max_size``, and never past ``n``.
    """
    cand = np.asarray(cand).tolist()
    cuts, s, j = [], 0, 0
    while s < n:
        hi = min(s + max_size, n)
        while j < len(cand) and cand[j] < s + min_size:
            j += 1
        e = cand[j] if j < len(cand) and cand[j] <= hi else hi
        cuts.append(e)
        s = e
    return np.array(cuts, dtype=np.int64)


def cdc_cut_points(data, min_size: int, max_size: int, mask: int) -> np.ndarray:
    """Chunk end offsets of the whole of ``data``: the candidates, then the min/max rules."""
    return cdc_resolve(cdc_candidates(data, 0, mask), len(data), min_size, max_size)


def cdc_scan(buf, out, h, length, min_size, max_size, mask):
    """The serial chunker of DESIGN.md, byte by byte in Python integers.

    Same contract as the native ``cdc_scan`` kernels: continue the chunk in
    progress (hash ``h``, ``length`` bytes so far) over ``buf``; write end
    offsets relative to ``buf`` into ``out``; return
    ``(n_cuts, consumed, h, length)``. The hash is reset at every cut, and
    hashing resumes 64 bytes before the minimum size.
    """
    data = bytes(memoryview(buf).cast("B"))
    gear = [int(x) for x in GEAR]
    full = (1 << 64) - 1
    k, pos, n = 0, 0, len(data)
    h, length = int(h), int(length)
    while pos < n and k < len(out):
        byte = data[pos]
        pos += 1
        length += 1
        if length > min_size - 64:
            h = ((h << 1) + gear[byte]) & full
        if (length >= min_size and h & mask == 0) or length == max_size:
            out[k] = pos
            k += 1
            h, length = 0, 0
    return k, pos, h, length


# ---------------------------------------------------------------------------
# Drift statistics (two-sample tests and distances), see engine.kernels.drift
#
# Samples are packed: column c is values[offsets[c]:offsets[c + 1]], NaN-free
# and sorted. Statistics follow scipy's own formulas column by column (the
# searchsorted ECDFs of ks_2samp, the pooled-value integral of
# wasserstein_distance, the mid-ranks of cramervonmises_2samp); p-values come
# from plain-Python ports of the scipy routines (reference_distributions.py),
# so that the drift references need nothing but NumPy.
# ---------------------------------------------------------------------------


def sort_segments(values: np.ndarray, offsets: np.ndarray) -> None:
    """Sort each packed column in place."""
    for c in range(len(offsets) - 1):
        values[offsets[c]:offsets[c + 1]] = np.sort(values[offsets[c]:offsets[c + 1]])


def sort_packed(values: np.ndarray, offsets: np.ndarray):
    """Drop NaN from each packed column and sort it, then pack the columns to the front.

    In place: afterwards column ``c`` is ``values[new[c]:new[c + 1]]``.
    Returns ``(new, nan_counts)``.
    """
    k = len(offsets) - 1
    keep = [values[offsets[c]:offsets[c + 1]] for c in range(k)]
    keep = [np.sort(c[~np.isnan(c)]) for c in keep]
    nan_counts = np.array([offsets[c + 1] - offsets[c] - len(keep[c]) for c in range(k)],
                          dtype=np.int64)
    new = np.zeros(k + 1, dtype=np.int64)
    new[1:] = np.cumsum([len(c) for c in keep])
    if k:
        values[:new[-1]] = np.concatenate(keep)
    return new, nan_counts


def bin_sorted(values: np.ndarray, offsets: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of each packed column in the bins of its row of ``edges`` (see ``histogram``).

    Zero counts where the row's first edge is not finite.
    """
    k, ne = edges.shape
    out = np.zeros((k, ne + 1), dtype=np.int64)
    for c in range(k):
        x, e = values[offsets[c]:offsets[c + 1]], edges[c]
        if not np.isfinite(e[0]):
            continue
        idx = np.searchsorted(e, x, side="right")
        idx[x == e[-1]] = ne - 1
        out[c] = np.bincount(idx, minlength=ne + 1)
    return out


def _columns(rv, ro, cv, co):
    for c in range(len(ro) - 1):
        yield c, rv[ro[c]:ro[c + 1]], cv[co[c]:co[c + 1]]


# --- Kolmogorov-Smirnov ------------------------------------------------------


def ks_2samp(rv, ro, cv, co):
    """scipy.stats.ks_2samp(x, y, method="auto") per column: ``(statistic, pvalue)``."""
    k = len(ro) - 1
    stat, pval = np.full(k, np.nan), np.full(k, np.nan)
    for c, x, y in _columns(rv, ro, cv, co):
        if len(x) == 0 or len(y) == 0:
            continue
        pooled = np.concatenate([x, y])
        cddiffs = (np.searchsorted(x, pooled, side="right") / len(x)
                   - np.searchsorted(y, pooled, side="right") / len(y))
        min_s = float(np.clip(-np.min(cddiffs), 0, 1))
        max_s = float(np.max(cddiffs))
        d = min_s if min_s > max_s else max_s
        stat[c], pval[c] = ks_2samp_pvalue(d, len(x), len(y))
    return stat, pval


# --- Wasserstein-1 -----------------------------------------------------------


def wasserstein(rv, ro, cv, co):
    """scipy.stats.wasserstein_distance per column and ``numpy.std`` of the reference.

    Returns ``(w1, ref_std)``. The integral runs over consecutive *distinct*
    pooled values and skips intervals where the ECDFs agree, so equal
    infinities in both samples contribute nothing (scipy's 0 * inf gives NaN).
    """
    k = len(ro) - 1
    w1, sd = np.full(k, np.nan), np.full(k, np.nan)
    for c, x, y in _columns(rv, ro, cv, co):
        if len(x):
            sd[c] = _std(x)
        if len(x) == 0 or len(y) == 0:
            continue
        pooled = np.unique(np.concatenate([x, y]))
        gap = np.abs(np.searchsorted(x, pooled[:-1], side="right") / len(x)
                     - np.searchsorted(y, pooled[:-1], side="right") / len(y))
        with np.errstate(invalid="ignore", over="ignore"):  # infinite widths are meant
            width = np.diff(pooled)
            w1[c] = float(np.sum(np.where(gap > 0, gap * width, 0.0)))
    return w1, sd


def _std(x: np.ndarray) -> float:
    """numpy.std(x), computed on x / max|x| when the squares would overflow or underflow."""
    scale = float(np.max(np.abs(x)))
    with np.errstate(invalid="ignore", over="ignore"):
        if 0 < scale < np.inf and not 1e-150 < scale < 1e150:
            return float(np.std(x / scale)) * scale
        return float(np.std(x))


def std(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``numpy.std`` of every packed column (see ``_std``); NaN where a column is empty."""
    return np.array([_std(values[offsets[c]:offsets[c + 1]]) if offsets[c + 1] > offsets[c]
                     else np.nan for c in range(len(offsets) - 1)], dtype=np.float64)


def numeric_drift(rv, ro, cv, co, ref_std=None):
    """KS, W1, reference std and CvM together: ``(ks_stat, ks_p, w1, ref_std, cvm_stat, cvm_p)``.

    A given ``ref_std`` (from an earlier call) is returned as it is.
    """
    w1, sd = wasserstein(rv, ro, cv, co)
    if ref_std is not None:
        sd = np.array(ref_std, dtype=np.float64)
    return (*ks_2samp(rv, ro, cv, co), w1, sd, *cvm_2samp(rv, ro, cv, co))


# --- Cramer-von Mises --------------------------------------------------------


def cvm_2samp(rv, ro, cv, co):
    """scipy.stats.cramervonmises_2samp(x, y, method="auto") per column: ``(statistic, pvalue)``.

    Exact p-value when both samples have at most 20 values, else the
    asymptotic one; NaN when a sample has fewer than 2 values.
    """
    k = len(ro) - 1
    stat, pval = np.full(k, np.nan), np.full(k, np.nan)
    for c, x, y in _columns(rv, ro, cv, co):
        nx, ny = len(x), len(y)
        if nx < 2 or ny < 2:
            continue
        pooled = np.concatenate([x, y])
        uniq, inverse, counts = np.unique(pooled, return_inverse=True, return_counts=True)
        midrank = np.cumsum(counts) - (counts - 1) / 2.0
        r = midrank[inverse]
        u = (nx * np.sum((r[:nx] - np.arange(1, nx + 1)) ** 2)
             + ny * np.sum((r[nx:] - np.arange(1, ny + 1)) ** 2))
        kk, big_n = nx * ny, nx + ny
        t = u / (kk * big_n) - (4 * kk - 1) / (6 * big_n)
        stat[c] = t
        if max(nx, ny) <= 20:
            pval[c] = _cvm_exact_pvalue(float(u), nx, ny)
        else:
            et = (1 + 1 / big_n) / 6
            vt = (big_n + 1) * (4 * kk * big_n - 3 * (nx ** 2 + ny ** 2) - 2 * kk)
            vt = vt / (45 * big_n ** 2 * 4 * kk)
            tn = 1 / 6 + (t - et) / math.sqrt(45 * vt)
            pval[c] = 1.0 if tn < 0.003 else max(1.0 - _cdf_cvm_inf(tn), 0.0)
    return stat, pval


# --- Quantile bins and count distances --------------------------------------


def histogram(rv, ro, cv, co, q):
    """Edges ``numpy.quantile(finite reference, q)`` and both samples' counts per bin.

    Bin 0 holds values below the first edge, bin ``b`` holds
    ``edges[b-1] <= v < edges[b]`` (the last inner bin also takes
    ``v == edges[-1]``), and the final bin values above the last edge.
    Returns ``(edges (k, B+1), ref_counts (k, B+2), cur_counts (k, B+2))``.
    """
    k, ne = len(ro) - 1, len(q)
    edges = np.full((k, ne), np.nan)
    rc, cc = np.zeros((k, ne + 1)), np.zeros((k, ne + 1))
    for c, x, y in _columns(rv, ro, cv, co):
        finite = x[np.isfinite(x)]
        if len(finite) == 0:
            continue
        edges[c] = np.quantile(finite, q)
        for sample, out in ((x, rc), (y, cc)):
            idx = np.searchsorted(edges[c], sample, side="right")
            idx[sample == edges[c][-1]] = ne - 1
            out[c] = np.bincount(idx, minlength=ne + 1)
    return edges, rc, cc


def _proportions(rc, cc, offsets):
    for c in range(len(offsets) - 1):
        r, s = rc[offsets[c]:offsets[c + 1]], cc[offsets[c]:offsets[c + 1]]
        if np.sum(r) > 0 and np.sum(s) > 0:
            yield c, r / np.sum(r), s / np.sum(s)


def psi(rc, cc, offsets, eps):
    """Population stability index sum (p - q) ln(p / q) with p, q clipped below at ``eps``."""
    out = np.full(len(offsets) - 1, np.nan)
    for c, p, q in _proportions(rc, cc, offsets):
        p, q = np.maximum(p, eps), np.maximum(q, eps)
        out[c] = np.sum((p - q) * np.log(p / q))
    return out


def jensenshannon(rc, cc, offsets, base):
    """Jensen-Shannon distance sqrt((KL(p||m) + KL(q||m)) / 2), m = (p + q)/2, in ``base``."""
    out = np.full(len(offsets) - 1, np.nan)
    for c, p, q in _proportions(rc, cc, offsets):
        m = (p + q) / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            left = np.where(p > 0, p * np.log(p / m), 0.0)
            right = np.where(q > 0, q * np.log(q / m), 0.0)
        out[c] = np.sqrt((np.sum(left) + np.sum(right)) / np.log(base) / 2.0)
    return out


def hellinger(rc, cc, offsets):
    """Hellinger distance sqrt(sum (sqrt p - sqrt q)^2 / 2)."""
    out = np.full(len(offsets) - 1, np.nan)
    for c, p, q in _proportions(rc, cc, offsets):
        out[c] = np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2.0)
    return out


def linf(rc, cc, offsets):
    """L-infinity distance max |p - q| (TFDV's categorical drift comparator)."""
    out = np.full(len(offsets) - 1, np.nan)
    for c, p, q in _proportions(rc, cc, offsets):
        out[c] = np.max(np.abs(p - q))
    return out


def chi2(rc, cc, offsets, log_likelihood, correction):
    """scipy.stats.chi2_contingency on each 2 x K table: ``(statistic, pvalue, dof)``.

    Categories absent from both rows are dropped first. ``log_likelihood``
    gives the G-test (``lambda_="log-likelihood"``); Yates' correction is
    applied, as scipy does by default, only when ``correction`` and dof == 1.
    """
    k = len(offsets) - 1
    stat, pval, dof = np.full(k, np.nan), np.full(k, np.nan), np.full(k, -1, dtype=np.int64)
    for c in range(k):
        table = np.array([rc[offsets[c]:offsets[c + 1]], cc[offsets[c]:offsets[c + 1]]], float)
        table = table[:, table.sum(axis=0) > 0]
        rows = table.sum(axis=1, keepdims=True)
        if not (rows[0, 0] > 0 and rows[1, 0] > 0):
            continue
        expected = rows * table.sum(axis=0, keepdims=True) / table.sum()
        dof[c] = table.shape[1] - 1
        if dof[c] == 0:
            stat[c], pval[c] = 0.0, 1.0
            continue
        if dof[c] == 1 and correction:
            diff = expected - table
            table = table + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
        if log_likelihood:
            with np.errstate(divide="ignore", invalid="ignore"):
                terms = np.where(table > 0, 2.0 * table * np.log(table / expected), 0.0)
        else:
            terms = (table - expected) ** 2 / expected
        stat[c] = np.sum(terms)
        pval[c] = chi2_sf(float(dof[c]), float(stat[c]))
    return stat, pval, dof


def blake3_many(buf, offsets, key):
    """BLAKE3-256 of ``buf[offsets[i]:offsets[i + 1]]`` for each ``i`` (keyed BLAKE3 with a
    32-byte ``key``): uint8 ``(n, 32)``. The ``blake3`` package is the definition."""
    import blake3

    data = memoryview(np.ascontiguousarray(np.frombuffer(buf, np.uint8)
                                           if not isinstance(buf, np.ndarray) else buf)).cast("B")
    offs = np.asarray(offsets, dtype=np.int64).tolist()
    out = np.empty((max(len(offs) - 1, 0), 32), dtype=np.uint8)
    for i, (a, b) in enumerate(zip(offs[:-1], offs[1:])):
        h = blake3.blake3(data[a:b]) if key is None else blake3.blake3(data[a:b], key=bytes(key))
        out[i] = np.frombuffer(h.digest(), np.uint8)
    return out


# ---------------------------------------------------------------------------
# Moving chunks off a device (engine.store.pipeline.ChunkSink.put_device)
# ---------------------------------------------------------------------------


def gather_ranges(buf, starts, lengths):
    """``buf[starts[i]:starts[i] + lengths[i]]`` for every ``i``, concatenated (uint8)."""
    data = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf
    parts = [data[int(s):int(s) + int(n)] for s, n in zip(starts, lengths)]
    return np.concatenate(parts).astype(np.uint8) if parts else np.empty(0, np.uint8)
