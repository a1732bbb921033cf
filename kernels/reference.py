"""Slow, obvious NumPy implementations: the ground truth for every kernel.

Every accelerated backend is tested against these functions. They favour
being evidently correct over being fast; none of them is used on a hot path.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .gear import GEAR

_U64 = np.uint64

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


def cdc_candidates(data: np.ndarray, mask: int) -> np.ndarray:
    """End offsets ``i + 1`` of every byte ``i`` whose window hash has ``h & mask == 0``."""
    h = gear_window_hashes(data)
    return np.flatnonzero((h & _U64(mask)) == 0).astype(np.int64) + 1


def cdc_cut_points(data: np.ndarray, min_size: int, max_size: int, mask: int) -> np.ndarray:
    """Chunk end offsets: a chunk from ``s`` ends at the first candidate in
    ``[s + min_size, s + max_size]``, else at ``s + max_size``, and never past the end."""
    n = len(data)
    cand = cdc_candidates(data, mask).tolist()
    cuts, s, j = [], 0, 0
    while s < n:
        hi = min(s + max_size, n)
        while j < len(cand) and cand[j] < s + min_size:
            j += 1
        e = cand[j] if j < len(cand) and cand[j] <= hi else hi
        cuts.append(e)
        s = e
    return np.array(cuts, dtype=np.int64)


def cdc_scan_cuts(buf, out, h, length, min_size, max_size, mask):
    """The serial chunker of DESIGN.md, byte by byte in Python integers.

    Same contract as the native ``scan_cuts`` kernels: continue the chunk in
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
# wasserstein_distance, the mid-ranks of cramervonmises_2samp); p-values are
# plain-Python ports of the scipy routines each function names, so that this
# module needs nothing but NumPy.
# ---------------------------------------------------------------------------


def drift_sort_columns(x: np.ndarray):
    """Drop NaN from every column of 2-D ``x`` and sort it: ``(values, offsets, nan_counts)``."""
    cols = [x[:, j][~np.isnan(x[:, j])] for j in range(x.shape[1])]
    nan_counts = np.array([x.shape[0] - len(c) for c in cols], dtype=np.int64)
    offsets = np.zeros(len(cols) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(c) for c in cols])
    values = np.concatenate([np.sort(c) for c in cols]) if cols else np.empty(0)
    return values.astype(np.float64), offsets, nan_counts


def drift_sort_segments(values: np.ndarray, offsets: np.ndarray) -> None:
    """Sort each packed column in place."""
    for c in range(len(offsets) - 1):
        values[offsets[c]:offsets[c + 1]] = np.sort(values[offsets[c]:offsets[c + 1]])


def _columns(rv, ro, cv, co):
    for c in range(len(ro) - 1):
        yield c, rv[ro[c]:ro[c + 1]], cv[co[c]:co[c + 1]]


# --- Kolmogorov-Smirnov ------------------------------------------------------


def ks_2samp_columns(rv, ro, cv, co):
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


