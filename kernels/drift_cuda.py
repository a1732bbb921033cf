"""Two-sample drift statistics on samples, ``cuda`` backend (CuPy; host emulation in tests).

Same contracts as the ``reference`` drift kernels (``reference.py``, section "Drift
statistics") and the ``numba`` ones (``drift_numba.py``, ``sort_numba.py``): host NumPy
arrays in, host NumPy arrays out; the sorts work in place. Samples are *packed*: column
``c`` is ``values[offsets[c]:offsets[c + 1]]``, NaN-free and sorted for the statistics.
The kernels on count vectors (PSI, Jensen-Shannon, Hellinger, L-infinity, chi-square)
are in ``drift_counts_cuda.py``.

Batches
-------
Columns are processed in batches of whole columns holding at most
:data:`BATCH_ELEMENTS` values (both samples together; a larger column is a batch of its
own), so device memory stays bounded however many columns come: each batch is copied
to the device, computed, and its per-column results copied back.

Thread mappings
---------------
``sort_packed`` / ``sort_segments``
    A segmented sort without a segmented-sort primitive, exact whatever the stability
    of the library sort: ``p = argsort(values)`` (any order among equal values, which are
    indistinguishable), then one thread per sorted position ``j`` writes the unique key
    ``column(p[j]) * n + j`` (``mlops_drift_sort_keys``, a binary search over the
    offsets); sorting these keys orders the values by column, then by value, and one
    thread per output position gathers ``values[p[key % n]]``
    (``mlops_drift_sort_gather``). A batch with one non-empty column is one plain sort.
    NaN is dropped (and counted per column) with ``isnan``, ``cumsum`` and a boolean
    mask before sorting.
``ks_2samp`` / ``wasserstein`` / ``cvm_2samp`` / ``numeric_drift``
    ``mlops_drift_merge``: one thread per chunk of :data:`CHUNK` consecutive values of
    one column of one sample (both samples' chunks in one launch; millions of threads on
    large data). For each value ``v`` the thread knows its tie group in its own column
    (left/right positions by galloping search) and ``v``'s left/right positions in the
    other column (a binary search for the chunk's first value, then galloping forward,
    since ``v`` rises): these are both ECDFs at ``v`` and its mid-rank in the pooled
    sample. It accumulates, over its chunk,

    * KS: the extremes of the exact integers ``r_x * n_y - r_y * n_x`` (ECDFs as
      scipy's ``searchsorted(..., side="right")``), with the float
      ``r_x/n_x - r_y/n_y`` kept at each extreme exactly as scipy forms it;
    * W1: ``|F_x - F_y| * (next pooled value - v)`` for each *distinct* pooled value,
      counted once: by the thread holding the last of its tie group in the reference,
      or, for values only in the current sample, in the current sample;
    * CvM: ``(2 (midrank - position))^2``, an integer, summed exactly in 128 bits.

    ``mlops_drift_combine_merge`` (one thread per group of :data:`GROUP` consecutive
    partials of one column of one sample, launched again on its own output until one
    partial per column and sample is left) combines them: KS extremes, pairwise sums of
    the W1 partials, 128-bit sums of the CvM squares. The host joins the two samples'
    partials of each column and turns them into statistics and p-values with the
    functions the numba backend uses (``ks_dist_numba``, ``distributions_numba``), or
    their plain-Python twins (``reference_distributions``) where numba is missing.
``std``
    Two passes (``mlops_drift_std_part``, one thread per chunk, then
    ``mlops_drift_combine_sum`` as above and ``mlops_drift_std_final``, one thread per
    column): the mean, then the squared deviations, on ``x / max|x|`` where the squares
    would overflow or underflow (as ``reference._std``).
``histogram`` / ``bin_sorted``
    ``mlops_drift_quantile_edges``: one thread per (column, quantile), NumPy's linear
    quantile of the finite values (no fused multiply-add, so edges equal NumPy's).
    ``mlops_drift_bin_pos``: one thread per (column, edge), a binary search;
    ``mlops_drift_bin_counts``: one thread per (column, bin), differences of positions.

Kernels are written one thread per item, without shared memory, so that the serial host
emulation (``cuda_runtime.emulated``) runs the same source; every reduction across
threads is a separate launch, and none depends on the order of threads.

Limits: a column holds fewer than 2**31 values per sample (the CvM squares and KS
integers are exact 64-bit quantities below that).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import cuda_runtime

#: Values (both samples together) per batch of columns copied to the device at once.
BATCH_ELEMENTS = 1 << 26
#: Consecutive values of one column each thread of the merge and std kernels handles.
CHUNK = 32
#: Partials each thread of the combining kernels folds into one.
GROUP = 256
_BLOCK = 256

# Device helpers shared with drift_counts_cuda.py: column lookup and NumPy's pairwise sum.
DEVICE_HELPERS = r"""
// The column c of packed offsets off[0..k] with off[c] <= i < off[c + 1] (the last c with
// off[c] <= i: empty columns before it share its offset).
__device__ i64 mlops_drift_find(const i64* __restrict__ off, i64 k, i64 i) {
    i64 lo = 0, hi = k - 1;
    while (lo < hi) {
        i64 mid = (lo + hi + 1) >> 1;
        if (off[mid] <= i) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// NumPy's pairwise-sum leaf (n <= 128): eight interleaved accumulators.
__device__ double mlops_block_sum(const double* __restrict__ a, i64 n) {
    if (n < 8) {
        double res = -0.0;
        for (i64 i = 0; i < n; i++) res += a[i];
        return res;
    }
    double r0 = a[0], r1 = a[1], r2 = a[2], r3 = a[3], r4 = a[4], r5 = a[5], r6 = a[6], r7 = a[7];
    i64 i = 8;
    i64 stop = n - n % 8;
    for (; i < stop; i += 8) {
        r0 += a[i]; r1 += a[i + 1]; r2 += a[i + 2]; r3 += a[i + 3];
        r4 += a[i + 4]; r5 += a[i + 5]; r6 += a[i + 6]; r7 += a[i + 7];
    }
    double res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));
    for (; i < n; i++) res += a[i];
    return res;
}

