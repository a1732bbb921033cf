"""Kolmogorov-Smirnov distributions, Numba: the two-sample p-value and kstwo's survival function.

``_ks_2samp_pvalue`` is the ``method="auto"`` rule of ``scipy.stats.ks_2samp``
(two-sided): the exact lattice-path probability (Hodges 1958; Viehmann 2021)
up to 10,000 values per sample, else ``scipy.stats.kstwo.sf``, which
``_kstwo_sf`` follows branch for branch (Simard & L'Ecuyer 2011: Durbin's
matrix, Pomeranz's recursion, Pelz-Good, Smirnov's one-sided tail). Each
function says which scipy routine it ports; the plain-Python twins are in
``reference_distributions.py``. Called once per column from the parallel
kernels of ``drift_numba.py``.

numba's on-disk cache is invalidated only by changes to the file that defines
a function: after editing this module, clear ``kernels/__pycache__/*.nbi``
and ``*.nbc`` (or touch ``drift_numba.py``) so that the column kernels that
call it are recompiled.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .distributions_numba import _EPS, _clip01, _gcd

_JIT = dict(nogil=True, cache=True)

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