def ks_2samp_pvalue(d: float, n1: int, n2: int) -> tuple[float, float]:
    """The ``method="auto"`` rule of scipy.stats.ks_2samp (two-sided).

    Exact (Hodges 1958; Viehmann 2021) when ``max(n1, n2) <= 10000``, with the
    statistic rounded to the lattice ``h / lcm(n1, n2)`` as scipy returns it;
    otherwise ``kstwo.sf(d, round(n1*n2/(n1+n2)))``.
    """
    if max(n1, n2) <= 10000:
        g = math.gcd(n1, n2)
        lcm = (n1 // g) * n2
        h = int(np.round(d * lcm))
        d = h * 1.0 / lcm
        if h == 0:
            return d, 1.0
        if n1 == n2:
            prob = _ks_prob_outside_square(n1, h)
        else:
            prob = _ks_outer_prob_inside(n1, n2, g, h)
        if 0 <= prob <= 1:
            return d, prob
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return d, float(np.clip(kstwo_sf(int(np.round(en)), d), 0, 1))


def _ks_prob_outside_square(n: int, h: int) -> float:
    """P(D_{n,n} >= h/n), scipy.stats._stats_py._compute_prob_outside_square."""
    p = 0.0
    k = n // h
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = (n - k * h - j) * p1 / (n + k * h + j + 1)
        p = p1 * (1.0 - p)
        k -= 1
    return 2 * p


def _ks_outer_prob_inside(m: int, n: int, g: int, h: int) -> float:
    """Share of lattice paths leaving |x/m - y/n| < h/lcm; scipy's _compute_outer_prob_inside_method."""
    if m < n:
        m, n = n, m
    mg, ng = m // g, n // g
    minj, maxj = 0, min(int(np.ceil(h / mg)), n + 1)
    curlen = maxj - minj
    a = np.ones(min(2 * maxj + 2, n + 1))
    a[minj:maxj] = 0.0
    for i in range(1, m + 1):
        lastminj, lastlen = minj, curlen
        minj = min(max(int(np.floor((ng * i - h) / mg)) + 1, 0), n)
        maxj = min(int(np.ceil((ng * i + h) / mg)), n + 1)
        if maxj <= minj:
            return 1.0
        val = 0.0 if minj == 0 else 1.0
        for jj in range(maxj - minj):
            j = jj + minj
            val = (a[jj + minj - lastminj] * i + val * j) / (i + j)
            a[jj] = val
        curlen = maxj - minj
        if lastlen > curlen:
            a[maxj - minj:maxj - minj + (lastlen - curlen)] = 1
    return float(a[maxj - minj - 1])


def kstwo_sf(n: int, x: float) -> float:
    """scipy.stats.kstwo.sf(x, n): the two-sided one-sample KS distribution (Simard & L'Ecuyer 2011)."""
    if x <= 0.5 / n:
        return 1.0
    if x >= 1.0:
        return 0.0
    clip = _clip01
    t = n * x
    if t <= 1.0:
        if t <= 0.5:
            return 1.0
        if n <= 140:
            prob = float(np.prod(np.arange(1, n + 1) * (1.0 / n) * (2 * t - 1)))
        else:
            rn = 1.0 / n
            logf = math.log(n) / 2 - n + math.log(2 * math.pi) / 2 + rn * np.polyval(_STIRLING, rn / n)
            prob = math.exp(logf + n * math.log(2 * t - 1))
        return clip(1.0 - prob)
    if t >= n - 1:
        return clip(2 * (1.0 - x) ** n)
    if x >= 0.5:
        return clip(2 * smirnov_sf(n, x))
    nxsquared = t * x
    if n <= 140:
        if nxsquared <= 0.754693:
            return clip(1.0 - _kolmogn_dmtw_cdf(n, x))
        if nxsquared <= 4:
            return clip(1.0 - _kolmogn_pomeranz_cdf(n, x))
        return clip(2 * smirnov_sf(n, x))
    if nxsquared >= 370.0:
        return 0.0
    if nxsquared >= 2.2:
        return clip(2 * smirnov_sf(n, x))
    if n <= 100000 and n * x ** 1.5 <= 1.4:
        return clip(1.0 - _kolmogn_dmtw_cdf(n, x))
    return clip(1.0 - _kolmogn_pelzgood_cdf(n, x))


def _clip01(p: float) -> float:
    return min(max(float(p), 0.0), 1.0)


_STIRLING = [-2.955065359477124183e-2, 6.4102564102564102564e-3, -1.9175269175269175269e-3,
             8.4175084175084175084e-4, -5.952380952380952381e-4, 7.9365079365079365079e-4,
             -2.7777777777777777778e-3, 8.3333333333333333333e-2]


def _kolmogn_dmtw_cdf(n: int, d: float) -> float:
    """Durbin's matrix method (Marsaglia, Tsang & Wang 2003), scipy's _kolmogn_DMTW."""
    if d >= 1.0:
        return 1.0
    nd = n * d
    if nd <= 0.5:
        return 0.0
    k = int(np.ceil(nd))
    h = k - nd
    m = 2 * k - 1
    hm = np.zeros([m, m])
    intm = np.arange(1, m + 1)
    v = 1.0 - h ** intm
    w = np.empty(m)
    fac = 1.0
    for j in intm:
        w[j - 1] = fac
        fac /= j
        v[j - 1] *= fac
    v[-1] = (1.0 + max(2 * h - 1.0, 0) ** m - 2 * h ** m) * fac
    for i in range(1, m):
        hm[i - 1:, i] = w[:m - i + 1]
    hm[:, 0] = v
    hm[-1, :] = np.flip(v, axis=0)
    hpwr, nn, expnt, hexpnt = np.eye(m), n, 0, 0
    while nn > 0:
        if nn % 2:
            hpwr = hpwr @ hm
            expnt += hexpnt
        hm = hm @ hm
        hexpnt *= 2
        if abs(hm[k - 1, k - 1]) > 2.0 ** 128:
            hm /= 2.0 ** 128
            hexpnt += 128
        nn //= 2
    p = float(hpwr[k - 1, k - 1])
    for i in range(1, n + 1):
        p = i * p / n
        if abs(p) < 2.0 ** -128:
            p *= 2.0 ** 128
            expnt -= 128
    return min(max(math.ldexp(p, expnt), 0.0), 1.0)


def _kolmogn_pomeranz_cdf(n: int, x: float) -> float:
    """Pomeranz's recursion (1974), scipy's _kolmogn_Pomeranz."""
    t = n * x
    ll = int(np.floor(t))
    f = 1.0 * (t - ll)
    g = min(f, 1.0 - f)
    ceilf, roundf = (1 if f > 0 else 0), (1 if f > 0.5 else 0)
    npwrs = 2 * (ll + 1)
    gpower, twogpower, onem2gpower = np.empty(npwrs), np.empty(npwrs), np.empty(npwrs)
    gpower[0] = twogpower[0] = onem2gpower[0] = 1.0
    for j in range(1, npwrs):
        gpower[j] = gpower[j - 1] * (g / n) / j
        twogpower[j] = twogpower[j - 1] * (2 * g / n) / j
        onem2gpower[j] = onem2gpower[j - 1] * ((1 - 2 * g) / n) / j

    def j1j2(i):
        if i == 0:
            j1, j2 = -ll - ceilf - 1, ll + ceilf - 1
        else:
            half, odd = divmod(i + 1, 2)
            if odd == 0:
                if half == n + 1:
                    j1, j2 = n - ll - ceilf - 1, n + ll + ceilf - 1
                else:
                    j1, j2 = half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1
            else:
                j1, j2 = half - 1 - ll - 1, half + ll + roundf - 1
        return max(j1 + 2, 0), min(j2, n)

    v0, v1 = np.zeros(npwrs), np.zeros(npwrs)
    v1[0] = 1
    v0s = v1s = expnt = 0
    j1, j2 = j1j2(0)
    for i in range(1, 2 * n + 2):
        k1 = j1
        v0, v1 = v1, v0
        v0s, v1s = v1s, v0s
        v1.fill(0.0)
        j1, j2 = j1j2(i)
        pwrs = gpower if i in (1, 2 * n + 1) else (twogpower if i % 2 else onem2gpower)
        ln2 = j2 - k1 + 1
        if ln2 > 0:
            conv = np.convolve(v0[k1 - v0s:k1 - v0s + ln2], pwrs[:ln2])
            v1[:j2 - j1 + 1] = conv[j1 - k1:j2 - k1 + 1]
            if 0 < np.max(v1) < 2.0 ** -128:
                v1 *= 2.0 ** 128
                expnt -= 128
            v1s = v0s + j1 - k1
    ans = float(v1[n - v1s])
    for j in range(1, n + 1):
        if abs(ans) > 2.0 ** 128:
            ans *= 2.0 ** -128
            expnt += 128
        ans *= j
    return min(max(math.ldexp(ans, expnt), 0.0), 1.0)


def _kolmogn_pelzgood_cdf(n: int, x: float) -> float:
    """Pelz & Good's (1976) approximation, scipy's _kolmogn_PelzGood."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    z = np.sqrt(n) * x
    z2, z3, z4, z6 = z ** 2, z ** 3, z ** 4, z ** 6
    pi2 = np.pi ** 2
    qlog = -pi2 / 8 / z2
    if qlog < -708:
        return 0.0
    q = np.exp(qlog)
    k1a, k1b = -z2, pi2 / 4
    k2a, k2b, k2c = 6 * z6 + 2 * z4, (2 * z4 - 5 * z2) * pi2 / 4, np.pi ** 4 * (1 - 2 * z2) / 16
    k3d = np.pi ** 6 * (5 - 30 * z2) / 64
    k3c = np.pi ** 4 * (-60 * z2 + 212 * z4) / 16
    k3b = pi2 * (135 * z4 - 96 * z6) / 4
    k3a = -30 * z6 - 90 * z ** 8
    ks = np.zeros(4)
    maxk = int(np.ceil(16 * z / np.pi))
    for k in range(maxk, 0, -1):
        m = 2 * k - 1
        coeffs = np.array([1.0, k1a + k1b * m ** 2, k2a + k2b * m ** 2 + k2c * m ** 4,
                           k3a + k3b * m ** 2 + k3c * m ** 4 + k3d * m ** 6])
        ks *= np.power(q, 8 * k)
        ks += coeffs
    ks *= q
    ks *= np.sqrt(2 * np.pi)
    ks /= np.array([z, 6 * z4, 72 * z ** 7, 6480 * z ** 10])
    q = np.exp(-pi2 / 2 / z2)
    kk = np.arange(maxk, 0, -1)
    qp = q ** (kk ** 2)
    ks[2] += np.sum(kk ** 2 * qp) * (pi2 * np.sqrt(2 * np.pi) / (-36 * z3))
    sqrt3z = np.sqrt(3) * z
    ks[3] += (np.sum((sqrt3z + np.pi * kk) * (sqrt3z - np.pi * kk) * kk ** 2 * qp)
              * (pi2 * np.sqrt(2 * np.pi) / (216 * z6)))
    ks /= np.power(n * 1.0, np.arange(4) / 2.0)
    return float(sum(ks))


def smirnov_sf(n: int, x: float) -> float:
    """One-sided Smirnov survival function P(D+_n > x), like scipy.special.smirnov.

    Birnbaum & Tingey's (1951) sum ``x * sum_v C(n,v) (x+v/n)^(v-1) (1-x-v/n)^(n-v)``
    over ``v <= floor(n(1-x))``, every term positive, each computed in log
    space with ``n*x`` split exactly into integer and fraction. scipy evaluates
    it in double-double; this agrees to ~1e-13 relative.
    """
    if n == 1:
        return 1.0 - x
    if x == 0.0:
        return 1.0
    if x == 1.0:
        return 0.0
    nx = Fraction(n) * Fraction(x)
    nxfl = math.floor(nx)
    alpha = float(nx - nxfl)
    if nxfl == 0 or (nxfl == 1 and alpha == 0):
        return 1.0 - x * (1.0 + x) ** (n - 1)
    if -2.0 * n * x * x < -7.08396418532264106224e2:
        return 0.0
    if nxfl >= n - 1:
        return (1.0 - x) ** n
    if n > 1000000:
        logp = -((6.0 * n * x + 1) ** 2) / 18.0 / n
        return math.exp(logp) if logp < -math.log(2) else 1.0 + math.expm1(logp)
    last = n - nxfl - (0 if alpha == 0 else 1) - (1 if alpha == 0 else 0)
    nterms = last + 1
    total = 0.0
    logc, logc_err = 0.0, 0.0  # log C(n, v) with Neumaier's compensation
    for v in range(nterms):
        if v > 0:
            term = math.log((n - v + 1) / v)
            t = logc + term
            logc_err += (logc - t) + term if abs(logc) >= abs(term) else (term - t) + logc
            logc = t
        up = ((nxfl + v) + alpha) / n  # x + v/n
        lo = ((n - v - nxfl) - alpha) / n  # 1 - x - v/n
        log_lo = math.log(lo) if lo < 0.5 else math.log1p(-up)
        aj = math.exp((logc + ((v - 1) * math.log(up) + (n - v) * log_lo)) + logc_err)
        total += aj
        if v > 0 and ((aj != 0.0 and 4 * (nterms - v) * aj < 2.220446049250313e-16 * total
                       and v != nterms - 1) or (aj == 0.0 and v > n // 2)):
            break
    return min(max(x * total, 0.0), 1.0)


# --- Wasserstein-1 -----------------------------------------------------------


def wasserstein_columns(rv, ro, cv, co):
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
        width = np.diff(pooled)
        with np.errstate(invalid="ignore"):
            w1[c] = float(np.sum(np.where(gap > 0, gap * width, 0.0)))
    return w1, sd


def _std(x: np.ndarray) -> float:
    """numpy.std(x), computed on x / max|x| when the squares would overflow or underflow."""
    scale = float(np.max(np.abs(x)))
    with np.errstate(invalid="ignore", over="ignore"):
        if 0 < scale < np.inf and not 1e-150 < scale < 1e150:
            return float(np.std(x / scale)) * scale
        return float(np.std(x))


def numeric_drift_columns(rv, ro, cv, co):
    """KS, W1, reference std and CvM together: ``(ks_stat, ks_p, w1, ref_std, cvm_stat, cvm_p)``."""
    return (*ks_2samp_columns(rv, ro, cv, co), *wasserstein_columns(rv, ro, cv, co),
            *cvm_2samp_columns(rv, ro, cv, co))


# --- Cramer-von Mises --------------------------------------------------------


def cvm_2samp_columns(rv, ro, cv, co):
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


def _cvm_exact_pvalue(u: float, m: int, n: int) -> float:
    """P(U >= u) by enumerating the lattice paths (Xiao, Gordon & Yakovlev 2006), as scipy."""
    lcm = math.lcm(m, n)
    a, b = lcm // m, lcm // n
    mn = m * n
    zeta = float(lcm ** 2 * (m + n)) * (6 * u - mn * (4 * mn - 1)) // (6 * mn ** 2)
    # gs[v]: {sum of squared deviations: number of paths} for paths ending at (v, u)
    gs = [{0: 1}] + [{} for _ in range(m)]
    for uu in range(n + 1):
        tmp: dict[int, int] = {}
        for v in range(m + 1):
            merged = dict(tmp)
            for val, freq in gs[v].items():
                merged[val] = merged.get(val, 0) + freq
            shift = (a * v - b * uu) ** 2
            tmp = {val + shift: freq for val, freq in merged.items()}
            gs[v] = tmp
    count = sum(freq for val, freq in gs[m].items() if val >= zeta)
    return count / math.comb(m + n, m)


def _exp_kv_quarter(q: float) -> float:
    """exp(-q) K_{1/4}(q) by the trapezoid rule on int_0^inf exp(-q(1 + cosh t)) cosh(t/4) dt."""
    h = min(0.125, 0.5 / math.sqrt(1.0 + q))
    s, j = 0.5 * math.exp(-2.0 * q), 1
    while True:
        f = math.exp(-q * (1.0 + math.cosh(j * h))) * math.cosh(0.25 * j * h)
        s += f
        if f <= 1e-18 * s:
            return s * h
        j += 1


def _cdf_cvm_inf(x: float) -> float:
    """Limiting CvM cdf (Csorgo & Faraway 1996, eq. 1.2), scipy's _cdf_cvm_inf term by term."""
    tot, k = 0.0, 0
    while True:
        u = math.exp(math.lgamma(k + 0.5) - math.lgamma(k + 1)) / (np.pi ** 1.5 * math.sqrt(x))
        y = 4 * k + 1
        z = u * math.sqrt(y) * _exp_kv_quarter(y ** 2 / (16 * x))
        tot += z
        if abs(z) < 1e-7:
            return tot
        k += 1


# --- Quantile bins and count distances --------------------------------------


def quantile_bin_counts(rv, ro, cv, co, q):
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


def psi_counts(rc, cc, offsets, eps):
    """Population stability index sum (p - q) ln(p / q) with p, q clipped below at ``eps``."""
    out = np.full(len(offsets) - 1, np.nan)
    for c, p, q in _proportions(rc, cc, offsets):
        p, q = np.maximum(p, eps), np.maximum(q, eps)
        out[c] = np.sum((p - q) * np.log(p / q))
    return out


def jensenshannon_counts(rc, cc, offsets, base):
    """Jensen-Shannon distance sqrt((KL(p||m) + KL(q||m)) / 2), m = (p + q)/2, in ``base``."""
    out = np.full(len(offsets) - 1, np.nan)
    for c, p, q in _proportions(rc, cc, offsets):
        m = (p + q) / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            left = np.where(p > 0, p * np.log(p / m), 0.0)
            right = np.where(q > 0, q * np.log(q / m), 0.0)
        out[c] = np.sqrt((np.sum(left) + np.sum(right)) / np.log(base) / 2.0)
    return out


def hellinger_counts(rc, cc, offsets):
    """Hellinger distance sqrt(sum (sqrt p - sqrt q)^2 / 2)."""
    out = np.full(len(offsets) - 1, np.nan)
    for c, p, q in _proportions(rc, cc, offsets):
        out[c] = np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2.0)
    return out