// numpy.sum(a[0:n]) in NumPy's pairwise order: halves rounded to multiples of 8 down to
// blocks of 128, walked with an explicit stack (no recursion on the device).
__device__ double mlops_pairwise_sum(const double* __restrict__ a, i64 n) {
    if (n <= 128) return mlops_block_sum(a, n);
    i64 t_lo[128];
    i64 t_n[128];
    int t_stage[128];
    double vals[64];
    int nt = 1, nv = 0;
    t_lo[0] = 0; t_n[0] = n; t_stage[0] = 0;
    while (nt > 0) {
        nt--;
        i64 tl = t_lo[nt], tn = t_n[nt];
        if (tn <= 128) {
            vals[nv++] = mlops_block_sum(a + tl, tn);
        } else if (t_stage[nt] == 0) {
            i64 n2 = tn / 2;
            n2 -= n2 % 8;
            t_stage[nt] = 1;  // combine after both halves
            nt++;
            t_lo[nt] = tl + n2; t_n[nt] = tn - n2; t_stage[nt] = 0;
            nt++;
            t_lo[nt] = tl; t_n[nt] = n2; t_stage[nt] = 0;
            nt++;
        } else {
            nv--;
            vals[nv - 1] = vals[nv - 1] + vals[nv];
        }
    }
    return vals[0];
}
"""

SRC = cuda_runtime.CudaSource("drift", DEVICE_HELPERS + r"""
// Arithmetic that must round like NumPy's: never contracted into a fused multiply-add.
#ifdef __CUDACC__
#define MLOPS_MUL(a, b) __dmul_rn((a), (b))
#define MLOPS_ADD(a, b) __dadd_rn((a), (b))
#define MLOPS_SUB(a, b) __dsub_rn((a), (b))
#else
#define MLOPS_MUL(a, b) ((a) * (b))
#define MLOPS_ADD(a, b) ((a) + (b))
#define MLOPS_SUB(a, b) ((a) - (b))
#endif

__device__ int mlops_drift_before(double a, double v, int right) {
    return right ? (a <= v) : (a < v);
}

// The first p in [lo, hi) with a[p] >= v (right == 0) or a[p] > v (right == 1), else hi.
__device__ i64 mlops_drift_search(const double* __restrict__ a, i64 lo, i64 hi, double v, int right) {
    while (lo < hi) {
        i64 mid = lo + ((hi - lo) >> 1);
        if (mlops_drift_before(a[mid], v, right)) lo = mid + 1; else hi = mid;
    }
    return lo;
}

// The same in [start, n), for an answer known to be >= start and expected near it:
// steps of 1, 2, 4, ... from start, then a binary search.
__device__ i64 mlops_drift_gallop(const double* __restrict__ a, i64 start, i64 n, double v, int right) {
    i64 lo = start, bound = start, step = 1;
    while (bound < n && mlops_drift_before(a[bound], v, right)) {
        lo = bound + 1;
        bound = start + step;
        step <<= 1;
    }
    return mlops_drift_search(a, lo, bound < n ? bound : n, v, right);
}

// ---------------------------------------------------------------- segmented sort

// One thread per position j of argsort(values): the unique key column(perm[j]) * n + j.
extern "C" __global__ void mlops_drift_sort_keys(const i64* __restrict__ perm, const i64* __restrict__ off,
                                                 i64 k, i64 n, i64* __restrict__ key) {
    i64 j = MLOPS_GLOBAL_ID();
    if (j >= n) return;
    key[j] = mlops_drift_find(off, k, perm[j]) * n + j;
}

// One thread per output position t: the value the t-th smallest key points at.
extern "C" __global__ void mlops_drift_sort_gather(const double* __restrict__ v, const i64* __restrict__ perm,
                                                   const i64* __restrict__ key, i64 n,
                                                   double* __restrict__ out) {
    i64 t = MLOPS_GLOBAL_ID();
    if (t >= n) return;
    out[t] = v[perm[key[t] % n]];
}

// ---------------------------------------------------------------- KS, W1, CvM

