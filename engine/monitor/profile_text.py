"""Free-text column profiles: length moments, Unicode-script and hashed-trigram counts.

:class:`TextColumn` and its builder :func:`text_column`, for
:func:`engine.monitor.profile.profile`; the features come from
:mod:`engine.monitor.text`. Users import :class:`TextColumn` from
:mod:`engine.monitor.profile`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa

from . import text as _text
from .profile_base import check_same, float_or_nan, json_float, merge_moments, moments
from .profile_categorical import as_strings

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
        check_same(self, other)
        if len(self.trigrams) != len(other.trigrams):
            raise ValueError(f"column {self.name!r}: trigram buckets differ "
                             f"({len(self.trigrams)} vs {len(other.trigrams)})")
        n, mean, m2 = merge_moments(self.count, self.len_mean, self.len_m2,
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
                "len_mean": json_float(self.len_mean), "len_m2": json_float(self.len_m2),
                "scripts": dict(self.scripts), "script_values": dict(self.script_values),
                "trigram_buckets": len(self.trigrams)}

    def stored_scalars(self) -> dict:
        d = self.to_dict()
        d.pop("kind")
        d.pop("trigram_buckets")
        return d

    def stored_arrays(self) -> dict:
        return {"trigrams": self.trigrams}

    @classmethod
    def from_stored(cls, name, s, arrays) -> TextColumn:
        return cls(name, s["dtype"], s["count"], s["nulls"], s["empty"], s["len_min"],
                   s["len_max"], float_or_nan(s["len_mean"]), float_or_nan(s["len_m2"]),
                   s["scripts"], s["script_values"], arrays["trigrams"])


def text_column(name, dtype, arr: pa.ChunkedArray, buckets) -> TextColumn:
    """The :class:`TextColumn` of the string values ``arr``, trigrams in ``buckets`` buckets.

    Examples
    --------
    >>> c = text_column("q", "string", pa.chunked_array([["hola mundo", None, ""]]), 64)
    >>> c.count, c.nulls, c.empty, c.len_max, c.scripts["Latin"]
    (2, 1, 1, 10, 9)
    """
    f = _text.text_features(as_strings(arr), buckets)
    lens = f.lengths
    mean, m2 = moments(lens.astype(np.float64))
    names = _text.SCRIPTS
    return TextColumn(
        name, dtype, len(lens), f.nulls, int(np.count_nonzero(lens == 0)),
        int(lens.min()) if len(lens) else None, int(lens.max()) if len(lens) else None,
        mean, m2, dict(zip(names, f.scripts.tolist())),
        dict(zip(names, f.script_values.tolist())), f.trigrams)
