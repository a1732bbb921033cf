"""Two-sample drift statistics, Numba CPU backend: one ``prange`` iteration per column.

Same contracts as the ``reference`` drift kernels (``reference.py``, section
"Drift statistics"); ``engine.kernels.drift`` validates, packs and dispatches.

Samples arrive *packed*: the non-NaN values of column ``c`` are
``values[offsets[c]:offsets[c + 1]]``, sorted ascending. Sorting is the
expensive step, so it is a kernel of its own (an LSD radix sort on the
order-preserving bit patterns of the floats) and the test kernels only walk
already-sorted samples: a reference profile sorts once and is reused for every
batch. Count-based kernels take per-column counts packed the same way.

The p-value functions are ports of scipy's (``scipy.stats.ks_2samp``,
``kstwo``, ``cramervonmises_2samp``, ``chi2_contingency``); each says which
scipy routine it follows.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_JIT = dict(nogil=True, cache=True)
_PJIT = dict(parallel=True, nogil=True, cache=True)

_EPS = 2.220446049250313e-16
_EP128 = 2.0 ** 128
_EM128 = 2.0 ** -128
_LOG_2PI = math.log(2.0 * math.pi)
_SQRT2PI = math.sqrt(2.0 * math.pi)
_PI_SQUARED = math.pi ** 2
_PI_FOUR = math.pi ** 4
_PI_SIX = math.pi ** 6
_SQRT3 = math.sqrt(3.0)
_MIN_LOG = -708.0
_SMIRNOV_MINLOG = -7.08396418532264106224e2
_STIRLING = np.array([-2.955065359477124183e-2, 6.4102564102564102564e-3,
                      -1.9175269175269175269e-3, 8.4175084175084175084e-4,
                      -5.952380952380952381e-4, 7.9365079365079365079e-4,
                      -2.7777777777777777778e-3, 8.3333333333333333333e-2])
KS_MAX_EXACT_N = 10000
CVM_MAX_EXACT_N = 20

# ---------------------------------------------------------------------------
# Sorting: LSD radix sort of float64 bit patterns
# ---------------------------------------------------------------------------

# 11-bit digits: 6 passes over 64-bit keys; 6 x 2048 counters (96 KiB) stay in L2.
_RADIX_BITS = 11
_RADIX_PASSES = 6
# Below this a comparison sort wins: radix pays for zeroing and scanning its counters.
_SMALL_SORT = 2048
_SIGN = np.uint64(1 << 63)
_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@numba.njit(**_JIT)
def _radix_sort(x):
    """Sort NaN-free float64 ``x`` in place (-0.0 sorts before +0.0)."""
    n = x.shape[0]
    if n < _SMALL_SORT:
        x[:] = np.sort(x)
        return
    keys = x.view(np.uint64)
    nb = 1 << _RADIX_BITS
    mask = np.uint64(nb - 1)
    counts = np.zeros((_RADIX_PASSES, nb), dtype=np.int64)
    # Flip so that unsigned order is float order: negatives reverse, positives gain the sign bit.
    for i in range(n):
        k = keys[i]
        k = k ^ _ONES if k & _SIGN else k ^ _SIGN
        keys[i] = k
        for p in range(_RADIX_PASSES):
            counts[p, (k >> np.uint64(p * _RADIX_BITS)) & mask] += 1
    buf = np.empty(n, dtype=np.uint64)
    src = keys
    dst = buf
    for p in range(_RADIX_PASSES):
        c = counts[p]
        trivial = False
        for b in range(nb):
            if c[b] != 0:
                trivial = c[b] == n  # every key has this digit: the pass would be a copy
                break
        if trivial:
            continue
        total = 0
        for b in range(nb):
            t = c[b]
            c[b] = total
            total += t
        sh = np.uint64(p * _RADIX_BITS)
        for i in range(n):
            k = src[i]
            b = (k >> sh) & mask
            dst[c[b]] = k
            c[b] += 1
        src, dst = dst, src
    for i in range(n):
        k = src[i]
        keys[i] = k ^ _SIGN if k & _SIGN else k ^ _ONES


@numba.njit(**_PJIT)
def sort_columns(x):
    """Pack the columns of 2-D ``x`` (rows = observations): drop NaN, sort.

    Returns ``(values, offsets, nan_counts)``. Fortran-ordered ``x`` is read
    contiguously; C order works but reads each column with a stride.
    """
    n, k = x.shape
    nan_counts = np.zeros(k, dtype=np.int64)
    for j in numba.prange(k):
        c = 0
        for i in range(n):
            if np.isnan(x[i, j]):
                c += 1
        nan_counts[j] = c
    offsets = np.zeros(k + 1, dtype=np.int64)
    for j in range(k):
        offsets[j + 1] = offsets[j] + n - nan_counts[j]
    values = np.empty(offsets[k], dtype=np.float64)
    for j in numba.prange(k):
        seg = values[offsets[j]:offsets[j + 1]]
        p = 0
        for i in range(n):
            v = x[i, j]
            if not np.isnan(v):
                seg[p] = v
                p += 1
        _radix_sort(seg)
    return values, offsets, nan_counts


@numba.njit(**_PJIT)
def sort_segments(values, offsets):
    """Sort every segment ``values[offsets[c]:offsets[c+1]]`` in place (no NaN allowed)."""
    k = offsets.shape[0] - 1
    for c in numba.prange(k):
        _radix_sort(values[offsets[c]:offsets[c + 1]])


# ---------------------------------------------------------------------------
# Small numeric helpers
# ---------------------------------------------------------------------------


@numba.njit(**_JIT)
def _block_sum(a, lo, n):
    """NumPy's pairwise-sum leaf (n <= 128): eight interleaved accumulators."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(**_JIT)
