"""Reference profiles of tabular data: one vectorized pass, exact merges, a versioned format.

:func:`profile` summarizes every column of a table in a :class:`Profile`. The
parts that add up (counts, moments, histograms, value counts, script and
trigram counts) merge exactly, so profiles of batches, or of the shards of an
MPI job, combine into the profile of all the data; the bounded sample merges
into a sample that is still uniform.

Columns and their kinds
-----------------------
``numeric`` (:class:`NumericColumn`)
    Integers, floats and decimals. ``count`` is the number of values that are
    neither null nor NaN (finite values plus infinities); ``nulls``, ``nans``,
    ``posinf``, ``neginf`` count the rest. ``min``, ``max``, ``mean`` and
    ``m2`` (sum of squared deviations) are over the finite values only, so
    they stay finite. ``edges`` are the ``bins + 1`` quantiles (NumPy's
    ``linear`` method) of the finite values, ``hist`` the counts of the
    ``bins + 2`` bins of :func:`engine.kernels.drift.histogram_columns`:
    below ``edges[0]``, ``[e_{b-1}, e_b)`` (the last one closed) and above
    ``edges[-1]``. ``sample`` is a uniform sample of at most ``sample_size``
    of the counted values, sorted ascending (all of them when ``count <=
    sample_size``, which keeps drift tests of small references exact).
``categorical`` (:class:`CategoricalColumn`)
    Booleans (as ``"true"``/``"false"``), dictionary (pandas ``category``)
    columns of non-strings, all-null columns, and short or low-cardinality
    strings. Values are counted as strings (Arrow's cast: ``1``, ``1.5``).
``text`` (:class:`TextColumn`)
    Longer, high-cardinality strings: length statistics, characters per
    Unicode script and hashed character-trigram counts (see
    :mod:`engine.monitor.text`).
``invalid`` (:class:`InvalidColumn`)
    A column that cannot be profiled as asked (a string column declared
    numeric that holds ``"abc"``; a timestamp, binary or nested column) gets a
    ``reason`` instead of an exception, so that a report can show "not
    tested" for it and still cover the others.

Type inference for strings: categorical when the number of distinct values is
at most ``max(50, 1% of the non-null values)``; otherwise text when the mean
length is at least 20 characters or more than half of the values contain
whitespace; otherwise (IDs, codes, names) categorical. ``types=`` overrides
the inference per column. A profile built with ``edges_from=`` takes the kind
of the reference's column where the column's type allows it (a string column
follows the reference's choice between categorical and text; an all-null
column takes any kind), so that a batch is comparable to its reference; a
string column whose reference is numeric (or the reverse) keeps its own kind,
and the kind mismatch shows the change of type.

Merge rules
-----------
``a.merge(b)`` needs the same columns with the same kinds (order from ``a``).

* numeric: counts add, min/max combine, mean and ``m2`` combine with Chan et
  al.'s pairwise formula (Chan, Golub & LeVeque 1979); histograms add and
  need identical ``edges`` (profile batches with ``edges_from=reference``);
  samples merge by random key: every counted value gets an independent
  uniform 64-bit key and a sample keeps the ``sample_size`` values with the
  smallest keys, so the union of two samples cut to the smallest keys is a
  uniform sample of the union (a bottom-k sketch).
* categorical: a column keeps exact counts of all its values while it has at
  most ``10 * top_k`` distinct values; past that it keeps the ``top_k`` most
  frequent (ties by value) and adds the rest to ``other``
  (``truncated=True``). Merging adds counts and applies the same rule, so the
  merge of two untruncated profiles equals the profile of the concatenated
  data. Once truncated, counts of kept values are lower bounds and
  ``n_distinct`` is a lower bound.
* text: counts add, length moments as for numeric columns.

Keys for the sample come from a generator seeded by ``seed``, the column
name and a fingerprint of the column's values (and the MPI rank), so that
separately profiled batches draw independent keys while a profile stays
reproducible. Merging a profile with itself reuses the same keys (the sample
then holds pairs of equal values); give each batch its own data, or seed.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(1000, 2))
>>> p = profile(x[:600], columns=["a", "b"]).merge(
...     profile(x[600:], columns=["a", "b"], edges_from=profile(x[:600], columns=["a", "b"])))
>>> p.n_rows, p["a"].count, bool(abs(p["a"].mean - x[:, 0].mean()) < 1e-12)
(1000, 1000, True)
"""

from __future__ import annotations

import json
import math
import operator
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.kernels import drift as _drift

from . import text as _text

FORMAT = "mlops-engine profile"
KINDS = ("numeric", "categorical", "text")
# A categorical column keeps exact counts up to this many times top_k distinct values.
CATEGORY_CAP_FACTOR = 10
INFER_MIN_DISTINCT = 50
INFER_DISTINCT_RATIO = 0.01
INFER_TEXT_MIN_LENGTH = 20
# float64 copies of numeric columns are made this many bytes at a time, so the
# temporaries stay small next to the input (a 1e6 x 1000 float32 table is 4 GB).
BLOCK_BYTES = 32 << 20
# MPI messages carry at most about this many bytes of samples and trigram counts.
MPI_MESSAGE_BYTES = 256 << 20
_TAG = 7411