def linf_counts(rc, cc, offsets):
    """L-infinity distance max |p - q| (TFDV's categorical drift comparator)."""
    out = np.full(len(offsets) - 1, np.nan)
    for c, p, q in _proportions(rc, cc, offsets):
        out[c] = np.max(np.abs(p - q))
    return out


def chi2_contingency_counts(rc, cc, offsets, log_likelihood, correction):
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


def chi2_sf(df: float, x: float) -> float:
    """Chi-square survival function Q(df/2, x/2), as scipy.special.chdtrc.

    The regularized upper incomplete gamma follows cephes ``igamc``: power
    series, continued fraction and the small-x series, with the Lanczos
    prefactor near a ~ x (Maddock et al., Boost). Where cephes uses Temme's
    expansion (a > 20, a ~ x) the series / continued fraction are used instead.
    """
    if x < 0:
        return 1.0
    a, x = df / 2.0, x / 2.0
    if x == 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x > 1.1:
        return 1.0 - _igam_series(a, x) if x < a else _igamc_cf(a, x)
    if (x <= 0.5 and -0.4 / math.log(x) < a) or (x > 0.5 and x * 1.1 < a):
        return 1.0 - _igam_series(a, x)
    s, fac = 0.0, 1.0
    for n in range(1, 2000):  # DLMF 8.7.3, cephes igamc_series
        fac *= -x / n
        term = fac / (a + n)
        s += term
        if abs(term) <= 2.220446049250313e-16 * abs(s):
            break
    logx = math.log(x)
    return -math.expm1(a * logx - math.lgamma(1.0 + a)) - math.exp(a * logx - math.lgamma(a)) * s


