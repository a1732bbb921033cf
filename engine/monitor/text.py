"""Text features for profiles: Unicode scripts, lengths and hashed character trigrams.

Everything here works on the UTF-8 buffers of Arrow string arrays with NumPy
(no Python loop per string or per character): the bytes are decoded to code
points in bulk, each code point is mapped to a script through one lookup
table, and trigrams of consecutive code points are hashed and counted.

Scripts
-------
:data:`SCRIPTS` is a fixed list (part of profile format version 1). The table
follows the Unicode ``Scripts.txt`` assignment for the blocks listed, with two
simplifications: combining marks (``Inherited``) count as ``Common`` when they
live in the generic combining blocks (U+0300-036F, U+FE00-FE0F) and as the
script of their block otherwise (Arabic harakat are Arabic), and scripts not
in the list (Armenian, Georgian, Bengali, Tamil, ...) and private-use or
unassigned code points are ``Other``. ``Common`` holds digits, punctuation,
spaces, symbols and emoji.

Trigrams
--------
Trigram ``(c0, c1, c2)`` of three consecutive code points inside one string
(no padding, no case folding) goes to bucket
``splitmix64(c0 << 42 | c1 << 21 | c2) % n_buckets``, where ``splitmix64`` is
the finalizer of Steele, Lea & Flood's SplitMix64 generator (2014) applied to
``key + 0x9E3779B97F4A7C15``. The hash is fixed (never Python's salted
``hash``), so counts from different processes and versions are comparable.

Examples
--------
>>> import pyarrow as pa
>>> f = text_features(pa.array(["Привет, мир!", "hola"]), n_buckets=64)
>>> int(f.scripts[SCRIPTS.index("Cyrillic")]), int(f.scripts[SCRIPTS.index("Latin")])
(9, 4)
>>> f.lengths.tolist()
[12, 4]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..kernels.reference_guard import decode_utf8, splitmix64, trigram_hash
from ..store.arrow_build import numpy_from_array

SCRIPTS = ("Latin", "Cyrillic", "Greek", "Arabic", "Hebrew", "Devanagari", "Thai", "Hangul",
           "Hiragana", "Katakana", "Han", "Common", "Other")
_S = {name: i for i, name in enumerate(SCRIPTS)}
MAX_CODEPOINT = 0x10FFFF
# Decoding works on slices of at most this many UTF-8 bytes, which bounds the
# temporaries (about 40 bytes per character) whatever the column's size.
CHUNK_BYTES = 8 << 20

# (first, last) code point ranges, inclusive; later entries override earlier ones.
_RANGES: dict[str, list[tuple[int, int]]] = {
    "Common": [
        (0x0000, 0x0040), (0x005B, 0x0060), (0x007B, 0x00BF), (0x00D7, 0x00D7), (0x00F7, 0x00F7),
        (0x02B9, 0x02DF), (0x02E5, 0x036F), (0x0374, 0x0374), (0x037E, 0x037E),
        (0x0385, 0x0385), (0x0387, 0x0387), (0x0605, 0x0605), (0x060C, 0x060C),
        (0x061B, 0x061B), (0x061F, 0x061F), (0x0640, 0x0640), (0x06DD, 0x06DD),
        (0x0964, 0x0965), (0x0E3F, 0x0E3F), (0x2000, 0x2BFF), (0x2E00, 0x2E7F),
        (0x3000, 0x303F), (0x3099, 0x309C), (0x30A0, 0x30A0), (0x30FB, 0x30FC),
        (0x3190, 0x319F), (0x31C0, 0x31EF), (0x3220, 0x325F), (0x327F, 0x32CF),
        (0x3358, 0x33FF), (0x4DC0, 0x4DFF), (0xA700, 0xA721), (0xA788, 0xA78A),
        (0xFE00, 0xFE0F), (0xFE10, 0xFE1F), (0xFE20, 0xFE2F), (0xFE30, 0xFE6F),
        (0xFEFF, 0xFEFF), (0xFF01, 0xFF20), (0xFF3B, 0xFF40), (0xFF5B, 0xFF65),
        (0xFF70, 0xFF70), (0xFF9E, 0xFF9F), (0xFFE0, 0xFFEF), (0xFFF9, 0xFFFD),
        (0x1D000, 0x1D24F), (0x1D400, 0x1D7FF), (0x1F000, 0x1FBFF), (0xE0000, 0xE01EF),
    ],
    "Latin": [
        (0x0041, 0x005A), (0x0061, 0x007A), (0x00AA, 0x00AA), (0x00BA, 0x00BA),
        (0x00C0, 0x00D6), (0x00D8, 0x00F6), (0x00F8, 0x02B8), (0x02E0, 0x02E4),
        (0x1D00, 0x1D25), (0x1D2C, 0x1D5C), (0x1D62, 0x1D65), (0x1D6B, 0x1D77),
        (0x1D79, 0x1DBE), (0x1E00, 0x1EFF), (0x2071, 0x2071), (0x207F, 0x207F),
        (0x2090, 0x209C), (0x212A, 0x212B), (0x2132, 0x2132), (0x214E, 0x214E),
        (0x2160, 0x2188), (0x2C60, 0x2C7F), (0xA722, 0xA787), (0xA78B, 0xA7FF),
        (0xAB30, 0xAB5A), (0xAB5C, 0xAB64), (0xAB66, 0xAB69), (0xFB00, 0xFB06),
        (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0x10780, 0x107BA), (0x1DF00, 0x1DF2A),
    ],
    "Greek": [
        (0x0370, 0x0373), (0x0375, 0x0377), (0x037A, 0x037D), (0x037F, 0x037F),
        (0x0384, 0x0384), (0x0386, 0x0386), (0x0388, 0x03E1), (0x03F0, 0x03FF),
        (0x1D26, 0x1D2A), (0x1D5D, 0x1D61), (0x1D66, 0x1D6A), (0x1DBF, 0x1DBF),
        (0x1F00, 0x1FFE), (0x2126, 0x2126), (0xAB65, 0xAB65), (0x10140, 0x1018E),
        (0x1D200, 0x1D245),
    ],
    "Cyrillic": [
        (0x0400, 0x052F), (0x1C80, 0x1C8F), (0x1D2B, 0x1D2B), (0x1D78, 0x1D78),
        (0x2DE0, 0x2DFF), (0xA640, 0xA69F), (0xFE2E, 0xFE2F), (0x1E030, 0x1E08F),
    ],
    "Hebrew": [(0x0591, 0x05C7), (0x05D0, 0x05EA), (0x05EF, 0x05F4), (0xFB1D, 0xFB4F)],
    "Arabic": [
        (0x0600, 0x0604), (0x0606, 0x060B), (0x060D, 0x061A), (0x061C, 0x061E),
        (0x0620, 0x063F), (0x0641, 0x06DC), (0x06DE, 0x06FF), (0x0750, 0x077F),
        (0x0870, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFE), (0x10E60, 0x10E7E),
        (0x1EE00, 0x1EEFF),
    ],
    "Devanagari": [(0x0900, 0x0963), (0x0966, 0x097F), (0xA8E0, 0xA8FF), (0x11B00, 0x11B09)],
    "Thai": [(0x0E01, 0x0E3A), (0x0E40, 0x0E5B)],
    "Hangul": [
        (0x1100, 0x11FF), (0x302E, 0x302F), (0x3131, 0x318E), (0x3200, 0x321E),
        (0x3260, 0x327E), (0xA960, 0xA97C), (0xAC00, 0xD7A3), (0xD7B0, 0xD7C6),
        (0xD7CB, 0xD7FB), (0xFFA0, 0xFFBE), (0xFFC2, 0xFFC7), (0xFFCA, 0xFFCF),
        (0xFFD2, 0xFFD7), (0xFFDA, 0xFFDC),
    ],
    "Hiragana": [(0x3041, 0x3096), (0x309D, 0x309F), (0x1B001, 0x1B11F), (0x1B132, 0x1B132),
                 (0x1B150, 0x1B152), (0x1F200, 0x1F200)],
    "Katakana": [
        (0x30A1, 0x30FA), (0x30FD, 0x30FF), (0x31F0, 0x31FF), (0x32D0, 0x32FE),
        (0x3300, 0x3357), (0xFF66, 0xFF6F), (0xFF71, 0xFF9D), (0x1AFF0, 0x1AFFE),
        (0x1B000, 0x1B000), (0x1B120, 0x1B122), (0x1B155, 0x1B155), (0x1B164, 0x1B167),
    ],
    "Han": [
        (0x2E80, 0x2E99), (0x2E9B, 0x2EF3), (0x2F00, 0x2FD5), (0x3005, 0x3005),
        (0x3007, 0x3007), (0x3021, 0x3029), (0x3038, 0x303B), (0x3400, 0x4DBF),
        (0x4E00, 0x9FFF), (0xF900, 0xFA6D), (0xFA70, 0xFAD9), (0x16FF0, 0x16FF1),
        (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF), (0x2F800, 0x2FA1F), (0x30000, 0x323AF),
    ],
}


@lru_cache(maxsize=1)
def script_table() -> np.ndarray:
    """Script index (into :data:`SCRIPTS`) of every code point, plus one ``Other`` entry past the end.

    A read-only uint8 array of ``0x110001`` entries (1.1 MB), built once.
    """
    table = np.full(MAX_CODEPOINT + 2, _S["Other"], dtype=np.uint8)
    for name, ranges in _RANGES.items():
        for lo, hi in ranges:
            table[lo:hi + 1] = _S[name]
    table.flags.writeable = False
    return table


def script_of(codepoints) -> np.ndarray:
    """Script index (into :data:`SCRIPTS`) of each code point; out-of-range values are ``Other``.

    Examples
    --------
    >>> [SCRIPTS[i] for i in script_of([ord("ж"), ord("a"), ord("字"), ord("7")])]
    ['Cyrillic', 'Latin', 'Han', 'Common']
    """
    cp = np.asarray(codepoints)
    if cp.dtype.kind == "u":
        idx = np.minimum(cp, MAX_CODEPOINT + 1)
    elif cp.dtype.kind == "i":
        idx = np.where((cp < 0) | (cp > MAX_CODEPOINT), MAX_CODEPOINT + 1, cp)
    else:
        raise TypeError(f"codepoints must be integers, got dtype {cp.dtype}")
    return script_table()[idx]


def trigram_counts(codepoints, char_offsets, n_buckets: int) -> np.ndarray:
    """Counts of hashed trigrams inside each string ``codepoints[char_offsets[i]:char_offsets[i+1]]``."""
    cp = np.asarray(codepoints, dtype=np.uint32)
    out = np.zeros(n_buckets, dtype=np.int64)
    n = cp.shape[0]
    if n < 3:
        return out
    valid = np.ones(n - 2, dtype=bool)
    starts = np.asarray(char_offsets[:-1], dtype=np.int64)
    ends = np.asarray(char_offsets[1:], dtype=np.int64)
    # position i starts a trigram iff i + 2 lies in i's string: the last two positions don't
    for d in (1, 2):
        i = ends - d
        i = i[(i >= starts) & (i < n - 2)]
        valid[i] = False
    h = trigram_hash(cp[:-2][valid], cp[1:-1][valid], cp[2:][valid])
    if n_buckets & (n_buckets - 1) == 0:  # a power of two: the mask is the modulo, and cheaper
        h &= np.uint64(n_buckets - 1)
    else:
        h %= np.uint64(n_buckets)
    out += np.bincount(h.astype(np.intp), minlength=n_buckets)
    return out


@dataclass
class TextFeatures:
    """Features of the non-null values of one string column.

    Attributes
    ----------
    nulls : int
        Null values (not counted anywhere else).
    lengths : ndarray of int64
        Length of each non-null value, in code points.
    scripts : ndarray of int64, shape (len(SCRIPTS),)
        Characters (code points) per script.
    script_values : ndarray of int64, shape (len(SCRIPTS),)
        Values holding at least one character of each script.
    trigrams : ndarray of int64, shape (n_buckets,)
        Hashed character-trigram counts.
    """

    nulls: int
    lengths: np.ndarray
    scripts: np.ndarray
    script_values: np.ndarray
    trigrams: np.ndarray


def _string_chunks(arr):
    """Non-null string arrays (``string`` or ``large_string``) of a column, in order."""
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    for c in chunks:
        if pa.types.is_dictionary(c.type):
            c = c.dictionary_decode()
        if not (pa.types.is_string(c.type) or pa.types.is_large_string(c.type)):
            c = c.cast(pa.large_string())  # string_view and friends
        if c.null_count:
            c = c.drop_null()
        if len(c):
            yield c


def _offsets_and_data(c) -> tuple[np.ndarray, np.ndarray]:
    bufs = c.buffers()
    odt = np.int64 if pa.types.is_large_string(c.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=odt, count=len(c) + 1, offset=c.offset * odt().itemsize)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets.astype(np.int64), data


def _codepoints(data: np.ndarray, n_chars: int) -> np.ndarray:
    """Code points of valid UTF-8 ``data`` through Python's codecs (C loops, ~4x the NumPy
    decoder); the NumPy decoder where the bytes are not valid UTF-8."""
    try:
        cp = np.frombuffer(data.tobytes().decode("utf-8").encode("utf-32-le"), dtype=np.uint32)
    except UnicodeDecodeError:
        cp = None
    if cp is None or len(cp) != n_chars:
        cp = decode_utf8(data)[0]
    return cp


def text_features(arr, n_buckets: int = 4096) -> TextFeatures:
    """Lengths, script counts and trigram counts of an Arrow string array (or chunked array).

    Parameters
    ----------
    arr : pyarrow.Array or pyarrow.ChunkedArray
        ``string``, ``large_string``, ``string_view`` or a dictionary of strings.
    n_buckets : int
        Number of trigram hash buckets.
    """
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    nulls = int(arr.null_count)
    ns = len(SCRIPTS)
    scripts = np.zeros(ns, np.int64)
    script_values = np.zeros(ns, np.int64)
    trigrams = np.zeros(n_buckets, np.int64)
    lengths: list[np.ndarray] = []
    for c in _string_chunks(arr):
        offsets, data = _offsets_and_data(c)
        chars = numpy_from_array(pc.utf8_length(c), np.int64)
        n = len(offsets) - 1
        lo = 0
        while lo < n:  # slices of about CHUNK_BYTES bytes (at least one string)
            hi = int(np.searchsorted(offsets, offsets[lo] + CHUNK_BYTES, side="right")) - 1
            hi = min(max(hi, lo + 1), n)
            o = offsets[lo:hi + 1]
            lens = chars[lo:hi]
            lo = hi
            char_off = np.concatenate([[0], np.cumsum(lens)])
            cp = _codepoints(data[o[0]:o[-1]], int(char_off[-1]))
            lengths.append(lens)
            sid = script_of(cp)
            scripts += np.bincount(sid, minlength=ns)
            owner = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
            seen = np.zeros(len(lens) * ns, dtype=bool)
            seen[owner * ns + sid] = True
            script_values += seen.reshape(len(lens), ns).sum(axis=0)
            trigrams += trigram_counts(cp, char_off, n_buckets)
    all_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    return TextFeatures(nulls, all_lengths, scripts, script_values, trigrams)


__all__ = [
    "SCRIPTS",
    "TextFeatures",
    "decode_utf8",
    "script_of",
    "script_table",
    "splitmix64",
    "text_features",
    "trigram_counts",
    "trigram_hash",
]