def _json_float(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _float(x) -> float:
    return math.nan if x is None else float(x)


def _merge_moments(na, ma, m2a, nb, mb, m2b):
    """Chan et al. (1979): count, mean and sum of squared deviations of the union."""
    if nb == 0:
        return na, ma, m2a
    if na == 0:
        return nb, mb, m2b
    n = na + nb
    d = mb - ma
    return n, ma + d * (nb / n), m2a + m2b + d * d * (na * nb / n)


def _moments(x: np.ndarray) -> tuple[float, float]:
    """Mean and sum of squared deviations (two passes, pairwise sums)."""
    if len(x) == 0:
        return math.nan, 0.0
    mean = float(np.sum(x) / len(x))
    d = x - mean
    return mean, float(np.dot(d, d))


def _nan_extreme(f, a, b):
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return f(a, b)


def _check_same(a, b):
    if a.kind != b.kind:
        raise ValueError(f"column {a.name!r}: cannot merge a {a.kind} column with a {b.kind} column")
    if a.name != b.name:
        raise ValueError(f"cannot merge column {a.name!r} with column {b.name!r}")


# ---------------------------------------------------------------------------
# Numeric columns
# ---------------------------------------------------------------------------


def quantile_edges(sorted_finite: np.ndarray, bins: int) -> np.ndarray:
    """``numpy.quantile(x, linspace(0, 1, bins + 1))`` of sorted finite ``x``, without a partition.

    The same arithmetic as NumPy's ``linear`` method (and the drift kernels):
    index ``(n - 1) q``, then ``a + (b - a) g`` or, for ``g >= 0.5``,
    ``b - (b - a)(1 - g)``. NaN edges when ``x`` is empty.
    """
    n = len(sorted_finite)
    if n == 0:
        return np.full(bins + 1, np.nan)
    q = np.linspace(0.0, 1.0, bins + 1)
    vi = (n - 1) * q
    prev = np.floor(vi)
    gamma = vi - prev
    ip = prev.astype(np.intp)
    a = sorted_finite[ip]
    b = sorted_finite[np.minimum(ip + 1, n - 1)]
    diff = b - a
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


def _hist_sorted(sv: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin counts of sorted NaN-free ``sv`` (bin layout of the drift kernels)."""
    nb = len(edges) + 1
    if not np.isfinite(edges[0]):
        return np.zeros(nb, np.int64)
    below = np.searchsorted(sv, edges, side="left")
    top = np.searchsorted(sv, edges[-1], side="right")
    out = np.empty(nb, np.int64)
    out[0] = below[0]
    out[1:-1] = np.diff(below)
    out[-2] = top - below[-2]  # the last inner bin is closed: it takes values equal to edges[-1]
    out[-1] = len(sv) - top
    return out


def _hist_unsorted(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin counts of float64 ``x`` (NaN ignored), same bins as :func:`_hist_sorted`."""
    nb = len(edges) + 1
    if not np.isfinite(edges[0]):
        return np.zeros(nb, np.int64)
    x = x[~np.isnan(x)]
    idx = np.searchsorted(edges, x, side="right")
    idx[x == edges[-1]] = len(edges) - 1
    return np.bincount(idx, minlength=nb).astype(np.int64)


def _smallest(keys: np.ndarray, s: int) -> np.ndarray:
    """Positions of the ``s`` smallest keys (any order).

    Keys are uniform, so the ``s``-th smallest lies near ``s/n`` of the range:
    a threshold a few standard deviations above it leaves a small candidate set
    for ``argpartition``, much cheaper than partitioning all ``n`` keys.
    """
    n = len(keys)
    if s <= 0:
        return np.zeros(0, np.intp)
    if s >= n:
        return np.arange(n)
    p = s / n
    thr = (p + 6.0 * math.sqrt(p * (1 - p) / n) + 8.0 / n) * 2.0**64
    if thr < 2.0**63:
        cand = np.flatnonzero(keys < np.uint64(int(thr)))
        if len(cand) >= s:
            return cand if len(cand) == s else cand[np.argpartition(keys[cand], s - 1)[:s]]
    return np.argpartition(keys, s - 1)[:s]


def _sort_ties(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Keys reordered so that runs of equal values list their keys ascending (a canonical order)."""
    if len(values) < 2:
        return keys
    new = values[1:] != values[:-1]
    if new.all():
        return keys
    tied = np.zeros(len(values), dtype=bool)  # members of runs of two or more
    tied[:-1] = ~new
    tied[1:] |= ~new
    idx = np.flatnonzero(tied)
    run = np.concatenate([[0], np.cumsum(new)])[idx]
    out = keys.copy()
    out[idx] = keys[idx[np.lexsort((keys[idx], run))]]
    return out


def _min_size(a: int | None, b: int | None) -> int | None:
    """The smaller sample bound; None is unbounded."""
    return b if a is None else a if b is None else min(a, b)


def _sample_sorted(sv: np.ndarray, s: int | None, rng: np.random.Generator):
    """Uniform sample (bottom-s by random key) of sorted ``sv``: ``(values ascending, keys)``.

    Keys are independent of the values, so drawing them for the sorted order is
    the same as drawing them for the original one.
    """
    n = len(sv)
    keys = rng.bit_generator.random_raw(n)
    if s is None or n <= s:
        values = np.array(sv, dtype=np.float64)
    else:
        idx = np.sort(_smallest(keys, s))
        values, keys = sv[idx], keys[idx]
    values += 0.0  # -0.0 -> 0.0: one spelling of zero, whatever the sort put first
    return values, _sort_ties(values, keys)


def _merge_samples(va, ka, vb, kb, s):
    v = np.concatenate([va, vb])
    k = np.concatenate([ka, kb])
    if s is not None and len(v) > s:
        idx = np.sort(_smallest(k, s))
        v, k = v[idx], k[idx]
    order = np.argsort(v, kind="stable")
    v, k = v[order], k[order]
    return v, _sort_ties(v, k)


def _column_rng(seed: int, name: str, sv: np.ndarray, rank: int) -> np.random.Generator:
    step = max(1, len(sv) // 4096)
    fingerprint = zlib.crc32((sv[::step] + 0.0).tobytes())
    n = len(sv)
    ss = np.random.SeedSequence([seed, rank, zlib.crc32(name.encode()), fingerprint,
                                 n & 0xFFFFFFFF, n >> 32])
    return np.random.Generator(np.random.PCG64(ss))


@dataclass(eq=False)
class NumericColumn:
    """Profile of one numeric column (see the module docstring for every field's meaning).

    ``count`` = finite values + infinities (not null, not NaN); ``min``,
    ``max``, ``mean``, ``m2`` are over the finite values; ``hist`` has
    ``len(edges) + 1`` bins; ``sample`` is sorted ascending with
    ``sample_keys`` aligned to it.
    """

    name: str
    dtype: str
    count: int
    nulls: int
    nans: int
    posinf: int
    neginf: int
    min: float
    max: float
    mean: float
    m2: float
    edges: np.ndarray
    hist: np.ndarray
    sample: np.ndarray
    sample_keys: np.ndarray
    sample_size: int | None
    kind: ClassVar[str] = "numeric"

    @property
    def n_rows(self) -> int:
        return self.count + self.nulls + self.nans

    @property
    def n_finite(self) -> int:
        return self.count - self.posinf - self.neginf

    @property
    def var(self) -> float:
        """Population variance (``ddof=0``) of the finite values."""
        return self.m2 / self.n_finite if self.n_finite else math.nan

    @property
    def std(self) -> float:
        return math.sqrt(self.var)

    @property
    def bins(self) -> int:
        return len(self.edges) - 1

    @property
    def sample_is_complete(self) -> bool:
        """True when ``sample`` holds every counted value (``count <= sample_size``)."""
        return len(self.sample) == self.count

    def merge(self, other: NumericColumn) -> NumericColumn:
        _check_same(self, other)
        if not np.array_equal(self.edges, other.edges, equal_nan=True):
            raise ValueError(
                f"column {self.name!r}: histogram edges differ; profile later batches with "
                f"edges_from=<the reference profile> so that they share its edges")
        nf, mean, m2 = _merge_moments(self.n_finite, self.mean, self.m2,
                                      other.n_finite, other.mean, other.m2)
        s = _min_size(self.sample_size, other.sample_size)
        sample, keys = _merge_samples(self.sample, self.sample_keys, other.sample,
                                      other.sample_keys, s)
        return NumericColumn(
            self.name, self.dtype, self.count + other.count, self.nulls + other.nulls,
            self.nans + other.nans, self.posinf + other.posinf, self.neginf + other.neginf,
            _nan_extreme(min, self.min, other.min), _nan_extreme(max, self.max, other.max),
            mean if nf else math.nan, m2 if nf else 0.0, self.edges, self.hist + other.hist,
            sample, keys, s)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "dtype": self.dtype, "count": self.count, "nulls": self.nulls,
                "nans": self.nans, "posinf": self.posinf, "neginf": self.neginf,
                "min": _json_float(self.min), "max": _json_float(self.max),
                "mean": _json_float(self.mean), "m2": _json_float(self.m2),
                "var": _json_float(self.var), "std": _json_float(self.std),
                "edges": [_json_float(e) for e in self.edges], "hist": self.hist.tolist(),
                "sample_size": self.sample_size, "sample_count": len(self.sample)}

    def _scalars(self) -> dict:
        return {k: v for k, v in self.to_dict().items()
                if k in ("dtype", "count", "nulls", "nans", "posinf", "neginf", "min", "max",
                         "mean", "m2", "sample_size")}

    def _arrays(self) -> dict:
        return {"edges": self.edges, "hist": self.hist, "sample": self.sample,
                "sample_keys": self.sample_keys}

    @classmethod
    def _load(cls, name, s, arrays) -> NumericColumn:
        return cls(name, s["dtype"], s["count"], s["nulls"], s["nans"], s["posinf"], s["neginf"],
                   _float(s["min"]), _float(s["max"]), _float(s["mean"]), _float(s["m2"]),
                   arrays["edges"], arrays["hist"], arrays["sample"], arrays["sample_keys"],
                   s["sample_size"])


def _numeric_from_sorted(name, dtype, sv, nans, nulls, edges, bins, sample_size, rng):
    """A :class:`NumericColumn` from the sorted non-NaN values; ``edges=None``: from these values.

    ``edges`` of length 0 leaves ``edges``/``hist`` empty (MPI: filled after the merge).
    """
    n = len(sv)
    lo = int(np.searchsorted(sv, -np.inf, side="right"))
    hi = int(np.searchsorted(sv, np.inf, side="left"))
    fin = sv[lo:hi]
    mean, m2 = _moments(fin)
    mn, mx = (float(fin[0]), float(fin[-1])) if len(fin) else (math.nan, math.nan)
    if edges is None:
        edges = quantile_edges(fin, bins)
    hist = _hist_sorted(sv, edges) if len(edges) else np.zeros(0, np.int64)
    sample, keys = _sample_sorted(sv, sample_size, rng)
    return NumericColumn(name, dtype, n, int(nulls), int(nans), n - hi, lo, mn, mx, mean, m2,
                         np.asarray(edges, dtype=np.float64), hist, sample, keys, sample_size)


# ---------------------------------------------------------------------------
# Categorical columns
# ---------------------------------------------------------------------------


def _ordered(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass(eq=False)
class CategoricalColumn:
    """Value counts of one categorical column.

    Attributes
    ----------
    counts : dict of str to int
        Most frequent first (ties by value). All values while the column has
        at most ``CATEGORY_CAP_FACTOR * top_k`` distinct values, else the
        ``top_k`` most frequent (``truncated``).
    other : int
        Values not in ``counts`` (0 unless ``truncated``).
    nulls : int
    n_distinct : int
        Distinct non-null values: exact unless ``truncated`` after a merge,
        then a lower bound.
    """

    name: str
    dtype: str
    count: int
    nulls: int
    counts: dict
    other: int
    n_distinct: int
    truncated: bool
    top_k: int
    kind: ClassVar[str] = "categorical"

    @property
    def n_rows(self) -> int:
        return self.count + self.nulls

    @property
    def cap(self) -> int:
        return CATEGORY_CAP_FACTOR * self.top_k

    def top(self, k: int | None = None) -> dict:
        """The ``k`` (default ``top_k``) most frequent values and their counts."""
        k = self.top_k if k is None else k
        return dict(list(self.counts.items())[:k])

    def unseen(self, reference: CategoricalColumn) -> dict:
        """Values of this column that ``reference`` never saw, with their counts.

        When ``reference.truncated``, its rare values are only known as
        ``other``: a value missing from its ``counts`` is then "unseen or rare".
        """
        return {v: c for v, c in self.counts.items() if v not in reference.counts}

    def aligned_counts(self, current: CategoricalColumn):
        """Count vectors of this (reference) column and ``current`` over shared categories.

        Returns ``(categories, ref_counts, cur_counts)``: this column's values,
        then values only ``current`` has, then ``"<other>"`` (the truncated
        remainders); ready for :func:`engine.kernels.drift.chi2_columns`.
        """
        cats = list(self.counts) + [v for v in current.counts if v not in self.counts]
        ref = np.array([self.counts.get(v, 0) for v in cats] + [self.other], dtype=np.int64)
        cur = np.array([current.counts.get(v, 0) for v in cats] + [current.other], dtype=np.int64)
        return cats + ["<other>"], ref, cur

    def merge(self, other: CategoricalColumn) -> CategoricalColumn:
        _check_same(self, other)
        counts = dict(self.counts)
        for v, c in other.counts.items():
            counts[v] = counts.get(v, 0) + c
        truncated = self.truncated or other.truncated
        n_distinct = max(self.n_distinct, other.n_distinct, len(counts)) if truncated \
            else len(counts)
        return _categorical(self.name, self.dtype, self.count + other.count,
                            self.nulls + other.nulls, counts, self.other + other.other,
                            n_distinct, truncated, min(self.top_k, other.top_k))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "dtype": self.dtype, "count": self.count, "nulls": self.nulls,
                "counts": dict(self.counts), "other": self.other, "n_distinct": self.n_distinct,
                "truncated": self.truncated, "top_k": self.top_k}

    def _scalars(self) -> dict:
        d = self.to_dict()
        d.pop("kind")
        d["counts"] = [[v, c] for v, c in self.counts.items()]  # JSON objects lose no order, lists say so
        return d

    def _arrays(self) -> dict:
        return {}

    @classmethod
    def _load(cls, name, s, arrays) -> CategoricalColumn:
        return cls(name, s["dtype"], s["count"], s["nulls"], {v: c for v, c in s["counts"]},
                   s["other"], s["n_distinct"], s["truncated"], s["top_k"])


def _categorical(name, dtype, count, nulls, counts, other, n_distinct, truncated, top_k):
    items = _ordered(counts)
    if len(items) > CATEGORY_CAP_FACTOR * top_k:
        other += sum(c for _, c in items[top_k:])
        items = items[:top_k]
        truncated = True
    return CategoricalColumn(name, dtype, int(count), int(nulls), dict(items), int(other),
                             int(n_distinct), truncated, top_k)


def _as_strings(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    chunks = []
    for c in arr.chunks:
        if pa.types.is_dictionary(c.type):
            c = c.dictionary_decode()
        if not (pa.types.is_string(c.type) or pa.types.is_large_string(c.type)):
            c = c.cast(pa.large_string())
        chunks.append(c)
    return pa.chunked_array(chunks, type=chunks[0].type) if chunks else \
        pa.chunked_array([], type=pa.large_string())


def _value_counts(arr: pa.ChunkedArray) -> pa.Table:
    """Distinct non-null values (as strings) and their counts, most frequent first, ties by value."""
    vc = pc.value_counts(_as_strings(arr))
    t = pa.table({"v": vc.field("values"), "c": vc.field("counts")})
    t = t.filter(pc.is_valid(t["v"]))
    return t.sort_by([("c", "descending"), ("v", "ascending")])


def _categorical_from_counts(name, dtype, vc: pa.Table, nulls, top_k) -> CategoricalColumn:
    nd = vc.num_rows
    count = int(pc.sum(vc["c"]).as_py() or 0)
    keep = vc if nd <= CATEGORY_CAP_FACTOR * top_k else vc.slice(0, top_k)
    counts = dict(zip(keep["v"].to_pylist(), keep["c"].to_pylist()))
    other = count - sum(counts.values())
    return CategoricalColumn(name, dtype, count, int(nulls), counts, other, nd, keep is not vc,
                             top_k)


# ---------------------------------------------------------------------------
# Text columns
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class TextColumn:
    """Profile of one free-text column.

    Attributes
    ----------
    count, nulls, empty : int
        Non-null values, nulls, empty strings.
    len_min, len_max : int or None; len_mean : float; len_m2 : float
        Lengths in code points (``len_m2``: sum of squared deviations).
    scripts : dict of str to int
        Characters per script of :data:`engine.monitor.text.SCRIPTS`.
    script_values : dict of str to int
        Values holding at least one character of each script.
    trigrams : ndarray of int64
        Hashed character-trigram counts (``len(trigrams)`` buckets).
    """

    name: str
    dtype: str
    count: int
    nulls: int
    empty: int
    len_min: int | None
    len_max: int | None
    len_mean: float
    len_m2: float
    scripts: dict
    script_values: dict
    trigrams: np.ndarray
    kind: ClassVar[str] = "text"

    @property
    def n_rows(self) -> int:
        return self.count + self.nulls

    @property
    def len_var(self) -> float:
        return self.len_m2 / self.count if self.count else math.nan

    @property
    def chars(self) -> int:
        return sum(self.scripts.values())

    def merge(self, other: TextColumn) -> TextColumn:
        _check_same(self, other)
        if len(self.trigrams) != len(other.trigrams):
            raise ValueError(f"column {self.name!r}: trigram buckets differ "
                             f"({len(self.trigrams)} vs {len(other.trigrams)})")
        n, mean, m2 = _merge_moments(self.count, self.len_mean, self.len_m2,
                                     other.count, other.len_mean, other.len_m2)
        lo = [v for v in (self.len_min, other.len_min) if v is not None]
        hi = [v for v in (self.len_max, other.len_max) if v is not None]
        return TextColumn(
            self.name, self.dtype, n, self.nulls + other.nulls, self.empty + other.empty,
            min(lo) if lo else None, max(hi) if hi else None, mean if n else math.nan,
            m2 if n else 0.0, {k: v + other.scripts[k] for k, v in self.scripts.items()},
            {k: v + other.script_values[k] for k, v in self.script_values.items()},
            self.trigrams + other.trigrams)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "dtype": self.dtype, "count": self.count, "nulls": self.nulls,
                "empty": self.empty, "len_min": self.len_min, "len_max": self.len_max,
                "len_mean": _json_float(self.len_mean), "len_m2": _json_float(self.len_m2),
                "scripts": dict(self.scripts), "script_values": dict(self.script_values),
                "trigram_buckets": len(self.trigrams)}

    def _scalars(self) -> dict:
        d = self.to_dict()
        d.pop("kind")
        d.pop("trigram_buckets")
        return d

    def _arrays(self) -> dict:
        return {"trigrams": self.trigrams}

    @classmethod
    def _load(cls, name, s, arrays) -> TextColumn:
        return cls(name, s["dtype"], s["count"], s["nulls"], s["empty"], s["len_min"],
                   s["len_max"], _float(s["len_mean"]), _float(s["len_m2"]), s["scripts"],
                   s["script_values"], arrays["trigrams"])


def _text_column(name, dtype, arr: pa.ChunkedArray, buckets) -> TextColumn:
    f = _text.text_features(_as_strings(arr), buckets)
    lens = f.lengths
    mean, m2 = _moments(lens.astype(np.float64))
    names = _text.SCRIPTS
    return TextColumn(
        name, dtype, len(lens), f.nulls, int(np.count_nonzero(lens == 0)),
        int(lens.min()) if len(lens) else None, int(lens.max()) if len(lens) else None,
        mean, m2, dict(zip(names, f.scripts.tolist())),
        dict(zip(names, f.script_values.tolist())), f.trigrams)


# ---------------------------------------------------------------------------
# Columns that could not be profiled
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class InvalidColumn:
    """A column that was not profiled, and why (``reason``)."""

    name: str
    dtype: str
    count: int
    nulls: int
    reason: str
    kind: ClassVar[str] = "invalid"

    @property
    def n_rows(self) -> int:
        return self.count + self.nulls

    def merge(self, other: InvalidColumn) -> InvalidColumn:
        _check_same(self, other)
        return InvalidColumn(self.name, self.dtype, self.count + other.count,
                             self.nulls + other.nulls, self.reason)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "dtype": self.dtype, "count": self.count, "nulls": self.nulls,
                "reason": self.reason}

    def _scalars(self) -> dict:
        d = self.to_dict()
        d.pop("kind")
        return d

    def _arrays(self) -> dict:
        return {}

    @classmethod
    def _load(cls, name, s, arrays) -> InvalidColumn:
        return cls(name, s["dtype"], s["count"], s["nulls"], s["reason"])


ColumnProfile = NumericColumn | CategoricalColumn | TextColumn | InvalidColumn
_CLASSES = {c.kind: c for c in (NumericColumn, CategoricalColumn, TextColumn, InvalidColumn)}


# ---------------------------------------------------------------------------
# Profile
# ---------------------------------------------------------------------------

_LISTS = {  # serialized array fields: Arrow list type, NumPy dtype
    "edges": (pa.list_(pa.float64()), np.float64),
    "hist": (pa.list_(pa.int64()), np.int64),
    "sample": (pa.large_list(pa.float64()), np.float64),
    "sample_keys": (pa.large_list(pa.uint64()), np.uint64),
    "trigrams": (pa.list_(pa.int64()), np.int64),
}


def _list_array(arrays: list, typ: pa.DataType, dtype) -> pa.Array:
    lengths = np.array([0 if a is None else len(a) for a in arrays], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    parts = [np.asarray(a, dtype=dtype) for a in arrays if a is not None]
    values = pa.array(np.concatenate(parts) if parts else np.zeros(0, dtype))
    mask = pa.array([a is None for a in arrays], type=pa.bool_())
    cls = pa.LargeListArray if pa.types.is_large_list(typ) else pa.ListArray
    off = pa.array(offsets, type=pa.int64() if cls is pa.LargeListArray else pa.int32())
    return cls.from_arrays(off, values, mask=mask)


class Profile:
    """Per-column profiles of a table (see the module docstring).

    Attributes
    ----------
    n_rows : int
    columns : dict of str to column profile
        :class:`NumericColumn`, :class:`CategoricalColumn`,
        :class:`TextColumn` or :class:`InvalidColumn`, in the data's order.
    params : dict
        The settings it was built with (``sample_size``, ``bins``, ``top_k``,
        ``trigram_buckets``, ``seed``).
    """

    FORMAT_VERSION = 1

    def __init__(self, n_rows: int, columns: Mapping[str, ColumnProfile],
                 params: Mapping | None = None):
        self.n_rows = int(n_rows)
        self.columns = dict(columns)
        self.params = dict(params or {})

    def __getitem__(self, name: str) -> ColumnProfile:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r} in the profile; columns: {list(self.columns)}") \
                from None

    def __contains__(self, name) -> bool:
        return name in self.columns

    def __iter__(self):
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{n}: {c.kind}" for n, c in self.columns.items())
        return f"Profile(n_rows={self.n_rows}, columns={{{kinds}}})"

    def merge(self, other: Profile) -> Profile:
        """The profile of both tables' rows (exact, see the module docstring).

        Raises
        ------
        ValueError
            Different column sets, or a column whose kinds, histogram edges or
            trigram buckets differ (named in the message).
        """
        if not isinstance(other, Profile):
            raise TypeError(f"other must be a Profile, got {type(other).__name__}")
        if set(self.columns) != set(other.columns):
            missing = sorted(set(self.columns) ^ set(other.columns))
            raise ValueError(f"profiles have different columns: {missing} are in only one of them")
        cols = {n: c.merge(other.columns[n]) for n, c in self.columns.items()}
        return Profile(self.n_rows + other.n_rows, cols, self.params)

    def to_dict(self) -> dict:
        """A JSON-able summary: everything but the samples and trigram counts."""
        return {"format": FORMAT, "format_version": self.FORMAT_VERSION, "n_rows": self.n_rows,
                "params": dict(self.params),
                "columns": {n: c.to_dict() for n, c in self.columns.items()}}

    def to_bytes(self) -> bytes:
        """An Arrow IPC file: one row per column, scalars as JSON, arrays as list columns.

        Schema metadata: ``format`` (``"mlops-engine profile"``),
        ``format_version`` (``"1"``) and ``profile`` (JSON: ``n_rows``,
        ``params``).
        """
        cols = list(self.columns.values())
        data = {
            "name": pa.array([c.name for c in cols], type=pa.string()),
            "kind": pa.array([c.kind for c in cols], type=pa.string()),
            "stats": pa.array([json.dumps(c._scalars(), allow_nan=False) for c in cols],
                              type=pa.string()),
        }
        for field, (typ, dtype) in _LISTS.items():
            data[field] = _list_array([c._arrays().get(field) for c in cols], typ, dtype)
        meta = {"format": FORMAT, "format_version": str(self.FORMAT_VERSION),
                "profile": json.dumps({"n_rows": self.n_rows, "params": self.params})}
        table = pa.table(data).replace_schema_metadata(meta)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        return sink.getvalue().to_pybytes()

    @classmethod
    def from_bytes(cls, data) -> Profile:
        """Read :meth:`to_bytes` output; a newer ``format_version`` raises a ValueError."""
        if not isinstance(data, (bytes, bytearray, memoryview, pa.Buffer)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        try:
            reader = pa.ipc.open_file(pa.BufferReader(data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"not an mlops-engine profile (not an Arrow IPC file: {exc})") from None
        meta = reader.schema.metadata or {}
        if meta.get(b"format") != FORMAT.encode():
            raise ValueError("not an mlops-engine profile (no 'format: mlops-engine profile' "
                             "in the schema metadata)")
        try:
            version = int(meta[b"format_version"])
        except (KeyError, ValueError):
            raise ValueError("profile has no valid format_version") from None
        if version > cls.FORMAT_VERSION:
            raise ValueError(
                f"profile format_version {version} is newer than this mlops-engine can read "
                f"(format_version {cls.FORMAT_VERSION}); upgrade mlops-engine to read it")
        if version < 1:
            raise ValueError(f"profile format_version {version} is not valid")
        head = json.loads(meta[b"profile"])
        table = reader.read_all()
        arrays = {}
        for field, (_, dtype) in _LISTS.items():
            col = table.column(field).combine_chunks()
            offsets = col.offsets.to_numpy()
            values = col.values.to_numpy(zero_copy_only=False).astype(dtype, copy=False)
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            arrays[field] = [values[offsets[i]:offsets[i + 1]] if valid[i] else None
                             for i in range(len(col))]
        columns = {}
        for i, (name, kind, stats) in enumerate(zip(table.column("name").to_pylist(),
                                                    table.column("kind").to_pylist(),
                                                    table.column("stats").to_pylist())):
            if kind not in _CLASSES:
                raise ValueError(f"column {name!r} has unknown kind {kind!r}")
            columns[name] = _CLASSES[kind]._load(name, json.loads(stats),
                                                 {f: a[i] for f, a in arrays.items()})
        return cls(head["n_rows"], columns, head.get("params"))

    def save(self, path) -> None:
        """Write :meth:`to_bytes` to ``path`` (through a temporary file, then renamed)."""
        path = os.fspath(path)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(self.to_bytes())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path) -> Profile:
        with open(os.fspath(path), "rb") as f:
            return cls.from_bytes(f.read())


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


@dataclass
class _Col:
    """One input column: an Arrow chunked array, a 1-D NumPy array, or column j of a 2-D array."""

    name: str
    arrow: pa.ChunkedArray | None = None
    array: np.ndarray | None = None
    matrix: np.ndarray | None = None
    j: int = 0

    @property
    def n(self) -> int:
        if self.arrow is not None:
            return len(self.arrow)
        return len(self.array) if self.array is not None else self.matrix.shape[0]

    @property
    def dtype(self) -> str:
        if self.arrow is not None:
            return str(self.arrow.type)
        return str((self.array if self.array is not None else self.matrix).dtype)

    @property
    def nulls(self) -> int:
        return self.arrow.null_count if self.arrow is not None else 0

    @property
    def family(self) -> str:
        if self.arrow is None:
            kind = (self.array if self.array is not None else self.matrix).dtype.kind
            return "bool" if kind == "b" else "numeric" if kind in "iuf" else "unsupported"
        t = self.arrow.type
        if pa.types.is_dictionary(t):
            return "string" if _is_string_type(t.value_type) else "categorical"
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            return "numeric"
        if pa.types.is_boolean(t):
            return "bool"
        if _is_string_type(t):
            return "string"
        return "null" if pa.types.is_null(t) else "unsupported"

    def float64(self) -> np.ndarray:
        """The values as float64, nulls as NaN (a copy only where needed)."""
        if self.arrow is None:
            a = self.array if self.array is not None else self.matrix[:, self.j]
            return a.astype(np.float64, copy=False)
        parts = []
        for c in self.arrow.chunks:
            if pa.types.is_dictionary(c.type):
                c = c.dictionary_decode()
            if pa.types.is_temporal(c.type):
                c = c.cast(pa.int64())
            if not (pa.types.is_integer(c.type) or pa.types.is_floating(c.type)):
                c = pc.cast(c, pa.float64())  # decimal, bool, numeric strings; else ArrowInvalid
            parts.append(c.to_numpy(zero_copy_only=False))
        x = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0)
        return x.astype(np.float64, copy=False)

    def arrow_array(self) -> pa.ChunkedArray:
        if self.arrow is not None:
            return self.arrow
        a = self.array if self.array is not None else self.matrix[:, self.j]
        return pa.chunked_array([pa.array(a)])


def _is_string_type(t) -> bool:
    return (pa.types.is_string(t) or pa.types.is_large_string(t)
            or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t)))


def _to_arrow(v, name: str, from_pandas: bool) -> pa.ChunkedArray:
    try:
        a = pa.array(v, from_pandas=from_pandas)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise TypeError(f"column {name!r}: cannot read its values as one Arrow type ({exc})") \
            from None
    return pa.chunked_array([a])


def _is_pandas(obj, cls: str) -> bool:
    return type(obj).__module__.split(".")[0] == "pandas" and type(obj).__name__ == cls


def _column(name: str, v) -> _Col:
    if isinstance(v, pa.ChunkedArray):
        return _Col(name, arrow=v)
    if isinstance(v, pa.Array):
        return _Col(name, arrow=pa.chunked_array([v]))
    if _is_pandas(v, "Series"):
        dt = v.dtype
        if isinstance(dt, np.dtype) and dt.kind in "biuf":
            return _Col(name, array=v.to_numpy())
        return _Col(name, arrow=_to_arrow(v, name, True))
    if isinstance(v, np.ndarray):
        if v.ndim != 1:
            raise ValueError(f"column {name!r} must be 1-D, got shape {v.shape}")
        if v.dtype.kind in "biuf":
            return _Col(name, array=v)
        return _Col(name, arrow=_to_arrow(v, name, v.dtype.kind == "O"))
    if isinstance(v, (list, tuple)):
        return _Col(name, arrow=_to_arrow(v, name, False))
    raise TypeError(f"column {name!r} must be a 1-D array, list, pandas Series or Arrow array, "
                    f"got {type(v).__name__}")


def _columns_of(data, columns) -> tuple[list[_Col], int]:
    if columns is not None:
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise TypeError("columns must be a list of column names (strings)")
        columns = list(columns)
        if len(set(columns)) != len(columns):
            raise ValueError(f"columns has duplicate names: {columns}")
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise ValueError(f"data as a NumPy array must be 2-D (rows, columns), got shape "
                             f"{data.shape}; pass {{'name': array}} for a single column")
        k = data.shape[1]
        names = [str(j) for j in range(k)] if columns is None else columns
        if len(names) != k:
            raise ValueError(f"columns has {len(names)} names but data has {k} columns")
        if data.dtype.kind in "biuf":
            cols = [_Col(n, matrix=data, j=j) for j, n in enumerate(names)]
        else:
            cols = [_column(n, data[:, j]) for j, n in enumerate(names)]
        return cols, data.shape[0]
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        names, values, n = data.column_names, data.columns, data.num_rows
    elif _is_pandas(data, "DataFrame"):
        names = [str(c) for c in data.columns]
        values = [data.iloc[:, j] for j in range(data.shape[1])]
        n = data.shape[0]
    elif isinstance(data, Mapping):
        names, values, n = [], [], None
        for k, v in data.items():
            if not isinstance(k, str):
                raise TypeError(f"data keys must be column names (str), got {k!r}")
            names.append(k)
            values.append(v)
    else:
        raise TypeError("data must be a pyarrow.Table or RecordBatch, a pandas.DataFrame, a 2-D "
                        "NumPy array or a mapping of column name to 1-D array, got "
                        f"{type(data).__name__}")
    if len(set(names)) != len(names):
        raise ValueError(f"data has duplicate column names: {names}")
    pos = {nm: i for i, nm in enumerate(names)}
    if columns is not None:
        missing = [c for c in columns if c not in pos]
        if missing:
            raise ValueError(f"columns {missing} are not in data (it has {names})")
        names = columns
    cols = [_column(nm, values[pos[nm]]) for nm in names]
    if n is None:
        n = cols[0].n if cols else 0
    for c in cols:
        if c.n != n:
            raise ValueError(f"column {c.name!r} has {c.n} values but other columns have {n}")
    return cols, n


# ---------------------------------------------------------------------------
# Kinds
# ---------------------------------------------------------------------------


def _string_stats(arr: pa.ChunkedArray) -> dict:
    s = _as_strings(arr)
    vc = _value_counts(arr)
    total_len = ws = 0
    for c in s.chunks:
        total_len += pc.sum(pc.utf8_length(c)).as_py() or 0
        ws += pc.sum(pc.match_substring_regex(c, r"\s")).as_py() or 0
    return {"n": len(s) - s.null_count, "nd": vc.num_rows, "len": total_len, "ws": ws, "vc": vc}


def _string_kind(n, nd, total_len, ws) -> str:
    if nd <= max(INFER_MIN_DISTINCT, int(n * INFER_DISTINCT_RATIO)):
        return "categorical"
    if total_len >= INFER_TEXT_MIN_LENGTH * n or 2 * ws > n:
        return "text"
    return "categorical"


_FAMILY_KIND = {"numeric": "numeric", "bool": "categorical", "categorical": "categorical",
                "null": "categorical", "unsupported": "invalid"}
# Kinds a reference (edges_from) may impose on a column of each family: it settles the
# categorical/text choice and the kind of an all-null batch, but never turns a string
# column numeric (or back): that is a change of type, left for the comparison to report.
_FAMILY_KINDS = {"numeric": ("numeric",), "bool": ("categorical",),
                 "categorical": ("categorical",), "string": ("categorical", "text"),
                 "null": KINDS, "unsupported": ()}


def _decide_kinds(cols, types, edges_from, comm):
    """Kind of every column, and the string statistics computed on the way (for reuse)."""
    fam = {c.name: c.family for c in cols}
    if comm is not None:
        fam = _agree_families(fam, comm)
    kinds, need = {}, []
    for c in cols:
        if types and c.name in types:
            kinds[c.name] = types[c.name]
        elif edges_from is not None and c.name in edges_from.columns \
                and edges_from[c.name].kind in _FAMILY_KINDS[fam[c.name]]:
            kinds[c.name] = edges_from[c.name].kind
        elif fam[c.name] == "string":
            need.append(c)
        else:
            kinds[c.name] = _FAMILY_KIND[fam[c.name]]
    stats = {c.name: _string_stats(c.arrow_array()) for c in need}
    if comm is None:
        for name, s in stats.items():
            kinds[name] = _string_kind(s["n"], s["nd"], s["len"], s["ws"])
    else:
        kinds.update(_agree_string_kinds(stats, comm))
    return kinds, stats


# ---------------------------------------------------------------------------
# profile()
# ---------------------------------------------------------------------------


def _int_param(value, name: str, lo: int) -> int:
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return v


def _check_types(types, cols) -> dict:
    if types is None:
        return {}
    if not isinstance(types, Mapping):
        raise TypeError("types must be a mapping of column name to kind, got "
                        f"{type(types).__name__}")
    names = {c.name for c in cols}
    for name, kind in types.items():
        if kind not in KINDS:
            raise ValueError(f"types[{name!r}] must be one of {KINDS}, got {kind!r}")
        if name not in names:
            raise ValueError(f"types names column {name!r}, which is not in data")
    return dict(types)


def _blocks(cols: list[_Col], n: int):
    """Consecutive groups of columns whose float64 copies take about BLOCK_BYTES."""
    per = max(1, BLOCK_BYTES // max(1, 8 * n))
    for i in range(0, len(cols), per):
        yield cols[i:i + per]


def _float_block(block: list[_Col]):
    """Columns of ``block`` as float64, in one Fortran-ordered copy when they are adjacent
    columns of one 2-D array (strided reads of a C-ordered matrix, done once per block)."""
    m = block[0].matrix
    if m is not None and all(c.matrix is m for c in block) \
            and [c.j for c in block] == list(range(block[0].j, block[0].j + len(block))):
        return np.asarray(m[:, block[0].j:block[-1].j + 1], dtype=np.float64, order="F")
    return [c.float64() for c in block]


def _numeric_columns(cols, n, edges, bins, sample_size, seed, rank) -> dict:
    """Numeric column profiles; ``edges[name]``: None (from the data), an array, or empty (MPI)."""
    out = {}
    ok = []
    for c in cols:  # cast failures (strings declared numeric) become invalid columns
        if c.arrow is not None and c.family not in ("numeric", "null"):
            try:
                c.float64()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                out[c.name] = InvalidColumn(
                    c.name, c.dtype, c.n - c.nulls, c.nulls,
                    f"declared numeric but its {c.dtype} values are not numbers ({exc})")
                continue
        ok.append(c)
    for block in _blocks(ok, n):
        sc = _drift.sort_columns(_float_block(block))
        for j, c in enumerate(block):
            sv = sc.column(j)
            rng = _column_rng(seed, c.name, sv, rank)
            out[c.name] = _numeric_from_sorted(c.name, c.dtype, sv, sc.nan_counts[j] - c.nulls,
                                               c.nulls, edges.get(c.name), bins, sample_size, rng)
    return out


def profile(data, *, columns=None, types=None, sample_size: int | None = 100_000, bins: int = 10,
            top_k: int = 100, trigram_buckets: int = 4096, edges_from: Profile | None = None,
            seed: int = 0, comm=None) -> Profile:
    """Profile every column of ``data`` in one vectorized pass.

    Parameters
    ----------
    data : pyarrow.Table, pyarrow.RecordBatch, pandas.DataFrame, 2-D ndarray or mapping
        A mapping is column name -> 1-D array, list, pandas Series or Arrow
        array. A 2-D array's columns are named ``"0"``, ``"1"``, ... unless
        ``columns`` names them.
    columns : list of str, optional
        Names of a 2-D array's columns; for other inputs, the columns to
        profile (in this order).
    types : dict of str to {"numeric", "categorical", "text"}, optional
        Kinds that override the inference (see the module docstring).
    sample_size : int or None
        Bound of each numeric column's uniform sample (0: no sample; None: no
        bound, every value is kept).
    bins : int
        Quantile bins of numeric histograms (plus the two outer bins).
    top_k : int
        Categories kept by a truncated categorical column.
    trigram_buckets : int
        Hash buckets of text columns' trigram counts.
    edges_from : Profile, optional
        A reference profile: its histogram edges and trigram buckets are
        used, and its columns' kinds where the column's type allows (see the
        module docstring), so that this profile can be compared with (and
        merged into) it.
    seed : int
        Seeds the sample keys (mixed with the column name, a fingerprint of
        its values and the MPI rank).
    comm : mpi4py communicator, optional
        Each rank passes its shard of the rows; every rank returns the
        profile of all of them. Additive parts are reduced over ranks (a
        binomial tree of merges, then a broadcast); numeric edges that no
        ``edges_from`` fixes are the quantiles of the merged sample (exact
        when all ranks together hold at most ``sample_size`` values per
        column), after which histograms are counted locally and summed.

    Returns
    -------
    Profile

    Examples
    --------
    >>> p = profile({"x": [1.0, 2.0, float("nan"), None], "c": ["a", "b", "a", None]})
    >>> p["x"].count, p["x"].nans, p["x"].nulls, p["c"].counts
    (2, 1, 1, {'a': 2, 'b': 1})
    """
    if sample_size is not None:
        sample_size = _int_param(sample_size, "sample_size", 0)
    bins = _int_param(bins, "bins", 1)
    top_k = _int_param(top_k, "top_k", 1)
    trigram_buckets = _int_param(trigram_buckets, "trigram_buckets", 1)
    seed = _int_param(seed, "seed", 0)
    if edges_from is not None and not isinstance(edges_from, Profile):
        raise TypeError(f"edges_from must be a Profile, got {type(edges_from).__name__}")
    rank = 0
    if comm is not None:
        _check_comm(comm)
        rank = comm.Get_rank()
    err = None
    try:
        cols, n_rows = _columns_of(data, columns)
        types = _check_types(types, cols)
    except (TypeError, ValueError) as exc:
        if comm is None:
            raise
        err, cols, n_rows = exc, [], 0
    if comm is not None:
        _collective_check(comm, err, [c.name for c in cols])
    kinds, stats = _decide_kinds(cols, types, edges_from, comm)

    ref = edges_from.columns if edges_from is not None else {}
    edges, buckets = {}, {}
    for c in cols:
        r = ref.get(c.name)
        if kinds[c.name] == "numeric":
            edges[c.name] = r.edges if isinstance(r, NumericColumn) and len(r.edges) else \
                (np.zeros(0) if comm is not None else None)
        buckets[c.name] = len(r.trigrams) if isinstance(r, TextColumn) else trigram_buckets

    numeric = [c for c in cols if kinds[c.name] == "numeric"]
    out = _numeric_columns(numeric, n_rows, edges, bins, sample_size, seed, rank)
    for c in cols:
        kind = kinds[c.name]
        try:
            if kind == "categorical":
                vc = stats[c.name]["vc"] if c.name in stats else _value_counts(c.arrow_array())
                out[c.name] = _categorical_from_counts(c.name, c.dtype, vc, c.nulls, top_k)
            elif kind == "text":
                out[c.name] = _text_column(c.name, c.dtype, c.arrow_array(), buckets[c.name])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            out[c.name] = InvalidColumn(c.name, c.dtype, c.n - c.nulls, c.nulls,
                                        f"declared {kind} but its {c.dtype} values cannot be "
                                        f"read as strings ({exc})")
        if kind == "invalid":
            out[c.name] = InvalidColumn(c.name, c.dtype, c.n - c.nulls, c.nulls,
                                        f"columns of type {c.dtype} are not profiled; cast the "
                                        "column or name its kind in types=")
    params = {"sample_size": sample_size, "bins": bins, "top_k": top_k,
              "trigram_buckets": trigram_buckets, "seed": seed}
    if comm is not None:
        _agree_invalid(out, cols, comm)
    prof = Profile(n_rows, {c.name: out[c.name] for c in cols}, params)
    if comm is not None:
        prof = _allreduce(prof, comm)
        _fill_histograms(prof, numeric, bins, comm)
    return prof


# ---------------------------------------------------------------------------
# MPI
# ---------------------------------------------------------------------------


def _check_comm(comm):
    for attr in ("Get_rank", "Get_size", "allgather", "bcast", "send", "recv", "allreduce"):
        if not hasattr(comm, attr):
            raise TypeError("comm must be an mpi4py communicator (e.g. mpi4py.MPI.COMM_WORLD), "
                            f"got {type(comm).__name__}")


def _collective_check(comm, err, names):
    """Raise on every rank when any rank failed, or when ranks hold different columns."""
    infos = comm.allgather((None if err is None else f"{type(err).__name__}: {err}", names))
    if err is not None:
        raise err
    for r, (e, _) in enumerate(infos):
        if e is not None:
            raise ValueError(f"profile failed on rank {r}: {e}")
    for r, (_, nm) in enumerate(infos):
        if nm != names:
            raise ValueError(f"ranks hold different columns: rank {comm.Get_rank()} has {names}, "
                             f"rank {r} has {nm}")


def _agree_families(fam: dict, comm) -> dict:
    out = {}
    gathered = comm.allgather(fam)
    for name in fam:
        seen = {g[name] for g in gathered} - {"null"}
        if len(seen) > 1:
            raise ValueError(f"column {name!r} has different types on different ranks "
                             f"({sorted(seen)}); cast it, or name its kind in types=")
        out[name] = seen.pop() if seen else "null"
    return out


def _agree_string_kinds(stats: dict, comm) -> dict:
    """The single-process decision of :func:`_string_kind` from every rank's statistics."""
    local = {k: (s["n"], s["nd"], s["len"], s["ws"]) for k, s in stats.items()}
    gathered = comm.allgather(local)
    kinds, exact = {}, {}
    for name in stats:
        n = sum(g[name][0] for g in gathered)
        limit = max(INFER_MIN_DISTINCT, int(n * INFER_DISTINCT_RATIO))
        if max(g[name][1] for g in gathered) > limit:  # the union has at least as many
            kinds[name] = _string_kind(n, limit + 1, sum(g[name][2] for g in gathered),
                                       sum(g[name][3] for g in gathered))
        else:
            exact[name] = stats[name]["vc"]["v"].to_pylist()
    values = comm.allgather(exact)  # each at most `limit` values per column
    for name in exact:
        nd = len(set().union(*(v[name] for v in values)))
        kinds[name] = _string_kind(sum(g[name][0] for g in gathered), nd,
                                   sum(g[name][2] for g in gathered),
                                   sum(g[name][3] for g in gathered))
    return kinds


def _agree_invalid(out: dict, cols, comm):
    """A column that some rank could not profile is invalid on every rank (its first reason)."""
    local = {n: c.reason for n, c in out.items() if isinstance(c, InvalidColumn)}
    reasons: dict = {}
    for r, g in enumerate(comm.allgather(local)):
        for n, why in g.items():
            reasons.setdefault(n, f"rank {r}: {why}")
    for c in cols:
        if c.name in reasons and not isinstance(out[c.name], InvalidColumn):
            out[c.name] = InvalidColumn(c.name, c.dtype, c.n - c.nulls, c.nulls, reasons[c.name])


@dataclass
class _Failure:
    message: str


def _safe_merge(a, b, merge):
    if isinstance(a, _Failure):
        return a
    if isinstance(b, _Failure):
        return b
    try:
        return merge(a, b)
    except (TypeError, ValueError) as exc:
        return _Failure(str(exc))


def _reduce_bcast(obj, comm, merge):
    """Binomial-tree reduction of ``obj`` with ``merge`` (rank order kept), then a broadcast.

    A failed merge travels up the tree instead of a result, so that every rank
    raises it rather than waiting for a message that never comes.
    """
    rank, size = comm.Get_rank(), comm.Get_size()
    step = 1
    while step < size:
        if rank % (2 * step):
            comm.send(obj, dest=rank - step, tag=_TAG)
            obj = None
            break
        if rank + step < size:
            obj = _safe_merge(obj, comm.recv(source=rank + step, tag=_TAG), merge)
        step *= 2
    out = comm.bcast(obj, root=0)
    if isinstance(out, _Failure):
        raise ValueError(f"merging the ranks' profiles failed: {out.message}")
    return out


def _payload(c) -> int:
    return 1024 + sum(a.nbytes for a in c._arrays().values())


def _allreduce(prof: Profile, comm) -> Profile:
    """Merge the ranks' profiles, in column groups of about MPI_MESSAGE_BYTES per message."""
    groups, cur, size = [], [], 0
    for name, c in prof.columns.items():
        if cur and size + _payload(c) > MPI_MESSAGE_BYTES:
            groups.append(cur)
            cur, size = [], 0
        cur.append(name)
        size += _payload(c)
    groups.append(cur)
    cols = {}
    n_rows = comm.allreduce(prof.n_rows)
    for g in groups:
        part = Profile(prof.n_rows, {n: prof.columns[n] for n in g})
        cols.update(_reduce_bcast(part, comm, Profile.merge).columns)
    return Profile(n_rows, {n: cols[n] for n in prof.columns}, prof.params)


def _fill_histograms(prof: Profile, numeric, bins, comm):
    """Edges from the merged samples for columns without fixed edges; local counts summed."""
    todo = [c for c in numeric
            if isinstance(prof.columns[c.name], NumericColumn) and not len(prof[c.name].edges)]
    if not todo:
        return
    local = []
    for c in todo:
        col = prof.columns[c.name]
        s = col.sample
        fin = s[np.isfinite(s)]
        col.edges = quantile_edges(fin, bins)
        local.append(_hist_unsorted(c.float64(), col.edges))
    total = comm.allreduce(np.concatenate(local))
    for i, c in enumerate(todo):
        prof.columns[c.name].hist = total[i * (bins + 2):(i + 1) * (bins + 2)]


__all__ = [
    "CATEGORY_CAP_FACTOR",
    "CategoricalColumn",
    "ColumnProfile",
    "InvalidColumn",
    "NumericColumn",
    "Profile",
    "TextColumn",
    "profile",
    "quantile_edges",
]