// One thread per chunk of `chunk` values of one column of one sample: chunks of x
// (reference) are threads [0, xch[k]), chunks of y (current) follow. Writes the chunk's
// KS extremes (exact integers and scipy's floats), W1 partial sum and CvM sum of squares
// (128 bits: hi, lo words).
extern "C" __global__ void mlops_drift_merge(const double* __restrict__ xv, const i64* __restrict__ xo,
                                             const i64* __restrict__ xch,
                                             const double* __restrict__ yv, const i64* __restrict__ yo,
                                             const i64* __restrict__ ych, i64 k, i64 chunk,
                                             i64* __restrict__ hi_num, double* __restrict__ hi_f,
                                             i64* __restrict__ lo_num, double* __restrict__ lo_f,
                                             double* __restrict__ wpart,
                                             u64* __restrict__ u_hi, u64* __restrict__ u_lo) {
    i64 t = MLOPS_GLOBAL_ID();
    i64 nxc = xch[k];
    if (t >= nxc + ych[k]) return;
    int own_x = t < nxc;
    i64 tc = own_x ? t : t - nxc;
    const i64* ch = own_x ? xch : ych;
    i64 c = mlops_drift_find(ch, k, tc);
    i64 n1 = xo[c + 1] - xo[c];
    i64 n2 = yo[c + 1] - yo[c];
    const double* S = own_x ? xv + xo[c] : yv + yo[c];
    const double* O = own_x ? yv + yo[c] : xv + xo[c];
    i64 ns = own_x ? n1 : n2;
    i64 no = own_x ? n2 : n1;
    i64 i0 = (tc - ch[c]) * chunk;
    i64 i1 = i0 + chunk < ns ? i0 + chunk : ns;
    double fn1 = (double)n1, fn2 = (double)n2;
    double inv = 1.0 / (fn1 * fn2);
    i64 hn = 0, ln = 0;
    double hf = 0.0, lf = 0.0, w = 0.0;
    u64 sh = 0, sl = 0;
    i64 ls = 0, rs = 0, lo = 0, hi = 0;  // v's tie group in S: [ls, rs); in O: [lo, hi)
    for (i64 i = i0; i < i1; i++) {
        double v = S[i];
        if (i == i0 || v != S[i - 1]) {
            if (i == i0) {
                ls = mlops_drift_search(S, 0, i, v, 0);
                lo = mlops_drift_search(O, 0, no, v, 0);
            } else {
                ls = i;
                lo = mlops_drift_gallop(O, hi, no, v, 0);
            }
            rs = mlops_drift_gallop(S, i + 1, ns, v, 1);
            hi = mlops_drift_gallop(O, lo, no, v, 1);
            i64 rx = own_x ? rs : hi;
            i64 ry = own_x ? hi : rs;
            i64 num = rx * n2 - ry * n1;
            if (num >= hn) {
                double f = (double)rx / fn1 - (double)ry / fn2;
                if (num > hn || f > hf) hf = f;
                hn = num;
            }
            if (num <= ln) {
                double f = (double)rx / fn1 - (double)ry / fn2;
                if (num < ln || f < lf) lf = f;
                ln = num;
            }
            // W1: the distinct pooled value v, once (see the module docstring)
            if (rs <= i1 && num != 0 && (own_x || hi == lo) && (rs < ns || hi < no)) {
                double nxt = rs < ns ? S[rs] : O[hi];
                if (rs < ns && hi < no && O[hi] < nxt) nxt = O[hi];
                w += fabs((double)num) * inv * (nxt - v);
            }
        }
        // CvM: 2 * (mid-rank in the pooled sample - 1-based position in S), an integer
        i64 d2 = ls + rs + lo + hi - 2 * i - 1;
        u64 a = (u64)(d2 < 0 ? -d2 : d2);
        u64 sq = a * a;
        sl += sq;
        if (sl < sq) sh++;
    }
    hi_num[t] = hn; hi_f[t] = hf;
    lo_num[t] = ln; lo_f[t] = lf;
    wpart[t] = w;
    u_hi[t] = sh; u_lo[t] = sl;
}

// One thread per group of up to `group` consecutive partials of one segment (segment s
// holds partials [src_off[s], src_off[s + 1]); its groups are [grp_off[s], grp_off[s + 1])):
// the group's partials combined into one. Segments are the columns of the reference, then
// those of the current sample; a segment without partials gets one neutral group.
extern "C" __global__ void mlops_drift_combine_merge(const i64* __restrict__ src_off,
                                                     const i64* __restrict__ grp_off, i64 nseg, i64 group,
                                                     const i64* __restrict__ hi_num, const double* __restrict__ hi_f,
                                                     const i64* __restrict__ lo_num, const double* __restrict__ lo_f,
                                                     const double* __restrict__ wpart,
                                                     const u64* __restrict__ u_hi, const u64* __restrict__ u_lo,
                                                     i64* __restrict__ o_hn, double* __restrict__ o_hf,
                                                     i64* __restrict__ o_ln, double* __restrict__ o_lf,
                                                     double* __restrict__ o_w,
                                                     u64* __restrict__ o_uh, u64* __restrict__ o_ul) {
    i64 g = MLOPS_GLOBAL_ID();
    if (g >= grp_off[nseg]) return;
    i64 s = mlops_drift_find(grp_off, nseg, g);
    i64 a = src_off[s] + (g - grp_off[s]) * group;
    i64 b = a + group < src_off[s + 1] ? a + group : src_off[s + 1];
    i64 hn = 0, ln = 0;
    double hf = 0.0, lf = 0.0;
    u64 sh = 0, sl = 0;
    for (i64 t = a; t < b; t++) {
        i64 num = hi_num[t];
        if (num > hn || (num == hn && hi_f[t] > hf)) { hn = num; hf = hi_f[t]; }
        num = lo_num[t];
        if (num < ln || (num == ln && lo_f[t] < lf)) { ln = num; lf = lo_f[t]; }
        u64 add = u_lo[t];
        sl += add;
        sh += u_hi[t] + (sl < add ? 1ULL : 0ULL);
    }
    o_hn[g] = hn; o_hf[g] = hf;
    o_ln[g] = ln; o_lf[g] = lf;
    o_w[g] = b > a ? mlops_pairwise_sum(wpart + a, b - a) : 0.0;
    o_uh[g] = sh; o_ul[g] = sl;
}