def _pairwise_sum(a, lo, n):
    """``numpy.sum(a[lo:lo+n])`` in NumPy's own pairwise order (bit-identical).

    NumPy recurses on halves (rounded to multiples of 8) down to blocks of
    128; this walks the same tree with an explicit stack, because numba's
    on-disk cache mishandles recursive functions.
    """
    if n <= 128:
        return _block_sum(a, lo, n)
    t_lo = np.empty(192, dtype=np.int64)
    t_n = np.empty(192, dtype=np.int64)
    t_stage = np.empty(192, dtype=np.int64)
    vals = np.empty(64)
    nt = 1
    nv = 0
    t_lo[0] = lo
    t_n[0] = n
    t_stage[0] = 0
    while nt > 0:
        nt -= 1
        tl = t_lo[nt]
        tn = t_n[nt]
        if tn <= 128:
            vals[nv] = _block_sum(a, tl, tn)
            nv += 1
        elif t_stage[nt] == 0:
            n2 = tn // 2
            n2 -= n2 % 8
            t_stage[nt] = 1  # combine after both halves
            nt += 1
            t_lo[nt] = tl + n2
            t_n[nt] = tn - n2
            t_stage[nt] = 0
            nt += 1
            t_lo[nt] = tl
            t_n[nt] = n2
            t_stage[nt] = 0
            nt += 1
        else:
            nv -= 1
            right = vals[nv]
            vals[nv - 1] = vals[nv - 1] + right
    return vals[0]


@numba.njit(**_JIT)
def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


@numba.njit(**_JIT)
def _clip01(p):
    return min(max(p, 0.0), 1.0)


@numba.njit(**_JIT)
def _matmul(a, b):
    m = a.shape[0]
    out = np.zeros((m, m))
    for i in range(m):
        for k in range(m):
            aik = a[i, k]
            if aik != 0.0:
                for j in range(m):
                    out[i, j] += aik * b[k, j]
    return out


# ---------------------------------------------------------------------------
# Kolmogorov-Smirnov: statistic, exact two-sample p-value, kstwo survival function
# ---------------------------------------------------------------------------


@numba.njit(**_JIT)
def _ks_prob_outside_square(n, h):
    """scipy.stats._stats_py._compute_prob_outside_square: P(D_{n,n} >= h/n)."""
    p = 0.0
    k = n // h
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = (n - k * h - j) * p1 / (n + k * h + j + 1)
        p = p1 * (1.0 - p)
        k -= 1
    return 2 * p


@numba.njit(**_JIT)
def _ks_outer_prob_inside(m, n, g, h):
    """scipy.stats._stats_pythran._compute_outer_prob_inside_method (Hodges; Viehmann 2021)."""
    if m < n:
        m, n = n, m
    mg = m // g
    ng = n // g
    minj = 0
    maxj = min(int(math.ceil(h / mg)), n + 1)
    curlen = maxj - minj
    len_a = min(2 * maxj + 2, n + 1)
    a = np.ones(len_a)
    a[minj:maxj] = 0.0
    for i in range(1, m + 1):
        lastminj = minj
        lastlen = curlen
        minj = max(int(math.floor((ng * i - h) / mg)) + 1, 0)
        minj = min(minj, n)
        maxj = min(int(math.ceil((ng * i + h) / mg)), n + 1)
        if maxj <= minj:
            return 1.0
        val = 0.0 if minj == 0 else 1.0
        for jj in range(maxj - minj):
            j = jj + minj
            val = (a[jj + minj - lastminj] * i + val * j) / (i + j)
            a[jj] = val
        curlen = maxj - minj
        if lastlen > curlen:
            a[maxj - minj:maxj - minj + (lastlen - curlen)] = 1.0
    return a[maxj - minj - 1]


@numba.njit(**_JIT)
def _log_nfactorial_div_n_pow_n(n):
    rn = 1.0 / n
    x = rn / n
    poly = 0.0
    for c in _STIRLING:
        poly = poly * x + c
    return math.log(n) / 2 - n + _LOG_2PI / 2 + rn * poly


@numba.njit(**_JIT)
def _kolmogn_dmtw_cdf(n, d):
    """Durbin matrix (Marsaglia-Tsang-Wang 2003) as scipy.stats._ksstats._kolmogn_DMTW."""
    if d >= 1.0:
        return 1.0
    nd = n * d
    if nd <= 0.5:
        return 0.0
    k = int(math.ceil(nd))
    h = k - nd
    m = 2 * k - 1
    hm = np.zeros((m, m))
    v = np.empty(m)
    w = np.empty(m)
    fac = 1.0
    for j in range(1, m + 1):
        v[j - 1] = 1.0 - math.pow(h, float(j))
        w[j - 1] = fac
        fac /= j
        v[j - 1] *= fac
    tt = math.pow(max(2 * h - 1.0, 0.0), float(m)) - 2 * math.pow(h, float(m))
    v[m - 1] = (1.0 + tt) * fac
    for i in range(1, m):
        for r in range(i - 1, m):
            hm[r, i] = w[r - i + 1]
    for r in range(m):
        hm[r, 0] = v[r]
    for c in range(m):
        hm[m - 1, c] = v[m - 1 - c]
    hpwr = np.eye(m)
    nn = n
    expnt = 0
    hexpnt = 0
    while nn > 0:
        if nn % 2:
            hpwr = _matmul(hpwr, hm)
            expnt += hexpnt
        hm = _matmul(hm, hm)
        hexpnt *= 2
        if abs(hm[k - 1, k - 1]) > _EP128:
            hm /= _EP128
            hexpnt += 128
        nn = nn // 2
    p = hpwr[k - 1, k - 1]
    for i in range(1, n + 1):
        p = i * p / n
        if abs(p) < _EM128:
            p *= _EP128
            expnt -= 128
    if expnt != 0:
        p = math.ldexp(p, expnt)
    return _clip01(p)


@numba.njit(**_JIT)
def _pomeranz_j1j2(i, n, ll, ceilf, roundf):
    if i == 0:
        j1 = -ll - ceilf - 1
        j2 = ll + ceilf - 1
    else:
        ip1div2 = (i + 1) // 2
        ip1mod2 = (i + 1) % 2
        if ip1mod2 == 0:
            if ip1div2 == n + 1:
                j1 = n - ll - ceilf - 1
                j2 = n + ll + ceilf - 1
            else:
                j1 = ip1div2 - 1 - ll - roundf - 1
                j2 = ip1div2 + ll - 1 + ceilf - 1
        else:
            j1 = ip1div2 - 1 - ll - 1
            j2 = ip1div2 + ll + roundf - 1
    return max(j1 + 2, 0), min(j2, n)


