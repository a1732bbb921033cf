"""Categorical column profiles: value counts as strings, truncation to ``top_k``.

:class:`CategoricalColumn` and how it is built from value counts
(:func:`value_counts`, :func:`categorical_from_counts`), for
:func:`engine.monitor.profile.profile`; :func:`as_strings` is also how text
columns and kind inference read values. See :mod:`engine.monitor.profile` for
the merge rules; users import :class:`CategoricalColumn` from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .profile_base import CATEGORY_CAP_FACTOR, check_same

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
        check_same(self, other)
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

    def stored_scalars(self) -> dict:
        d = self.to_dict()
        d.pop("kind")
        d["counts"] = [[v, c] for v, c in self.counts.items()]  # JSON objects lose no order, lists say so
        return d

    def stored_arrays(self) -> dict:
        return {}

    @classmethod
    def from_stored(cls, name, s, arrays) -> CategoricalColumn:
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


def as_strings(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    """``arr`` as Arrow strings: dictionaries decoded, other types cast (Arrow's spelling).

    Examples
    --------
    >>> as_strings(pa.chunked_array([[1.5, None, 2]])).to_pylist()
    ['1.5', None, '2']
    """
    chunks = []
    for c in arr.chunks:
        if pa.types.is_dictionary(c.type):
            c = c.dictionary_decode()
        if not (pa.types.is_string(c.type) or pa.types.is_large_string(c.type)):
            c = c.cast(pa.large_string())
        chunks.append(c)
    return pa.chunked_array(chunks, type=chunks[0].type) if chunks else \
        pa.chunked_array([], type=pa.large_string())


def value_counts(arr: pa.ChunkedArray) -> pa.Table:
    """Distinct non-null values (as strings) and their counts, most frequent first, ties by value."""
    vc = pc.value_counts(as_strings(arr))
    t = pa.table({"v": vc.field("values"), "c": vc.field("counts")})
    t = t.filter(pc.is_valid(t["v"]))
    return t.sort_by([("c", "descending"), ("v", "ascending")])


def categorical_from_counts(name, dtype, vc: pa.Table, nulls, top_k) -> CategoricalColumn:
    """The :class:`CategoricalColumn` of value counts ``vc`` (:func:`value_counts`).

    Examples
    --------
    >>> vc = value_counts(pa.chunked_array([["b", "a", "b", None]]))
    >>> categorical_from_counts("c", "string", vc, 1, top_k=10).counts
    {'b': 2, 'a': 1}
    """
    nd = vc.num_rows
    count = int(pc.sum(vc["c"]).as_py() or 0)
    keep = vc if nd <= CATEGORY_CAP_FACTOR * top_k else vc.slice(0, top_k)
    counts = dict(zip(keep["v"].to_pylist(), keep["c"].to_pylist()))
    other = count - sum(counts.values())
    return CategoricalColumn(name, dtype, count, int(nulls), counts, other, nd, keep is not vc,
                             top_k)