_LANCZOS_G = 6.024680040776729583740234375
_LANCZOS_NUM = [
    0.006061842346248906525783753964555936883222, 0.5098416655656676188125178644804694509993,
    19.51992788247617482847860966235652136208, 449.9445569063168119446858607650988409623,
    6955.999602515376140356310115515198987526, 75999.29304014542649875303443598909137092,
    601859.6171681098786670226533699352302507, 3481712.15498064590882071018964774556468,
    14605578.08768506808414169982791359218571, 43338889.32467613834773723740590533316085,
    86363131.28813859145546927288977868422342, 103794043.1163445451906271053616070238554,
    56906521.91347156388090791033559122686859]
_LANCZOS_DENOM = [1, 66, 1925, 32670, 357423, 2637558, 13339535, 45995730, 105258076,
                  150917976, 120543840, 39916800, 0]


def _igam_fac(a: float, x: float) -> float:
    """x^a e^-x / Gamma(a) (cephes igam_fac)."""
    if abs(a - x) > 0.4 * abs(a):
        ax = a * math.log(x) - x - math.lgamma(a)
        return 0.0 if ax < -7.09782712893383996843e2 else math.exp(ax)
    fac = a + _LANCZOS_G - 0.5
    if abs(a) > 1:  # cephes ratevl: a polynomial in 1/a for |a| > 1
        y, num, den = 1.0 / a, _LANCZOS_NUM[::-1], _LANCZOS_DENOM[::-1]
    else:
        y, num, den = a, _LANCZOS_NUM, _LANCZOS_DENOM
    lanczos = np.polyval(num, y) / np.polyval(den, y)
    res = math.sqrt(fac / math.exp(1.0)) / lanczos
    if a < 200 and x < 200:
        return res * math.exp(a - x) * math.pow(x / fac, a)
    t = (x - a - _LANCZOS_G + 0.5) / fac
    log1pmx = math.log1p(t) - t
    if abs(t) < 0.5:
        log1pmx, xfac = 0.0, t
        for n in range(2, 500):
            xfac *= -t
            log1pmx += xfac / n
            if abs(xfac / n) < 2.220446049250313e-16 * abs(log1pmx):
                break
    return res * math.exp(a * log1pmx + x * (0.5 - _LANCZOS_G) / fac)


