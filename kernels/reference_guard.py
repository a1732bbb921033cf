"""Plain NumPy references of the guard's batch kernels (the ground truth for ``guard_numba``).

Codes (uint8, one per value), shared by every backend:

* ``guard_range``: 0 inside ``[lo, hi]``, 1 below ``lo``, 2 above ``hi``, 3 NaN when
  ``nan_ok`` is false (NaN is 0 when it is true). Comparisons are IEEE: ``-0.0 == 0.0``,
  ``inf`` is above any finite ``hi`` and inside ``[lo, inf]``.
* ``guard_category``: 0 a seen category (``seen[index]``), 1 an unseen one, 3 a null
  (``index < 0``) when ``null_ok`` is false (0 when it is true).
* ``guard_text``: per string of a UTF-8 buffer, three outputs: ``unseen`` (uint8, 1 when
  a character's code point is not allowed by ``char_ok``), ``sums`` (float64, the sum of
  ``scores[bucket]`` over the string's character trigrams, in order) and ``ntri``
  (int64, its trigram count, ``max(characters - 2, 0)``).

Text
----
Characters are decoded as :func:`decode_utf8` decodes them: every byte that is not
a continuation byte (``10xxxxxx``) starts one character, which reads as many
following bytes as its lead byte announces, zeros past the end of the buffer. A
character belongs to the string its first byte lies in. Its code point ``c``
looks up ``char_ok[min(c, len(char_ok) - 1)]`` (the last entry stands for every
code point past the table). Trigram ``(c0, c1, c2)`` of consecutive characters of
one string goes to bucket ``trigram_hash(c0, c1, c2) % len(scores)``: the
SplitMix64 finalizer (Steele, Lea & Flood, 2014) of ``c0 << 42 | c1 << 21 | c2``.
For valid UTF-8 (every Arrow string) this is ordinary decoding; for other bytes
it is defined and never raises. Profiles count trigrams with the same hash
(``engine.monitor.text``), so scores computed here match the profile's buckets.
"""

from __future__ import annotations

import numpy as np


def guard_range(x: np.ndarray, lo: float, hi: float, nan_ok: bool) -> np.ndarray:
    """Range and NaN codes of ``x`` (see the module docstring).

    Examples
    --------
    >>> guard_range(np.array([0.0, -1.0, 5.0, np.nan]), 0.0, 1.0, False).tolist()
    [0, 1, 2, 3]
    """
    x = np.asarray(x)
    out = np.zeros(len(x), dtype=np.uint8)
    out[x < lo] = 1
    out[x > hi] = 2
    if not nan_ok:
        out[np.isnan(x)] = 3
    return out


def guard_category(indices: np.ndarray, seen: np.ndarray, null_ok: bool) -> np.ndarray:
    """Category codes of dictionary ``indices`` (``-1``: null) given ``seen`` per dictionary entry.

    Examples
    --------
    >>> guard_category(np.array([0, 1, -1]), np.array([True, False]), False).tolist()
    [0, 1, 3]
    """
    idx = np.asarray(indices)
    out = np.zeros(len(idx), dtype=np.uint8)
    valid = idx >= 0
    out[valid] = np.where(np.asarray(seen, dtype=bool)[idx[valid]], 0, 1)
    if not null_ok:
        out[~valid] = 3
    return out


_LEAD_MASK = np.array([0x7F, 0x1F, 0x0F, 0x07], dtype=np.uint8)