// The same for plain sums (the standard deviation's partials).
extern "C" __global__ void mlops_drift_combine_sum(const i64* __restrict__ src_off,
                                                   const i64* __restrict__ grp_off, i64 nseg, i64 group,
                                                   const double* __restrict__ part, double* __restrict__ out) {
    i64 g = MLOPS_GLOBAL_ID();
    if (g >= grp_off[nseg]) return;
    i64 s = mlops_drift_find(grp_off, nseg, g);
    i64 a = src_off[s] + (g - grp_off[s]) * group;
    i64 b = a + group < src_off[s + 1] ? a + group : src_off[s + 1];
    out[g] = b > a ? mlops_pairwise_sum(part + a, b - a) : 0.0;
}

// ---------------------------------------------------------------- standard deviation

// One thread per column: max|x| (the ends of a sorted column) where the squares would leave
// the range of doubles, else 1.
extern "C" __global__ void mlops_drift_std_scale(const double* __restrict__ v, const i64* __restrict__ off,
                                                 i64 k, double* __restrict__ scale) {
    i64 c = MLOPS_GLOBAL_ID();
    if (c >= k) return;
    double s = 1.0;
    if (off[c + 1] > off[c]) {
        double a = fabs(v[off[c]]), b = fabs(v[off[c + 1] - 1]);
        double m = a > b ? a : b;
        if (m > 0.0 && !isinf(m) && !(m > 1e-150 && m < 1e150)) s = m;
    }
    scale[c] = s;
}

// One thread per chunk: sum of x / scale (pass 0) or of (x / scale - mean)^2 (pass 1).
extern "C" __global__ void mlops_drift_std_part(const double* __restrict__ v, const i64* __restrict__ off,
                                                const i64* __restrict__ ch, i64 k, i64 chunk,
                                                const double* __restrict__ scale,
                                                const double* __restrict__ mean, i32 pass,
                                                double* __restrict__ part) {
    i64 t = MLOPS_GLOBAL_ID();
    if (t >= ch[k]) return;
    i64 c = mlops_drift_find(ch, k, t);
    i64 base = off[c], n = off[c + 1] - base;
    i64 i0 = (t - ch[c]) * chunk;
    i64 i1 = i0 + chunk < n ? i0 + chunk : n;
    double s = scale[c];
    double acc = 0.0;
    if (pass == 0) {
        for (i64 i = i0; i < i1; i++) acc += v[base + i] / s;
    } else {
        double m = mean[c];
        for (i64 i = i0; i < i1; i++) {
            double d = v[base + i] / s - m;
            acc += d * d;
        }
    }
    part[t] = acc;
}

// One thread per column: the mean (pass 0) or the standard deviation (pass 1) from the
// column's sum; NaN for an empty column.
extern "C" __global__ void mlops_drift_std_final(const i64* __restrict__ off, i64 k,
                                                 const double* __restrict__ sums,
                                                 const double* __restrict__ scale, i32 pass,
                                                 double* __restrict__ out) {
    i64 c = MLOPS_GLOBAL_ID();
    if (c >= k) return;
    i64 n = off[c + 1] - off[c];
    if (n == 0) { out[c] = MLOPS_NAN_F64; return; }
    double s = sums[c];
    out[c] = pass == 0 ? s / (double)n : sqrt(s / (double)n) * scale[c];
}

// ---------------------------------------------------------------- quantile bins

// One thread per (column, quantile): numpy.quantile(finite values, q[b]) (method "linear");
// NaN where the column has no finite value.
extern "C" __global__ void mlops_drift_quantile_edges(const double* __restrict__ v, const i64* __restrict__ off,
                                                      i64 k, const double* __restrict__ q, i64 ne,
                                                      double* __restrict__ edges) {
    i64 t = MLOPS_GLOBAL_ID();
    if (t >= k * ne) return;
    i64 c = t / ne, b = t - c * ne;
    const double* x = v + off[c];
    i64 n = off[c + 1] - off[c];
    i64 lo = mlops_drift_search(x, 0, n, -MLOPS_INF_F64, 1);  // after the -inf
    i64 hi = mlops_drift_search(x, lo, n, MLOPS_INF_F64, 0);  // before the +inf
    i64 nf = hi - lo;
    if (nf == 0) { edges[t] = MLOPS_NAN_F64; return; }
    const double* xf = x + lo;
    double vi = MLOPS_MUL((double)(nf - 1), q[b]);
    double e;
    if (vi >= (double)(nf - 1)) {
        e = xf[nf - 1];
    } else if (vi < 0.0) {
        e = xf[0];
    } else {
        double prev = floor(vi);
        double gamma = MLOPS_SUB(vi, prev);
        i64 ip = (i64)prev;
        double a0 = xf[ip], b0 = xf[ip + 1];
        double diff = MLOPS_SUB(b0, a0);
        e = gamma >= 0.5 ? MLOPS_SUB(b0, MLOPS_MUL(diff, MLOPS_SUB(1.0, gamma)))
                         : MLOPS_ADD(a0, MLOPS_MUL(diff, gamma));
    }
    edges[t] = e;
}