def _igam_series(a: float, x: float) -> float:
    ax = _igam_fac(a, x)
    if ax == 0.0:
        return 0.0
    r, c, ans = a, 1.0, 1.0
    for _ in range(2000):
        r += 1.0
        c *= x / r
        ans += c
        if c <= 2.220446049250313e-16 * ans:
            break
    return ans * ax / a


def _igamc_cf(a: float, x: float) -> float:
    ax = _igam_fac(a, x)
    if ax == 0.0:
        return 0.0
    y, c = 1.0 - a, 0.0
    z = x + y + 1.0
    pkm2, qkm2, pkm1, qkm1 = 1.0, x, x + 1.0, z * x
    ans = pkm1 / qkm1
    for _ in range(2000):
        c += 1.0
        y += 1.0
        z += 2.0
        yc = y * c
        pk, qk = pkm1 * z - pkm2 * yc, qkm1 * z - qkm2 * yc
        t = 1.0
        if qk != 0:
            r = pk / qk
            t = abs((ans - r) / r)
            ans = r
        pkm2, pkm1, qkm2, qkm1 = pkm1, pk, qkm1, qk
        if abs(pk) > 4.503599627370496e15:
            pkm2, pkm1, qkm2, qkm1 = (v * 2.22044604925031308085e-16 for v in (pkm2, pkm1, qkm2, qkm1))
        if t <= 2.220446049250313e-16:
            break
    return ans * ax