def decode_utf8(data) -> tuple[np.ndarray, np.ndarray]:
    """Code points of UTF-8 bytes, and a mask of the bytes that start a character.

    Returns ``(codepoints, starts)``: ``codepoints`` (uint32, one per
    character) and ``starts`` (bool, one per byte). Malformed input is not
    rejected (Arrow strings are valid UTF-8): a stray byte decodes to some code
    point, possibly past U+10FFFF, never to an error.
    """
    b = np.asarray(data, dtype=np.uint8)
    starts = (b & 0xC0) != 0x80
    if b.size == 0 or int(b.max()) < 0x80:
        return b.astype(np.uint32), starts
    pos = np.flatnonzero(starts)
    padded = np.concatenate([b, np.zeros(3, np.uint8)])  # continuation reads never run past the end
    b0 = padded[pos]
    # bytes in the character: 1 + (lead >= 0xC0) + (lead >= 0xE0) + (lead >= 0xF0)
    more = (b0 >= 0xC0).view(np.uint8) + (b0 >= 0xE0).view(np.uint8) + (b0 >= 0xF0).view(np.uint8)
    cp = (b0 & _LEAD_MASK[more]).astype(np.uint32)
    for k in (1, 2, 3):
        ck = (padded[pos + k] & 0x3F).astype(np.uint32)
        cp = np.where(more >= k, (cp << 6) | ck, cp)
    return cp, starts


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x) -> np.ndarray:
    """SplitMix64 output for state ``x`` (uint64, wrapping arithmetic): ``mix(x + golden)``.

    Examples
    --------
    >>> hex(int(splitmix64(np.array([0], dtype=np.uint64))[0]))
    '0xe220a8397b1dcdaf'
    """
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN  # a new array: updated in place below
    t = np.empty_like(z)
    for shift, mult in ((30, _M1), (27, _M2), (31, None)):
        np.right_shift(z, np.uint64(shift), out=t)
        z ^= t
        if mult is not None:
            z *= mult
    return z


def trigram_hash(c0, c1, c2) -> np.ndarray:
    """Deterministic 64-bit hash of code point trigrams (see the module docstring)."""
    key = np.asarray(c0, dtype=np.uint64) << np.uint64(42)
    key |= np.asarray(c1, dtype=np.uint64) << np.uint64(21)
    key |= np.asarray(c2, dtype=np.uint64)
    return splitmix64(key)


def guard_text(data: np.ndarray, offsets: np.ndarray, char_ok: np.ndarray,
               scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(unseen, sums, ntri)`` of the strings ``data[offsets[i]:offsets[i + 1]]``.

    See the module docstring. ``offsets`` must be non-decreasing and inside ``data``.

    Examples
    --------
    >>> ok = np.zeros(0x110002, bool); ok[:0x80] = True      # ASCII only
    >>> data = np.frombuffer("holaж".encode(), np.uint8)
    >>> unseen, sums, ntri = guard_text(data, np.array([0, 4, 6]), ok, np.ones(8))
    >>> unseen.tolist(), sums.tolist(), ntri.tolist()
    ([0, 1], [2.0, 0.0], [2, 0])
    """
    data = np.asarray(data, dtype=np.uint8)
    offsets = np.asarray(offsets, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    n = max(len(offsets) - 1, 0)
    unseen = np.zeros(n, dtype=np.uint8)
    sums = np.zeros(n, dtype=np.float64)
    if n == 0:
        return unseen, sums, np.zeros(0, dtype=np.int64)
    cp, starts = decode_utf8(data)
    pos = np.flatnonzero(starts)
    keep = (pos >= offsets[0]) & (pos < offsets[-1])
    cp, pos = cp[keep], pos[keep]
    owner = np.searchsorted(offsets, pos, side="right") - 1
    ok = np.asarray(char_ok, dtype=bool)[np.minimum(cp, len(char_ok) - 1)]
    unseen[owner[~ok]] = 1
    ntri = np.maximum(np.bincount(owner, minlength=n) - 2, 0).astype(np.int64)
    if len(cp) >= 3:
        t = np.flatnonzero(owner[:-2] == owner[2:])
        h = trigram_hash(cp[t], cp[t + 1], cp[t + 2]) % np.uint64(len(scores))
        sums = np.bincount(owner[t], weights=scores[h.astype(np.intp)], minlength=n)
    return unseen, sums, ntri