// One thread per (column, edge): values below edge b (<= for the last edge).
extern "C" __global__ void mlops_drift_bin_pos(const double* __restrict__ v, const i64* __restrict__ off,
                                               i64 k, const double* __restrict__ edges, i64 ne,
                                               i64* __restrict__ pos) {
    i64 t = MLOPS_GLOBAL_ID();
    if (t >= k * ne) return;
    i64 c = t / ne, b = t - c * ne;
    pos[t] = mlops_drift_search(v + off[c], 0, off[c + 1] - off[c], edges[t], b == ne - 1 ? 1 : 0);
}

// One thread per (column, bin): underflow, [e_{b-1}, e_b) (the last one closed), overflow;
// zero where the row's first edge is not finite.
extern "C" __global__ void mlops_drift_bin_counts(const i64* __restrict__ off, i64 k,
                                                  const double* __restrict__ edges, i64 ne,
                                                  const i64* __restrict__ pos, i64* __restrict__ counts) {
    i64 t = MLOPS_GLOBAL_ID();
    i64 nb = ne + 1;
    if (t >= k * nb) return;
    i64 c = t / nb, b = t - c * nb;
    double e0 = edges[c * ne];
    if (isnan(e0) || isinf(e0)) { counts[t] = 0; return; }
    const i64* p = pos + c * ne;
    i64 n = off[c + 1] - off[c];
    counts[t] = b == 0 ? p[0] : (b == ne ? n - p[ne - 1] : p[b] - p[b - 1]);
}
""")


# ----------------------------------------------------------------------------- helpers


def _i64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def launch(dev, src, kernel: str, n: int, *args) -> None:
    """``kernel`` over ``n`` threads (none when ``n`` is 0), blocks of 256."""
    if n > 0:
        dev.launch(src, kernel, cuda_runtime.launch_grid(n, _BLOCK), _BLOCK, args)


def batches(sizes: np.ndarray, budget: int | None = None):
    """``(c0, c1)``: runs of whole columns holding at most ``budget`` values together (a
    larger column alone), covering every column in order."""
    budget = BATCH_ELEMENTS if budget is None else budget
    k = len(sizes)
    cum = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(sizes, out=cum[1:])
    c0 = 0
    while c0 < k:
        c1 = int(np.searchsorted(cum, cum[c0] + budget, side="right")) - 1
        c1 = min(max(c1, c0 + 1), k)
        yield c0, c1
        c0 = c1


def _upload(dev, values, offsets, c0, c1):
    """Columns ``c0:c1`` on the device: ``(values, host offsets from 0, device offsets)``."""
    a, b = int(offsets[c0]), int(offsets[c1])
    off = offsets[c0:c1 + 1] - a
    return dev.to_device(_f64(values[a:b])), off, dev.to_device(off)


def _chunk_offsets(counts: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Prefix sums of each column's number of CHUNK-value chunks (0 where not ``active``)."""
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.where(active, -(-counts // CHUNK), 0), out=out[1:])
    return out


@functools.cache
def _distributions():
    """``(ks_2samp_pvalue, cvm_from_u, chi2_sf)``: numba's ports of scipy where numba is
    installed (fast exact KS), else the plain-Python ones of the reference."""
    try:
        from .distributions_numba import _chi2_sf, _cvm_from_u
        from .ks_dist_numba import _ks_2samp_pvalue
    except ImportError:
        from .reference_distributions import chi2_sf, ks_2samp_pvalue

        return ks_2samp_pvalue, cvm_from_u_reference, chi2_sf
    return _ks_2samp_pvalue, _cvm_from_u, _chi2_sf


def cvm_from_u_reference(u: float, nx: int, ny: int) -> tuple[float, float]:
    """Statistic and p-value of ``cramervonmises_2samp`` from Anderson's U, as
    ``reference.cvm_2samp`` forms them (the distributions from ``reference_distributions``)."""
    from .reference_distributions import _cdf_cvm_inf, _cvm_exact_pvalue

    kk, big_n = nx * ny, nx + ny
    t = u / (kk * big_n) - (4 * kk - 1) / (6 * big_n)
    if max(nx, ny) <= 20:
        return t, _cvm_exact_pvalue(float(u), nx, ny)
    et = (1 + 1 / big_n) / 6
    vt = (big_n + 1) * (4 * kk * big_n - 3 * (nx ** 2 + ny ** 2) - 2 * kk)
    vt = vt / (45 * big_n ** 2 * 4 * kk)
    tn = 1 / 6 + (t - et) / math.sqrt(45 * vt)
    return t, 1.0 if tn < 0.003 else max(1.0 - _cdf_cvm_inf(tn), 0.0)


# ----------------------------------------------------------------------------- sorting


def _segmented_sort(dev, v, off: np.ndarray):
    """Device array ``v`` with each column ``v[off[c]:off[c + 1]]`` sorted (a new array, or
    ``v`` sorted in place)."""
    xp = dev.xp
    n = int(v.size)
    if n <= 1 or int(np.count_nonzero(np.diff(off))) <= 1:
        v.sort()
        return v
    perm = xp.ascontiguousarray(xp.argsort(v).astype(xp.int64, copy=False))
    key = xp.empty(n, dtype=xp.int64)
    launch(dev, SRC, "mlops_drift_sort_keys", n, perm, dev.to_device(off), len(off) - 1, n, key)
    key.sort()
    out = xp.empty(n, dtype=xp.float64)
    launch(dev, SRC, "mlops_drift_sort_gather", n, v, perm, key, n, out)
    return out


def _check_values(values) -> None:
    if not (isinstance(values, np.ndarray) and values.dtype == np.float64 and values.ndim == 1
            and values.flags.c_contiguous):
        raise TypeError("values must be a C-contiguous 1-D float64 array (sorted in place)")


def sort_segments(values, offsets) -> None:
    """Sort every packed column ``values[offsets[c]:offsets[c + 1]]`` in place (no NaN).

    A segmented sort on the device per batch of columns (see the module docstring).
    """
    _check_values(values)
    dev = cuda_runtime.current()
    off = _i64(offsets)
    for c0, c1 in batches(np.diff(off)):
        v, o, _ = _upload(dev, values, off, c0, c1)
        a = int(off[c0])
        dev.to_host(_segmented_sort(dev, v, o), out=values[a:a + int(o[-1])])


def sort_packed(values, offsets):
    """Drop NaN from every packed column and sort it, then pack the columns to the front.

    In place: afterwards column ``c`` is ``values[new[c]:new[c + 1]]``. Returns
    ``(new, nan_counts)`` (int64). Each batch of columns is read to the device before any
    of it is written back, and columns only move left, so batches never overwrite
    values not yet read.
    """
    _check_values(values)
    dev = cuda_runtime.current()
    xp = dev.xp
    off = _i64(offsets)
    k = len(off) - 1
    sizes = np.diff(off)
    new = np.zeros(k + 1, dtype=np.int64)
    nan_counts = np.zeros(k, dtype=np.int64)
    for c0, c1 in batches(sizes):
        v, o, o_d = _upload(dev, values, off, c0, c1)
        nan = xp.isnan(v)
        cum = xp.zeros(int(v.size) + 1, dtype=xp.int64)
        cum[1:] = xp.cumsum(nan.astype(xp.int64))
        nans = dev.to_host(cum[o_d[1:]] - cum[o_d[:-1]]).astype(np.int64, copy=False)
        kept = sizes[c0:c1] - nans
        if nans.any():
            v = xp.ascontiguousarray(v[~nan])
            o = np.zeros(c1 - c0 + 1, dtype=np.int64)
            np.cumsum(kept, out=o[1:])
        nan_counts[c0:c1] = nans
        new[c0 + 1:c1 + 1] = new[c0] + np.cumsum(kept)
        dst = int(new[c0])
        dev.to_host(_segmented_sort(dev, v, o), out=values[dst:dst + int(o[-1])])
    return new, nan_counts


# ----------------------------------------------------------------------------- statistics


def _prefix(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _combine(dev, kernel: str, counts: np.ndarray, arrays: tuple) -> tuple:
    """Partials (device ``arrays``, ``counts[s]`` consecutive ones per segment ``s``)
    combined by ``kernel`` in groups of :data:`GROUP` until each segment has exactly one."""
    xp = dev.xp
    counts = np.asarray(counts, dtype=np.int64)
    nseg = len(counts)
    src = _prefix(counts)
    while nseg and not (counts == 1).all():
        groups = np.maximum(1, -(-counts // GROUP))
        grp = _prefix(groups)
        ng = int(grp[-1])
        out = tuple(xp.empty(ng, dtype=a.dtype) for a in arrays)
        launch(dev, SRC, kernel, ng, dev.to_device(src), dev.to_device(grp), nseg, GROUP,
               *arrays, *out)
        arrays, counts, src = out, groups, grp
    return arrays


def _std_device(dev, v, off: np.ndarray, off_d) -> np.ndarray:
    """numpy.std of every column of device array ``v`` (sorted columns), to the host."""
    xp = dev.xp
    k = len(off) - 1
    n = np.diff(off)
    ch = _chunk_offsets(n, n > 0)
    ch_d = dev.to_device(ch)
    nch = int(ch[-1])
    scale = xp.empty(k, dtype=xp.float64)
    mean = xp.empty(k, dtype=xp.float64)
    out = xp.empty(k, dtype=xp.float64)
    part = xp.empty(max(nch, 1), dtype=xp.float64)
    launch(dev, SRC, "mlops_drift_std_scale", k, v, off_d, k, scale)
    for p, res in ((0, mean), (1, out)):
        launch(dev, SRC, "mlops_drift_std_part", nch, v, off_d, ch_d, k, CHUNK, scale, mean, p, part)
        (sums,) = _combine(dev, "mlops_drift_combine_sum", np.diff(ch), (part[:nch],))
        launch(dev, SRC, "mlops_drift_std_final", k, off_d, k, sums, scale, p, res)
    return dev.to_host(out)


def std(values, offsets):
    """``numpy.std`` of every packed sorted column; NaN where a column is empty."""
    dev = cuda_runtime.current()
    off = _i64(offsets)
    out = np.full(len(off) - 1, np.nan)
    for c0, c1 in batches(np.diff(off)):
        v, o, o_d = _upload(dev, values, off, c0, c1)
        out[c0:c1] = _std_device(dev, v, o, o_d)
    return out


class _Merged:
    """Per-column results of the merge (and the reference's std), on the host."""

    def __init__(self, k: int, nx: np.ndarray, ny: np.ndarray):
        self.nx, self.ny = nx, ny
        self.hn = np.zeros(k, np.int64)
        self.ln = np.zeros(k, np.int64)
        self.hf = np.zeros(k)
        self.lf = np.zeros(k)
        self.w = np.zeros(k)
        self.u = np.zeros((k, 4), np.uint64)
        self.sd = np.full(k, np.nan)

    def put(self, c0: int, c1: int, seg: tuple) -> None:
        """Columns ``c0:c1`` from one combined partial per segment (reference columns,
        then current ones): KS extremes (the larger float at equal integers, as scipy's
        maximum over all points), W1 summed, the CvM sums of both samples."""
        kb = c1 - c0
        hn, hf, ln, lf, w, uh, ul = seg
        hx, hy, fx, fy = hn[:kb], hn[kb:], hf[:kb], hf[kb:]
        self.hn[c0:c1] = np.maximum(hx, hy)
        self.hf[c0:c1] = np.where(hx > hy, fx, np.where(hy > hx, fy, np.maximum(fx, fy)))
        lx, ly, fx, fy = ln[:kb], ln[kb:], lf[:kb], lf[kb:]
        self.ln[c0:c1] = np.minimum(lx, ly)
        self.lf[c0:c1] = np.where(lx < ly, fx, np.where(ly < lx, fy, np.minimum(fx, fy)))
        self.w[c0:c1] = w[:kb] + w[kb:]
        self.u[c0:c1] = np.stack([uh[:kb], ul[:kb], uh[kb:], ul[kb:]], axis=1)


def _merge(rv, ro, cv, co, want_std: bool) -> _Merged:
    dev = cuda_runtime.current()
    xp = dev.xp
    ro, co = _i64(ro), _i64(co)
    k = len(ro) - 1
    if len(co) != k + 1:
        raise ValueError(f"ref has {k} columns but cur has {len(co) - 1}")
    nx, ny = np.diff(ro), np.diff(co)
    res = _Merged(k, nx, ny)
    for c0, c1 in batches(nx + ny):
        kb = c1 - c0
        xv, xo, xo_d = _upload(dev, rv, ro, c0, c1)
        yv, yo, yo_d = _upload(dev, cv, co, c0, c1)
        both = (nx[c0:c1] > 0) & (ny[c0:c1] > 0)
        xch, ych = _chunk_offsets(nx[c0:c1], both), _chunk_offsets(ny[c0:c1], both)
        nt = int(xch[-1] + ych[-1])
        m = max(nt, 1)
        hn, ln = xp.empty(m, dtype=xp.int64), xp.empty(m, dtype=xp.int64)
        hf, lf, w = (xp.empty(m, dtype=xp.float64) for _ in range(3))
        uh, ul = xp.empty(m, dtype=xp.uint64), xp.empty(m, dtype=xp.uint64)
        launch(dev, SRC, "mlops_drift_merge", nt, xv, xo_d, dev.to_device(xch), yv, yo_d,
               dev.to_device(ych), kb, CHUNK, hn, hf, ln, lf, w, uh, ul)
        parts = tuple(a[:nt] for a in (hn, hf, ln, lf, w, uh, ul))
        seg = _combine(dev, "mlops_drift_combine_merge",
                       np.concatenate([np.diff(xch), np.diff(ych)]), parts)
        res.put(c0, c1, tuple(dev.to_host(a) for a in seg))
        if want_std:
            res.sd[c0:c1] = _std_device(dev, xv, xo, xo_d)
    return res


def _ks(r: _Merged):
    ks_pvalue = _distributions()[0]
    k = len(r.nx)
    stat, pval = np.full(k, np.nan), np.full(k, np.nan)
    for c in np.flatnonzero((r.nx > 0) & (r.ny > 0)):
        max_s = float(r.hf[c])
        min_s = min(max(-float(r.lf[c]), 0.0), 1.0)
        d = min_s if min_s > max_s else max_s
        stat[c], pval[c] = ks_pvalue(d, int(r.nx[c]), int(r.ny[c]))
    return stat, pval


def _cvm(r: _Merged):
    cvm_from_u = _distributions()[1]
    k = len(r.nx)
    stat, pval = np.full(k, np.nan), np.full(k, np.nan)
    for c in np.flatnonzero((r.nx >= 2) & (r.ny >= 2)):
        nx, ny = int(r.nx[c]), int(r.ny[c])
        words = [int(x) for x in r.u[c]]
        sx, sy = (words[0] << 64) | words[1], (words[2] << 64) | words[3]
        u = (nx * sx + ny * sy) / 4  # exact integers, one rounding
        stat[c], pval[c] = cvm_from_u(u, nx, ny)
    return stat, pval


def _w1(r: _Merged) -> np.ndarray:
    return np.where((r.nx > 0) & (r.ny > 0), r.w, np.nan)


def ks_2samp(rv, ro, cv, co):
    """scipy.stats.ks_2samp(x, y, method="auto") per column: ``(statistic, pvalue)``."""
    return _ks(_merge(rv, ro, cv, co, False))


def wasserstein(rv, ro, cv, co):
    """scipy.stats.wasserstein_distance per column and numpy.std of the reference:
    ``(w1, ref_std)``."""
    r = _merge(rv, ro, cv, co, True)
    return _w1(r), r.sd


def cvm_2samp(rv, ro, cv, co):
    """scipy.stats.cramervonmises_2samp(x, y, method="auto") per column: ``(statistic,
    pvalue)``; NaN where a sample has fewer than 2 values."""
    return _cvm(_merge(rv, ro, cv, co, False))


def numeric_drift(rv, ro, cv, co, ref_std=None):
    """KS, W1, reference std and CvM from one merge per column:
    ``(ks_stat, ks_p, w1, ref_std, cvm_stat, cvm_p)``.

    A given ``ref_std`` (from an earlier call) is returned as it is.
    """
    r = _merge(rv, ro, cv, co, ref_std is None)
    sd = r.sd if ref_std is None else np.array(ref_std, dtype=np.float64)
    return (*_ks(r), _w1(r), sd, *_cvm(r))


# ----------------------------------------------------------------------------- bins


def _bin_counts(dev, v, o_d, kb: int, edges_d, ne: int):
    """Counts (device, int64 (kb, ne + 1)) of sorted columns in their rows of edges."""
    xp = dev.xp
    pos = xp.empty(max(kb * ne, 1), dtype=xp.int64)
    counts = xp.empty(max(kb * (ne + 1), 1), dtype=xp.int64)
    launch(dev, SRC, "mlops_drift_bin_pos", kb * ne, v, o_d, kb, edges_d, ne, pos)
    launch(dev, SRC, "mlops_drift_bin_counts", kb * (ne + 1), o_d, kb, edges_d, ne, pos, counts)
    return counts[:kb * (ne + 1)]


def bin_sorted(values, offsets, edges):
    """Counts of each packed sorted column in the bins of its row of ``edges`` (k, B+1) ->
    int64 (k, B+2); zero counts where the row's first edge is not finite."""
    dev = cuda_runtime.current()
    off = _i64(offsets)
    e = _f64(edges)
    k, ne = e.shape
    out = np.zeros((k, ne + 1), dtype=np.int64)
    for c0, c1 in batches(np.diff(off)):
        v, _, o_d = _upload(dev, values, off, c0, c1)
        kb = c1 - c0
        counts = _bin_counts(dev, v, o_d, kb, dev.to_device(e[c0:c1]), ne)
        out[c0:c1] = dev.to_host(counts).reshape(kb, ne + 1)
    return out


def histogram(rv, ro, cv, co, q):
    """Edges ``numpy.quantile(finite reference, q)`` and both samples' counts per bin.

    Returns ``(edges (k, B+1), ref_counts (k, B+2), cur_counts (k, B+2))``, counts as
    float64; NaN edges and zero counts where the reference has no finite value.
    """
    dev = cuda_runtime.current()
    xp = dev.xp
    ro, co = _i64(ro), _i64(co)
    q = _f64(q)
    k, ne = len(ro) - 1, len(q)
    edges = np.full((k, ne), np.nan)
    rc, cc = np.zeros((k, ne + 1)), np.zeros((k, ne + 1))
    q_d = dev.to_device(q)
    for c0, c1 in batches(np.diff(ro) + np.diff(co)):
        kb = c1 - c0
        xv, _, xo_d = _upload(dev, rv, ro, c0, c1)
        yv, _, yo_d = _upload(dev, cv, co, c0, c1)
        e_d = xp.empty(max(kb * ne, 1), dtype=xp.float64)
        launch(dev, SRC, "mlops_drift_quantile_edges", kb * ne, xv, xo_d, kb, q_d, ne, e_d)
        edges[c0:c1] = dev.to_host(e_d[:kb * ne]).reshape(kb, ne)
        for v, o_d, out in ((xv, xo_d, rc), (yv, yo_d, cc)):
            out[c0:c1] = dev.to_host(_bin_counts(dev, v, o_d, kb, e_d, ne)).reshape(kb, ne + 1)
    return edges, rc, cc


__all__ = [
    "BATCH_ELEMENTS", "CHUNK", "GROUP", "SRC", "bin_sorted", "cvm_2samp", "histogram", "ks_2samp",
    "numeric_drift", "sort_packed", "sort_segments", "std", "wasserstein",
]
