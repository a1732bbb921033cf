"""Numeric column profiles: quantile edges, histograms, the bottom-k sample, and how they are built.

:class:`NumericColumn` is the mergeable, stored profile of a numeric column;
:class:`SortedNumericColumn` what :func:`engine.monitor.drift` reads of a raw side
(every value, sorted); :class:`DeferredNumericColumn` a column not read yet. The
builders (:func:`numeric_columns`, :func:`sorted_numeric_columns`,
:func:`deferred_numeric_columns`) turn input columns of
:mod:`engine.monitor.profile_inputs` into them for
:func:`engine.monitor.profile.profile`; see its docstring for the meaning of every
field and the merge rules. Users import the column classes from
:mod:`engine.monitor.profile`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from engine.kernels import drift as K

from .profile_base import (
    BLOCK_BYTES,
    InvalidColumn,
    check_same,
    float_or_nan,
    json_float,
    merge_moments,
    moments,
    nan_extreme,
)

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


def hist_sorted(sv: np.ndarray, edges: np.ndarray) -> np.ndarray:
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


def hist_unsorted(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin counts of float64 ``x`` (NaN ignored), same bins as :func:`hist_sorted`."""
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
        check_same(self, other)
        if not np.array_equal(self.edges, other.edges, equal_nan=True):
            raise ValueError(
                f"column {self.name!r}: histogram edges differ; profile later batches with "
                f"edges_from=<the reference profile> so that they share its edges")
        nf, mean, m2 = merge_moments(self.n_finite, self.mean, self.m2,
                                     other.n_finite, other.mean, other.m2)
        s = _min_size(self.sample_size, other.sample_size)
        sample, keys = _merge_samples(self.sample, self.sample_keys, other.sample,
                                      other.sample_keys, s)
        return NumericColumn(
            self.name, self.dtype, self.count + other.count, self.nulls + other.nulls,
            self.nans + other.nans, self.posinf + other.posinf, self.neginf + other.neginf,
            nan_extreme(min, self.min, other.min), nan_extreme(max, self.max, other.max),
            mean if nf else math.nan, m2 if nf else 0.0, self.edges, self.hist + other.hist,
            sample, keys, s)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "dtype": self.dtype, "count": self.count, "nulls": self.nulls,
                "nans": self.nans, "posinf": self.posinf, "neginf": self.neginf,
                "min": json_float(self.min), "max": json_float(self.max),
                "mean": json_float(self.mean), "m2": json_float(self.m2),
                "var": json_float(self.var), "std": json_float(self.std),
                "edges": [json_float(e) for e in self.edges], "hist": self.hist.tolist(),
                "sample_size": self.sample_size, "sample_count": len(self.sample)}

    def stored_scalars(self) -> dict:
        return {k: v for k, v in self.to_dict().items()
                if k in ("dtype", "count", "nulls", "nans", "posinf", "neginf", "min", "max",
                         "mean", "m2", "sample_size")}

    def stored_arrays(self) -> dict:
        return {"edges": self.edges, "hist": self.hist, "sample": self.sample,
                "sample_keys": self.sample_keys}

    @classmethod
    def from_stored(cls, name, s, arrays) -> NumericColumn:
        return cls(name, s["dtype"], s["count"], s["nulls"], s["nans"], s["posinf"], s["neginf"],
                   float_or_nan(s["min"]), float_or_nan(s["max"]), float_or_nan(s["mean"]),
                   float_or_nan(s["m2"]),
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
    mean, m2 = moments(fin)
    mn, mx = (float(fin[0]), float(fin[-1])) if len(fin) else (math.nan, math.nan)
    if edges is None:
        edges = quantile_edges(fin, bins)
    hist = hist_sorted(sv, edges) if len(edges) else np.zeros(0, np.int64)
    sample, keys = _sample_sorted(sv, sample_size, rng)
    return NumericColumn(name, dtype, n, int(nulls), int(nans), n - hi, lo, mn, mx, mean, m2,
                         np.asarray(edges, dtype=np.float64), hist, sample, keys, sample_size)


@dataclass(eq=False)
class SortedNumericColumn:
    """The parts of a numeric column that the drift tests read, without the rest of a profile.

    :func:`engine.monitor.drift` builds these for a side given as raw data:
    ``sample`` is every counted value, sorted (a view into ``pack``, the
    :class:`~engine.kernels.drift.SortedColumns` that all numeric columns of
    the side share, column ``index``); ``count``, ``nulls``, ``nans``,
    ``edges`` and ``hist`` mean what they mean in :class:`NumericColumn`.
    No moments, no sample keys: it neither merges nor serializes.
    """

    name: str
    dtype: str
    count: int
    nulls: int
    nans: int
    edges: np.ndarray
    hist: np.ndarray
    pack: object
    index: int
    kind: ClassVar[str] = "numeric"

    @property
    def sample(self) -> np.ndarray:
        return self.pack.column(self.index)

    @property
    def n_rows(self) -> int:
        return self.count + self.nulls + self.nans


@dataclass
class DeferredNumericColumn:
    """A numeric column of raw data not read yet: what
    :func:`~engine.monitor.profile.sorted_profile` with ``defer_numeric=True`` gives, so that
    :func:`engine.monitor.drift` knows the kinds of all columns and reads the numeric ones
    later, a block of columns at a time."""

    name: str
    dtype: str
    nulls: int
    kind: ClassVar[str] = "numeric"


# ---------------------------------------------------------------------------
# Building numeric columns from input columns (engine.monitor.profile_inputs)
# ---------------------------------------------------------------------------


def _blocks(cols: list, n: int):
    """Consecutive groups of columns whose float64 copies take about BLOCK_BYTES."""
    per = max(1, BLOCK_BYTES // max(1, 8 * n))
    for i in range(0, len(cols), per):
        yield cols[i:i + per]


def _float_block(block: list):
    """Columns of ``block`` as float64, in one Fortran-ordered copy when they are adjacent
    columns of one 2-D array (strided reads of a C-ordered matrix, done once per block)."""
    m = block[0].matrix
    if m is not None and all(c.matrix is m for c in block) \
            and [c.j for c in block] == list(range(block[0].j, block[0].j + len(block))):
        return np.asarray(m[:, block[0].j:block[-1].j + 1], dtype=np.float64, order="F")
    return [c.float64() for c in block]


def _castable(cols) -> tuple[dict, list]:
    """``({name: InvalidColumn}, columns)``: cast failures (strings declared numeric), the rest."""
    out = {}
    ok = []
    for c in cols:
        if c.arrow is not None and c.family not in ("numeric", "null"):
            try:
                c.float64()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                out[c.name] = InvalidColumn(
                    c.name, c.dtype, c.n - c.nulls, c.nulls,
                    f"declared numeric but its {c.dtype} values are not numbers ({exc})")
                continue
        ok.append(c)
    return out, ok


def numeric_columns(cols, n, edges, bins, sample_size, seed, rank, bar) -> dict:
    """:class:`NumericColumn` (or :class:`InvalidColumn`) of every input column of ``cols``.

    ``cols`` are :class:`~engine.monitor.profile_inputs.InputColumn` of ``n`` rows;
    ``edges[name]``: None (quantiles of the data), an array, or empty (MPI: filled in after
    the merge). Sorted a block of columns at a time; ``bar.advance`` per column.
    """
    out, ok = _castable(cols)
    bar.advance(len(cols) - len(ok))
    for block in _blocks(ok, n):
        sc = K.sort_columns(_float_block(block))
        for j, c in enumerate(block):
            sv = sc.column(j)
            rng = _column_rng(seed, c.name, sv, rank)
            out[c.name] = _numeric_from_sorted(c.name, c.dtype, sv, sc.nan_counts[j] - c.nulls,
                                               c.nulls, edges.get(c.name), bins, sample_size, rng)
        bar.advance(len(block))
    return out


def sort_packed(cols: list):
    """:func:`~engine.kernels.drift.sort_columns` of the input columns ``cols`` as float64,
    without a float64 copy of every column next to the packed array: the packed array is
    allocated once, each column (each Arrow chunk) is cast straight into its slot, and
    sorted in place (:func:`~engine.kernels.drift.sort_packed_columns`). Nulls count as
    NaN in ``nan_counts``.

    Examples
    --------
    >>> from engine.monitor.profile_inputs import columns_of
    >>> cols, _ = columns_of({"a": [3.0, None, 1.0], "b": np.array([2, 1])[[0, 1, 1]]}, None)
    >>> sc = sort_packed(cols)
    >>> sc.column(0).tolist(), sc.column(1).tolist(), sc.nan_counts.tolist()
    ([1.0, 3.0], [1.0, 1.0, 2.0], [1, 0])
    """
    offsets = np.zeros(len(cols) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([c.n for c in cols])
    values = np.empty(int(offsets[-1]), dtype=np.float64)
    for j, c in enumerate(cols):
        c.float64_into(values[offsets[j]:offsets[j + 1]])
    return K.sort_packed_columns(values, offsets)


def sorted_numeric_columns(cols, edges, bins) -> dict:
    """:class:`SortedNumericColumn` (or :class:`InvalidColumn`) of every input column of
    ``cols``: one sort of all of them, no more. ``edges[name]``: None or an array."""
    out, ok = _castable(cols)
    if not ok:
        return out
    sc = sort_packed(ok)
    # nulls were NaN in the float64 copy; a profile counts them apart from NaN
    sc = K.SortedColumns(sc.values, sc.offsets,
                         sc.nan_counts - np.array([c.nulls for c in ok], dtype=np.int64))
    cuts = []
    for j, c in enumerate(ok):
        e = edges.get(c.name)
        if e is None:
            sv = sc.column(j)
            lo = int(np.searchsorted(sv, -np.inf, side="right"))
            hi = int(np.searchsorted(sv, np.inf, side="left"))
            e = quantile_edges(sv[lo:hi], bins)
        cuts.append(np.asarray(e, dtype=np.float64))
    if len({len(e) for e in cuts}) == 1 and len(cuts[0]) >= 2:
        hist = K.bin_sorted_columns(sc, np.stack(cuts))
    else:  # edges of different lengths (or none): column by column
        hist = [hist_sorted(sc.column(j), e) if len(e) else np.zeros(0, np.int64)
                for j, e in enumerate(cuts)]
    for j, c in enumerate(ok):
        out[c.name] = SortedNumericColumn(c.name, c.dtype, int(sc.offsets[j + 1] - sc.offsets[j]),
                                          c.nulls, int(sc.nan_counts[j]), cuts[j],
                                          hist[j], sc, j)
    return out


def deferred_numeric_columns(cols) -> dict:
    """:class:`DeferredNumericColumn` of every input column of ``cols`` whose values cast
    to numbers (read only where they must be cast to know), :class:`InvalidColumn` of
    the others."""
    out, ok = _castable(cols)
    out.update({c.name: DeferredNumericColumn(c.name, c.dtype, c.nulls) for c in ok})
    return out
