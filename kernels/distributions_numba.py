"""Scalar distributions for drift p-values, Numba: Cramer-von Mises and chi-square.

Ports of scipy's routines (``scipy.stats.cramervonmises_2samp``'s exact and
limiting distributions, ``scipy.special.chdtrc`` through cephes ``igamc``);
each function says which one it follows. They are compiled ``nogil`` and
called once per column from the parallel kernels of ``drift_numba.py`` and
``drift_counts_numba.py``. The Kolmogorov-Smirnov distributions are in
``ks_dist_numba.py``; the plain-Python twins of both in
``reference_distributions.py``.

Also here: the small numeric helpers that those kernels and the KS
distributions share (``_pairwise_sum``, NumPy's summation order; ``_gcd``;
``_clip01``).

numba's on-disk cache (``cache=True``) is invalidated by changes to the file
that defines a function, not to the files of the functions it calls: after
editing this module, clear ``kernels/__pycache__/*.nbi`` and ``*.nbc`` (or
touch ``drift_numba.py``, ``drift_counts_numba.py`` and ``ks_dist_numba.py``),
or their kernels keep the old code.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_JIT = dict(nogil=True, cache=True)

_EPS = 2.220446049250313e-16
CVM_MAX_EXACT_N = 20


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
# Chi-square survival function: regularized upper incomplete gamma
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