@numba.njit(**_JIT)
def _kolmogn_pomeranz_cdf(n, x):
    """Pomeranz (1974) recursion as scipy.stats._ksstats._kolmogn_Pomeranz."""
    t = n * x
    ll = int(math.floor(t))
    f = 1.0 * (t - ll)
    g = min(f, 1.0 - f)
    ceilf = 1 if f > 0 else 0
    roundf = 1 if f > 0.5 else 0
    npwrs = 2 * (ll + 1)
    pw = np.empty((3, npwrs))  # gpower, twogpower, onem2gpower
    pw[0, 0] = 1.0
    pw[1, 0] = 1.0
    pw[2, 0] = 1.0
    expnt = 0
    g_over_n = g / n
    two_g_over_n = 2 * g / n
    one_minus_two_g_over_n = (1 - 2 * g) / n
    for m in range(1, npwrs):
        pw[0, m] = pw[0, m - 1] * g_over_n / m
        pw[1, m] = pw[1, m - 1] * two_g_over_n / m
        pw[2, m] = pw[2, m - 1] * one_minus_two_g_over_n / m
    v0 = np.zeros(npwrs)
    v1 = np.zeros(npwrs)
    v1[0] = 1.0
    v0s = 0
    v1s = 0
    j1, j2 = _pomeranz_j1j2(0, n, ll, ceilf, roundf)
    for i in range(1, 2 * n + 2):
        k1 = j1
        v0, v1 = v1, v0
        v0s, v1s = v1s, v0s
        v1[:] = 0.0
        j1, j2 = _pomeranz_j1j2(i, n, ll, ceilf, roundf)
        if i == 1 or i == 2 * n + 1:
            row = 0
        else:
            row = 1 if i % 2 else 2
        ln2 = j2 - k1 + 1
        if ln2 > 0:
            start = k1 - v0s
            la = min(start + ln2, npwrs) - start
            conv_start = j1 - k1
            conv_len = j2 - j1 + 1
            for idx in range(conv_len):
                c = conv_start + idx
                s = 0.0
                for a in range(max(0, c - ln2 + 1), min(c, la - 1) + 1):
                    s += v0[start + a] * pw[row, c - a]
                v1[idx] = s
            vmax = v1.max()
            if 0 < vmax < _EM128:
                v1 *= _EP128
                expnt -= 128
            v1s = v0s + j1 - k1
    ans = v1[n - v1s]
    for m in range(1, n + 1):
        if abs(ans) > _EP128:
            ans *= _EM128
            expnt += 128
        ans *= m
    if expnt != 0:
        ans = math.ldexp(ans, expnt)
    return _clip01(ans)


