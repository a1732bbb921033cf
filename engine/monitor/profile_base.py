"""What every column kind of a profile shares: format constants, moments, InvalidColumn.

The helpers here (moments and their exact merge, JSON-safe floats, the check that
two columns may merge) are used by the per-kind modules ``profile_numeric``,
``profile_categorical`` and ``profile_text``. See :mod:`engine.monitor.profile` for
the meaning of every field and the merge rules; users import the public names from
there.

Every column class also speaks the storage protocol of
:class:`~engine.monitor.profile_format.Profile`: ``stored_scalars()`` (a JSON-able
dict), ``stored_arrays()`` (field -> array, fields of ``profile_format``'s list
columns) and the class method ``from_stored(name, scalars, arrays)``, its inverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

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
MPI_TAG = 7411  # the tag of the profile reduction's point-to-point messages


class ProfileFormatError(ValueError):
    """Bytes that are not an mlops-engine profile, or a damaged one; the message names the
    file (or what they were read from)."""


def json_float(x) -> float | None:
    """``x`` as a float for JSON: None for NaN and infinities.

    Examples
    --------
    >>> json_float(2), json_float(float("nan"))
    (2.0, None)
    """
    x = float(x)
    return x if math.isfinite(x) else None


def float_or_nan(x) -> float:
    """The inverse of :func:`json_float` for stored values: None -> NaN."""
    return math.nan if x is None else float(x)


def merge_moments(na, ma, m2a, nb, mb, m2b):
    """Chan et al. (1979): count, mean and sum of squared deviations of the union."""
    if nb == 0:
        return na, ma, m2a
    if na == 0:
        return nb, mb, m2b
    n = na + nb
    d = mb - ma
    return n, ma + d * (nb / n), m2a + m2b + d * d * (na * nb / n)


def moments(x: np.ndarray) -> tuple[float, float]:
    """Mean and sum of squared deviations (two passes; pairwise mean, no BLAS threads)."""
    if len(x) == 0:
        return math.nan, 0.0
    mean = float(np.sum(x) / len(x))
    d = x - mean
    # einsum runs its own unrolled loop; a dot product would go through threaded BLAS
    return mean, float(np.einsum("i,i->", d, d))


def nan_extreme(f, a, b):
    """``f(a, b)`` (``min`` or ``max``) where NaN stands for "no value yet"."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return f(a, b)


def check_same(a, b):
    """Raise ValueError unless column profiles ``a`` and ``b`` have the same kind and name."""
    if a.kind != b.kind:
        raise ValueError(f"column {a.name!r}: cannot merge a {a.kind} column with a {b.kind} column")
    if a.name != b.name:
        raise ValueError(f"cannot merge column {a.name!r} with column {b.name!r}")


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
        check_same(self, other)
        return InvalidColumn(self.name, self.dtype, self.count + other.count,
                             self.nulls + other.nulls, self.reason)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "dtype": self.dtype, "count": self.count, "nulls": self.nulls,
                "reason": self.reason}

    def stored_scalars(self) -> dict:
        d = self.to_dict()
        d.pop("kind")
        return d

    def stored_arrays(self) -> dict:
        return {}

    @classmethod
    def from_stored(cls, name, s, arrays) -> InvalidColumn:
        return cls(name, s["dtype"], s["count"], s["nulls"], s["reason"])