@numba.njit(**_JIT)
def _kolmogn_pelzgood_cdf(n, x):
    """Pelz-Good (1976) approximation as scipy.stats._ksstats._kolmogn_PelzGood."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    z = math.sqrt(n) * x
    zsquared = math.pow(z, 2.0)
    zthree = math.pow(z, 3.0)
    zfour = math.pow(z, 4.0)
    zsix = math.pow(z, 6.0)
    qlog = -_PI_SQUARED / 8 / zsquared
    if qlog < _MIN_LOG:
        return 0.0
    q = math.exp(qlog)
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * math.pow(z, 8.0)
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    maxk = int(math.ceil(16 * z / math.pi))
    for k in range(maxk, 0, -1):
        m = 2 * k - 1
        msq = float(m * m)
        mfour = msq * msq
        msix = mfour * msq
        qpower = math.pow(q, float(8 * k))
        s0 = s0 * qpower + 1.0
        s1 = s1 * qpower + (k1a + k1b * msq)
        s2 = s2 * qpower + (k2a + k2b * msq + k2c * mfour)
        s3 = s3 * qpower + (k3a + k3b * msq + k3c * mfour + k3d * msix)
    s0 = s0 * q * _SQRT2PI / z
    s1 = s1 * q * _SQRT2PI / (6 * zfour)
    s2 = s2 * q * _SQRT2PI / (72 * math.pow(z, 7.0))
    s3 = s3 * q * _SQRT2PI / (6480 * math.pow(z, 10.0))
    q = math.exp(-_PI_SQUARED / 2 / zsquared)
    sqrt3z = _SQRT3 * z
    k2extra = 0.0
    k3extra = 0.0
    for k in range(maxk, 0, -1):
        ksq = float(k * k)
        qp = math.pow(q, ksq)
        kspi = math.pi * k
        k2extra += ksq * qp
        k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp
    s2 += k2extra * (_PI_SQUARED * _SQRT2PI / (-36 * zthree))
    s3 += k3extra * (_PI_SQUARED * _SQRT2PI / (216 * zsix))
    fn = float(n)
    s1 /= math.pow(fn, 0.5)
    s2 /= math.pow(fn, 1.0)
    s3 /= math.pow(fn, 1.5)
    return s0 + s1 + s2 + s3


@numba.njit(**_JIT)
def _two_prod(a, b):
    """a*b = p + err exactly (Dekker), for floor(n*x) without rounding surprises."""
    p = a * b
    c = 134217729.0 * a
    ah = c - (c - a)
    al = a - ah
    c = 134217729.0 * b
    bh = c - (c - b)
    bl = b - bh
    err = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, err


@numba.njit(**_JIT)
def _smirnov_sf(n, x):
    """One-sided Smirnov survival function P(D+_n > x), as scipy.special.smirnov.

    Birnbaum-Tingey lower sum, every term positive, summed in linear space
    from log-space terms; the log-binomial is accumulated with compensation.
    Agrees with scipy (which works in double-double) to about 1e-13 relative.
    """
    if n == 1:
        return 1.0 - x
    if x == 0.0:
        return 1.0
    if x == 1.0:
        return 0.0
    p, err = _two_prod(float(n), x)
    fl = math.floor(p)
    alpha = (p - fl) + err
    if alpha < 0.0:
        fl -= 1.0
        alpha += 1.0
    elif alpha >= 1.0:
        fl += 1.0
        alpha -= 1.0
    nxfl = int(fl)
    if nxfl == 0 or (nxfl == 1 and alpha == 0.0):
        return 1.0 - x * math.pow(1.0 + x, float(n - 1))
    if -2.0 * n * x * x < _SMIRNOV_MINLOG:
        return 0.0
    if nxfl >= n - 1:
        return math.pow(1.0 - x, float(n))
    if n > 1000000:
        logp = -math.pow(6.0 * n * x + 1, 2.0) / 18.0 / n
        if logp < -math.log(2.0):
            return math.exp(logp)
        return 1.0 - (-math.expm1(logp))
    last = n - nxfl - (0 if alpha == 0.0 else 1)
    if alpha == 0.0:
        last -= 1
    nterms = last + 1
    vmid = n // 2
    total = 0.0
    logc = 0.0
    logc_lo = 0.0
    for v in range(nterms):
        if v > 0:
            term = math.log((n - v + 1) / v)
            t = logc + term
            if abs(logc) >= abs(term):
                logc_lo += (logc - t) + term
            else:
                logc_lo += (term - t) + logc
            logc = t
        up = ((nxfl + v) + alpha) / n  # x + v/n
        lo = ((n - v - nxfl) - alpha) / n  # 1 - x - v/n
        log_lo = math.log(lo) if lo < 0.5 else math.log1p(-up)
        aj = math.exp((logc + ((v - 1) * math.log(up) + (n - v) * log_lo)) + logc_lo)
        total += aj
        if v > 0:
            if aj != 0.0:
                if 4 * (nterms - v) * aj < _EPS * total and v != nterms - 1:
                    break
            elif v > vmid:
                break
    return _clip01(x * total)


@numba.njit(**_JIT)
def _kolmogn_sf(n, x):
    """scipy.stats._ksstats._kolmogn(n, x, cdf=False) (Simard & L'Ecuyer 2011 branches)."""
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 1.0:
        if t <= 0.5:
            return 1.0
        if n <= 140:
            prob = 1.0
            for i in range(1, n + 1):
                prob *= i * (1.0 / n) * (2 * t - 1)
        else:
            prob = math.exp(_log_nfactorial_div_n_pow_n(n) + n * math.log(2 * t - 1))
        return _clip01(1.0 - prob)
    if t >= n - 1:
        return _clip01(2 * math.pow(1.0 - x, float(n)))
    if x >= 0.5:
        return _clip01(2 * _smirnov_sf(n, x))
    nxsquared = t * x
    if n <= 140:
        if nxsquared <= 0.754693:
            return _clip01(1.0 - _kolmogn_dmtw_cdf(n, x))
        if nxsquared <= 4:
            return _clip01(1.0 - _kolmogn_pomeranz_cdf(n, x))
        return _clip01(2 * _smirnov_sf(n, x))
    if nxsquared >= 370.0:
        return 0.0
    if nxsquared >= 2.2:
        return _clip01(2 * _smirnov_sf(n, x))
    if n <= 100000 and n * math.pow(x, 1.5) <= 1.4:
        cdf = _kolmogn_dmtw_cdf(n, x)
    else:
        cdf = _kolmogn_pelzgood_cdf(n, x)
    return _clip01(1.0 - cdf)


@numba.njit(**_JIT)
def _kstwo_sf(n, x):
    """scipy.stats.kstwo.sf(x, n): support (0.5/n, 1)."""
    if x <= 0.5 / n:
        return 1.0
    if x >= 1.0:
        return 0.0
    return _kolmogn_sf(n, x)


@numba.njit(**_JIT)
def _ks_2samp_pvalue(d, n1, n2):
    """Statistic and p-value of scipy.stats.ks_2samp(method="auto", two-sided).

    Exact when max(n1, n2) <= 10000; then the statistic is rounded to the
    lattice ``h / lcm(n1, n2)`` as scipy does. Otherwise Smirnov's asymptotic
    ``kstwo.sf(d, round(n1*n2/(n1+n2)))``.
    """
    if max(n1, n2) <= KS_MAX_EXACT_N:
        g = _gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = int(np.rint(d * lcm))
        d = h * 1.0 / lcm
        if h == 0:
            return d, 1.0
        if n1 == n2:
            prob = _ks_prob_outside_square(n1, h)
        else:
            prob = _ks_outer_prob_inside(n1, n2, g, h)
        if 0.0 <= prob <= 1.0:
            return d, prob
    m = float(max(n1, n2))
    n = float(min(n1, n2))
    en = m * n / (m + n)
    return d, _clip01(_kstwo_sf(int(np.rint(en)), d))


# ---------------------------------------------------------------------------
# Cramer-von Mises two-sample
# ---------------------------------------------------------------------------


@numba.njit(**_JIT)
def _merge_add(av, af, bv, bf, shift):
    """Union of two sorted value/frequency tables (frequencies of equal values add), values + shift."""
    na = av.shape[0]
    nb = bv.shape[0]
    ov = np.empty(na + nb, dtype=np.int64)
    of = np.empty(na + nb, dtype=np.int64)
    i = 0
    j = 0
    k = 0
    while i < na or j < nb:
        if j >= nb or (i < na and av[i] < bv[j]):
            ov[k] = av[i]
            of[k] = af[i]
            i += 1
        elif i >= na or bv[j] < av[i]:
            ov[k] = bv[j]
            of[k] = bf[j]
            j += 1
        else:
            ov[k] = av[i]
            of[k] = af[i] + bf[j]
            i += 1
            j += 1
        ov[k] += shift
        k += 1
    return ov[:k].copy(), of[:k].copy()


@numba.njit(**_JIT)
def _cvm_exact_pvalue(u, m, n):
    """scipy.stats._hypotests._pval_cvm_2samp_exact (Xiao, Gordon & Yakovlev 2006)."""
    lcm = (m // _gcd(m, n)) * n
    a = lcm // m
    b = lcm // n
    mn = m * n
    zeta = float(lcm * lcm * (m + n)) * (6.0 * u - float(mn * (4 * mn - 1))) // float(6 * mn * mn)
    vals = [np.zeros(1, dtype=np.int64)]
    freqs = [np.ones(1, dtype=np.int64)]
    for _ in range(m):
        vals.append(np.zeros(0, dtype=np.int64))
        freqs.append(np.zeros(0, dtype=np.int64))
    for uu in range(n + 1):
        tv = np.zeros(0, dtype=np.int64)
        tf = np.zeros(0, dtype=np.int64)
        for v in range(m + 1):
            res = (a * v - b * uu) ** 2
            tv, tf = _merge_add(tv, tf, vals[v], freqs[v], res)
            vals[v] = tv
            freqs[v] = tf
    count = 0
    value = vals[m]
    freq = freqs[m]
    for i in range(value.shape[0]):
        if value[i] >= zeta:
            count += freq[i]
    comb = 1
    for i in range(1, m + 1):
        comb = comb * (n + i) // i
    return count / comb


@numba.njit(**_JIT)
def _exp_kv_quarter(q):
    """exp(-q) * K_{1/4}(q) = int_0^inf exp(-q (1 + cosh t)) cosh(t/4) dt.

    Trapezoid rule: the integrand is entire and decays double-exponentially,
    so the error falls like exp(-pi^2/h); the step shrinks with the width of
    the peak, ~1/sqrt(q). Agrees with scipy.special.kv to ~1e-13.
    """
    h = min(0.125, 0.5 / math.sqrt(1.0 + q))
    s = 0.5 * math.exp(-2.0 * q)
    j = 1
    while True:
        t = j * h
        f = math.exp(-q * (1.0 + math.cosh(t))) * math.cosh(0.25 * t)
        s += f
        if f <= 1e-18 * s:
            break
        j += 1
    return s * h


@numba.njit(**_JIT)
def _cdf_cvm_inf(x):
    """scipy.stats._hypotests._cdf_cvm_inf: limiting CvM cdf (Csorgo & Faraway 1996, eq. 1.2)."""
    tot = 0.0
    k = 0
    pi15 = math.pow(math.pi, 1.5)
    while True:
        u = math.exp(math.lgamma(k + 0.5) - math.lgamma(k + 1)) / (pi15 * math.sqrt(x))
        y = 4 * k + 1
        q = (y * y) / (16 * x)
        z = u * math.sqrt(y) * _exp_kv_quarter(q)
        tot += z
        if abs(z) < 1e-7:
            break
        k += 1
    return tot


@numba.njit(**_JIT)
def _cvm_from_u(u, nx, ny):
    """Statistic T and p-value of scipy.stats.cramervonmises_2samp(method="auto") from U."""
    k = nx * ny
    big_n = nx + ny
    t = u / float(k * big_n) - (4 * k - 1) / (6 * big_n)
    if max(nx, ny) <= CVM_MAX_EXACT_N:
        return t, _cvm_exact_pvalue(u, nx, ny)
    et = (1 + 1 / big_n) / 6
    fk = float(k)
    fn = float(big_n)
    vt = (fn + 1.0) * (4.0 * fk * fn - 3.0 * (float(nx) ** 2 + float(ny) ** 2) - 2.0 * fk)
    vt = vt / (45.0 * fn * fn * 4.0 * fk)
    tn = 1 / 6 + (t - et) / math.sqrt(45 * vt)
    if tn < 0.003:
        return t, 1.0
    return t, max(1.0 - _cdf_cvm_inf(tn), 0.0)


# ---------------------------------------------------------------------------
# One merge of two sorted samples: KS statistic, Wasserstein-1 and CvM's U together
# ---------------------------------------------------------------------------


@numba.njit(**_JIT)
def _sq_run(a, c):
    """sum_{t=1..a} (c - 2t)^2: a tie group's share of 4U, in closed form."""
    if a == 0:
        return 0.0
    fa = float(a)
    fc = float(c)
    return fa * fc * fc - 2.0 * fc * fa * (fa + 1.0) + 4.0 * (fa * (fa + 1.0) * (2.0 * fa + 1.0) / 6.0)


@numba.njit(**_JIT)
def _merge_walk(x, y):
    """Walk two non-empty sorted samples once; returns ``(d, w1, u)``.

    * ``d``: the two-sided KS statistic exactly as scipy forms it, the largest
      ``i/n1 - j/n2`` (or ``j/n2 - i/n1``) at the end of any tie group. The
      running extremes are tracked on the exact integers ``i*n2 - j*n1``;
      the float is formed only where one is reached (distinct integers keep
      their order after rounding while ``n1*n2 < 2e15``).
    * ``w1``: ``sum |F_x - F_y| * gap`` between consecutive distinct values;
      a gap where the ECDFs agree adds nothing even if infinite.
    * ``u``: Anderson's (1962) U with mid-ranks, each tie group in closed form.

    The merge itself is branch-free (selects, clamped loads) because the
    interleaving of two random samples defeats branch prediction; it is the
    loop-carried chain that bounds the speed.
    """
    n1 = x.shape[0]
    n2 = y.shape[0]
    inv = 1.0 / (float(n1) * float(n2))
    i = 0
    j = 0
    i0 = 0
    j0 = 0
    hi_num = 0
    lo_num = 0
    hi = 0.0
    lo = 0.0
    w = 0.0
    sx = 0.0
    sy = 0.0
    xi = x[0]
    yj = y[0]
    for _ in range(n1 + n2):
        take = (i < n1) & ((j >= n2) | (xi <= yj))
        v = xi if take else yj
        i += 1 if take else 0
        j += 0 if take else 1
        xi = x[i if i < n1 else n1 - 1]
        yj = y[j if j < n2 else n2 - 1]
        nt = (i < n1) & ((j >= n2) | (xi <= yj))
        nxt = xi if nt else yj
        if (nxt != v) | ((i == n1) & (j == n2)):  # v's tie group ends here
            num = i * n2 - j * n1
            if num >= hi_num:
                f = i / n1 - j / n2
                hi = f if (num > hi_num or f > hi) else hi
                hi_num = num
            if num <= lo_num:
                f = i / n1 - j / n2
                lo = f if (num < lo_num or f < lo) else lo
                lo_num = num
            if num != 0:
                w += abs(num) * inv * (nxt - v)
            a = i - i0
            b = j - j0
            if a + b == 1:  # no tie: rank minus position is the other sample's count
                sx += float(a * (4 * j0 * j0))
                sy += float(b * (4 * i0 * i0))
            else:
                sx += _sq_run(a, 2 * j0 + a + b + 1)
                sy += _sq_run(b, 2 * i0 + a + b + 1)
            i0 = i
            j0 = j
    d = -lo if -lo > hi else hi
    return d, w, (n1 * sx + n2 * sy) / 4.0


@numba.njit(**_JIT)
def _std(x):
    """Population standard deviation of sorted ``x`` (numpy.std, ddof=0), two-pass.

    Values are divided by the largest magnitude first when their squares would
    overflow or underflow (numpy.std returns inf there). Blocked sums with
    eight accumulators keep the rounding error near NumPy's pairwise sum.
    """
    n = x.shape[0]
    scale = max(abs(x[0]), abs(x[n - 1]))
    if scale == 0.0 or not np.isfinite(scale) or 1e-150 < scale < 1e150:
        scale = 1.0  # squares stay in range (or the column is 0 or holds inf): no rescaling
    acc = np.zeros(8)
    for i in range(n):
        acc[i & 7] += x[i] / scale
    mean = acc.sum() / n
    acc[:] = 0.0
    for i in range(n):
        d = x[i] / scale - mean
        acc[i & 7] += d * d
    return math.sqrt(acc.sum() / n) * scale


@numba.njit(**_PJIT)
def _numeric_drift(rv, ro, cv, co, want_ks, want_w, want_cvm):
    k = ro.shape[0] - 1
    ks_stat = np.full(k, np.nan)
    ks_p = np.full(k, np.nan)
    w1 = np.full(k, np.nan)
    sd = np.full(k, np.nan)
    cvm_stat = np.full(k, np.nan)
    cvm_p = np.full(k, np.nan)
    for c in numba.prange(k):
        x = rv[ro[c]:ro[c + 1]]
        y = cv[co[c]:co[c + 1]]
        n1 = x.shape[0]
        n2 = y.shape[0]
        if want_w and n1 > 0:
            sd[c] = _std(x)
        if n1 == 0 or n2 == 0:
            continue
        d, w, u = _merge_walk(x, y)
        if want_ks:
            ks_stat[c], ks_p[c] = _ks_2samp_pvalue(d, n1, n2)
        if want_w:
            w1[c] = w
        if want_cvm and n1 >= 2 and n2 >= 2:
            cvm_stat[c], cvm_p[c] = _cvm_from_u(u, n1, n2)
    return ks_stat, ks_p, w1, sd, cvm_stat, cvm_p


# The single-test kernels share one compiled parallel kernel: each parallel
# kernel costs seconds of LLVM time on a cold cache, and the merge is the
# same for all three.


def numeric_drift(rv, ro, cv, co):
    """KS, Wasserstein-1 and Cramer-von Mises per column from one merge each.

    Returns ``(ks_stat, ks_p, w1, ref_std, cvm_stat, cvm_p)``; NaN where a
    sample is empty (CvM: has fewer than 2 values).
    """
    return _numeric_drift(rv, ro, cv, co, True, True, True)


def ks_2samp(rv, ro, cv, co):
    """Two-sided two-sample KS per column of packed sorted samples -> ``(statistic, pvalue)``."""
    out = _numeric_drift(rv, ro, cv, co, True, False, False)
    return out[0], out[1]


def wasserstein(rv, ro, cv, co):
    """W1 per column and the reference's population std -> ``(w1, ref_std)``."""
    out = _numeric_drift(rv, ro, cv, co, False, True, False)
    return out[2], out[3]


def cvm_2samp(rv, ro, cv, co):
    """Two-sample Cramer-von Mises per column -> ``(statistic, pvalue)``; NaN below 2 values."""
    out = _numeric_drift(rv, ro, cv, co, False, False, True)
    return out[4], out[5]


# ---------------------------------------------------------------------------
# Quantile bins of the reference, counts of both samples
# ---------------------------------------------------------------------------


@numba.njit(**_JIT)
def _search_left(a, v):
    lo = 0
    hi = a.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(**_JIT)
def _search_right(a, v):
    lo = 0
    hi = a.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(**_JIT)
def _bin_counts(x, edges, out):
    """out[0] = #(x < e0); out[b] = #(e_{b-1} <= x < e_b); last inner bin closed; out[-1] = #(x > e_B)."""
    nb = edges.shape[0] - 1
    prev = _search_left(x, edges[0])
    out[0] = prev
    for b in range(1, nb):
        cur = _search_left(x, edges[b])
        out[b] = cur - prev
        prev = cur
    top = _search_right(x, edges[nb])
    out[nb] = top - prev
    out[nb + 1] = x.shape[0] - top


@numba.njit(**_PJIT)
def quantile_bins(rv, ro, cv, co, q):
    """Edges = numpy.quantile(finite reference, q) (linear); counts of both samples per bin.

    Returns ``(edges (k, B+1), ref_counts (k, B+2), cur_counts (k, B+2))`` with
    ``B = len(q) - 1``; bin 0 is the underflow, bin B+1 the overflow. A column
    whose reference has no finite value gets NaN edges and zero counts.
    """
    k = ro.shape[0] - 1
    ne = q.shape[0]
    edges = np.full((k, ne), np.nan)
    rc = np.zeros((k, ne + 1))
    cc = np.zeros((k, ne + 1))
    for c in numba.prange(k):
        x = rv[ro[c]:ro[c + 1]]
        y = cv[co[c]:co[c + 1]]
        lo = 0
        hi = x.shape[0]
        while lo < hi and x[lo] == -np.inf:
            lo += 1
        while hi > lo and x[hi - 1] == np.inf:
            hi -= 1
        nf = hi - lo
        if nf == 0:
            continue
        xf = x[lo:hi]
        e = edges[c]
        for b in range(ne):
            vi = (nf - 1) * q[b]
            if vi >= nf - 1:
                e[b] = xf[nf - 1]
                continue
            if vi < 0:
                e[b] = xf[0]
                continue
            prev = math.floor(vi)
            gamma = vi - prev
            ip = int(prev)
            a0 = xf[ip]
            b0 = xf[ip + 1]
            diff = b0 - a0
            if gamma >= 0.5:
                e[b] = b0 - diff * (1 - gamma)
            else:
                e[b] = a0 + diff * gamma
        tmp = np.empty(ne + 1, dtype=np.int64)
        _bin_counts(x, e, tmp)
        for b in range(ne + 1):
            rc[c, b] = tmp[b]
        _bin_counts(y, e, tmp)
        for b in range(ne + 1):
            cc[c, b] = tmp[b]
    return edges, rc, cc


# ---------------------------------------------------------------------------
# Distances between count vectors (binned numeric or categorical)
# ---------------------------------------------------------------------------


@numba.njit(**_PJIT)
def psi(rc, cc, offsets, eps):
    """Population stability index: sum (p - q) ln(p / q), proportions clipped below at ``eps``."""
    k = offsets.shape[0] - 1
    out = np.full(k, np.nan)
    for c in numba.prange(k):
        lo = offsets[c]
        n = offsets[c + 1] - lo
        sp = _pairwise_sum(rc, lo, n)
        sq = _pairwise_sum(cc, lo, n)
        if not (sp > 0 and sq > 0):
            continue
        terms = np.empty(n)
        for i in range(n):
            p = max(rc[lo + i] / sp, eps)
            q = max(cc[lo + i] / sq, eps)
            terms[i] = (p - q) * math.log(p / q)
        out[c] = _pairwise_sum(terms, 0, n)
    return out


@numba.njit(**_JIT)
def _rel_entr(x, y):
    if x > 0 and y > 0:
        return x * math.log(x / y)
    if x == 0 and y >= 0:
        return 0.0
    return np.inf


@numba.njit(**_PJIT)
def jensenshannon(rc, cc, offsets, base):
    """scipy.spatial.distance.jensenshannon(ref_counts, cur_counts, base) per column."""
    k = offsets.shape[0] - 1
    out = np.full(k, np.nan)
    logb = math.log(base)
    for c in numba.prange(k):
        lo = offsets[c]
        n = offsets[c + 1] - lo
        sp = _pairwise_sum(rc, lo, n)
        sq = _pairwise_sum(cc, lo, n)
        if not (sp > 0 and sq > 0):
            continue
        left = np.empty(n)
        right = np.empty(n)
        for i in range(n):
            p = rc[lo + i] / sp
            q = cc[lo + i] / sq
            m = (p + q) / 2.0
            left[i] = _rel_entr(p, m)
            right[i] = _rel_entr(q, m)
        js = _pairwise_sum(left, 0, n) + _pairwise_sum(right, 0, n)
        js /= logb
        out[c] = math.sqrt(js / 2.0)
    return out


@numba.njit(**_PJIT)
def hellinger(rc, cc, offsets):
    """Hellinger distance sqrt(sum (sqrt p - sqrt q)^2 / 2) of the proportions."""
    k = offsets.shape[0] - 1
    out = np.full(k, np.nan)
    for c in numba.prange(k):
        lo = offsets[c]
        n = offsets[c + 1] - lo
        sp = _pairwise_sum(rc, lo, n)
        sq = _pairwise_sum(cc, lo, n)
        if not (sp > 0 and sq > 0):
            continue
        terms = np.empty(n)
        for i in range(n):
            d = math.sqrt(rc[lo + i] / sp) - math.sqrt(cc[lo + i] / sq)
            terms[i] = d * d
        out[c] = math.sqrt(_pairwise_sum(terms, 0, n) / 2.0)
    return out


@numba.njit(**_PJIT)
def linf(rc, cc, offsets):
    """L-infinity distance max |p - q| of the proportions (TFDV's categorical drift)."""
    k = offsets.shape[0] - 1
    out = np.full(k, np.nan)
    for c in numba.prange(k):
        lo = offsets[c]
        n = offsets[c + 1] - lo
        sp = _pairwise_sum(rc, lo, n)
        sq = _pairwise_sum(cc, lo, n)
        if not (sp > 0 and sq > 0):
            continue
        best = 0.0
        for i in range(n):
            d = abs(rc[lo + i] / sp - cc[lo + i] / sq)
            if d > best:
                best = d
        out[c] = best
    return out


# ---------------------------------------------------------------------------
# Chi-square / G-test on the 2 x K table, with the chi-square survival function
# ---------------------------------------------------------------------------

_LANCZOS_G = 6.024680040776729583740234375
_LANCZOS_NUM = np.array([
    0.006061842346248906525783753964555936883222, 0.5098416655656676188125178644804694509993,
    19.51992788247617482847860966235652136208, 449.9445569063168119446858607650988409623,
    6955.999602515376140356310115515198987526, 75999.29304014542649875303443598909137092,
    601859.6171681098786670226533699352302507, 3481712.15498064590882071018964774556468,
    14605578.08768506808414169982791359218571, 43338889.32467613834773723740590533316085,
    86363131.28813859145546927288977868422342, 103794043.1163445451906271053616070238554,
    56906521.91347156388090791033559122686859])
_LANCZOS_DENOM = np.array([1.0, 66.0, 1925.0, 32670.0, 357423.0, 2637558.0, 13339535.0,
                           45995730.0, 105258076.0, 150917976.0, 120543840.0, 39916800.0, 0.0])
_IGAM_MAXITER = 2000
_IGAM_BIG = 4.503599627370496e15
_IGAM_BIGINV = 2.22044604925031308085e-16
_MAXLOG = 7.09782712893383996843e2


@numba.njit(**_JIT)
def _lanczos_sum_expg_scaled(x):
    """cephes ratevl(x, num, 12, denom, 12) on the Lanczos (N=13, g=6.0247) coefficients."""
    if abs(x) > 1:
        y = 1.0 / x
        num = _LANCZOS_NUM[12]
        den = _LANCZOS_DENOM[12]
        for i in range(11, -1, -1):
            num = num * y + _LANCZOS_NUM[i]
            den = den * y + _LANCZOS_DENOM[i]
        return num / den
    num = _LANCZOS_NUM[0]
    den = _LANCZOS_DENOM[0]
    for i in range(1, 13):
        num = num * x + _LANCZOS_NUM[i]
        den = den * x + _LANCZOS_DENOM[i]
    return num / den


@numba.njit(**_JIT)
def _log1pmx(x):
    if abs(x) < 0.5:
        xfac = x
        res = 0.0
        for n in range(2, 500):
            xfac *= -x
            term = xfac / n
            res += term
            if abs(term) < _EPS * abs(res):
                break
        return res
    return math.log1p(x) - x


@numba.njit(**_JIT)
def _igam_fac(a, x):
    """x^a e^-x / Gamma(a), as cephes igam_fac (Lanczos form near a ~ x)."""
    if abs(a - x) > 0.4 * abs(a):
        ax = a * math.log(x) - x - math.lgamma(a)
        if ax < -_MAXLOG:
            return 0.0
        return math.exp(ax)
    fac = a + _LANCZOS_G - 0.5
    res = math.sqrt(fac / math.exp(1.0)) / _lanczos_sum_expg_scaled(a)
    if a < 200 and x < 200:
        res *= math.exp(a - x) * math.pow(x / fac, a)
    else:
        num = x - a - _LANCZOS_G + 0.5
        res *= math.exp(a * _log1pmx(num / fac) + x * (0.5 - _LANCZOS_G) / fac)
    return res


@numba.njit(**_JIT)
def _igamc_cf(a, x):
    ax = _igam_fac(a, x)
    if ax == 0.0:
        return 0.0
    y = 1.0 - a
    z = x + y + 1.0
    c = 0.0
    pkm2 = 1.0
    qkm2 = x
    pkm1 = x + 1.0
    qkm1 = z * x
    ans = pkm1 / qkm1
    for _ in range(_IGAM_MAXITER):
        c += 1.0
        y += 1.0
        z += 2.0
        yc = y * c
        pk = pkm1 * z - pkm2 * yc
        qk = qkm1 * z - qkm2 * yc
        if qk != 0:
            r = pk / qk
            t = abs((ans - r) / r)
            ans = r
        else:
            t = 1.0
        pkm2 = pkm1
        pkm1 = pk
        qkm2 = qkm1
        qkm1 = qk
        if abs(pk) > _IGAM_BIG:
            pkm2 *= _IGAM_BIGINV
            pkm1 *= _IGAM_BIGINV
            qkm2 *= _IGAM_BIGINV
            qkm1 *= _IGAM_BIGINV
        if t <= _EPS:
            break
    return ans * ax


@numba.njit(**_JIT)
def _igam_series(a, x):
    ax = _igam_fac(a, x)
    if ax == 0.0:
        return 0.0
    r = a
    c = 1.0
    ans = 1.0
    for _ in range(_IGAM_MAXITER):
        r += 1.0
        c *= x / r
        ans += c
        if c <= _EPS * ans:
            break
    return ans * ax / a


@numba.njit(**_JIT)
def _igamc_series(a, x):
    fac = 1.0
    s = 0.0
    for n in range(1, _IGAM_MAXITER):
        fac *= -x / n
        term = fac / (a + n)
        s += term
        if abs(term) <= _EPS * abs(s):
            break
    logx = math.log(x)
    term = -math.expm1(a * logx - math.lgamma(1.0 + a))
    return term - math.exp(a * logx - math.lgamma(a)) * s


@numba.njit(**_JIT)
def _igamc(a, x):
    """Regularized upper incomplete gamma Q(a, x), cephes igamc's branches.

    cephes switches to Temme's uniform expansion where a ~ x and a > 20; here
    the series / continued fraction (which converge there too, in O(sqrt a)
    terms) are used instead, with the same Lanczos prefactor.
    """
    if x < 0 or a < 0:
        return np.nan
    if a == 0:
        return 0.0 if x > 0 else np.nan
    if x == 0:
        return 1.0
    if np.isinf(x):
        return 0.0
    if x > 1.1:
        if x < a:
            return 1.0 - _igam_series(a, x)
        return _igamc_cf(a, x)
    if x <= 0.5:
        if -0.4 / math.log(x) < a:
            return 1.0 - _igam_series(a, x)
        return _igamc_series(a, x)
    if x * 1.1 < a:
        return 1.0 - _igam_series(a, x)
    return _igamc_series(a, x)


@numba.njit(**_JIT)
def _chi2_sf(df, x):
    """scipy.special.chdtrc(df, x) = Q(df/2, x/2)."""
    if x < 0:
        return 1.0
    return _igamc(df / 2.0, x / 2.0)


@numba.njit(**_PJIT)
def chi2_contingency(rc, cc, offsets, log_likelihood, correction):
    """scipy.stats.chi2_contingency on each column's 2 x K table -> ``(statistic, pvalue, dof)``.

    Categories absent from both rows are dropped (scipy would reject their
    zero expected frequency). Pearson's statistic, or the G statistic with
    ``log_likelihood``; Yates' correction when ``correction`` and dof == 1.
    """
    k = offsets.shape[0] - 1
    stat = np.full(k, np.nan)
    pval = np.full(k, np.nan)
    dof = np.full(k, -1, dtype=np.int64)
    for c in numba.prange(k):
        lo = offsets[c]
        n = offsets[c + 1] - lo
        kp = 0
        for i in range(n):
            if rc[lo + i] + cc[lo + i] > 0:
                kp += 1
        obs = np.empty(2 * kp)
        t = 0
        for i in range(n):
            if rc[lo + i] + cc[lo + i] > 0:
                obs[t] = rc[lo + i]
                obs[kp + t] = cc[lo + i]
                t += 1
        r0 = _pairwise_sum(obs, 0, kp)
        r1 = _pairwise_sum(obs, kp, kp)
        if not (r0 > 0 and r1 > 0):
            continue
        total = _pairwise_sum(obs, 0, 2 * kp)
        df = kp - 1
        dof[c] = df
        if df == 0:
            stat[c] = 0.0
            pval[c] = 1.0
            continue
        terms = np.empty(2 * kp)
        for t in range(kp):
            col = obs[t] + obs[kp + t]
            for row in range(2):
                e = ((r0 if row == 0 else r1) * col) / total
                o = obs[row * kp + t]
                if df == 1 and correction:
                    diff = e - o
                    sgn = 1.0 if diff > 0 else (-1.0 if diff < 0 else 0.0)
                    o = o + min(0.5, abs(diff)) * sgn
                if log_likelihood:
                    terms[row * kp + t] = 2.0 * (o * math.log(o / e)) if o != 0 else 0.0
                else:
                    d = o - e
                    terms[row * kp + t] = d * d / e
        s = _pairwise_sum(terms, 0, 2 * kp)
        stat[c] = s
        pval[c] = _chi2_sf(float(df), s)
    return stat, pval, dof
