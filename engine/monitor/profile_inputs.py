"""Inputs of :func:`engine.monitor.profile.profile`: columns of any table-like input, their kinds.

:func:`columns_of` reads a table, DataFrame, 2-D array or mapping into
:class:`InputColumn` objects (no copy); :func:`decide_kinds` infers numeric /
categorical / text / invalid per column (agreeing over MPI ranks when given a
communicator); :func:`check_int` and :func:`check_types` validate the
arguments. The per-kind modules build column profiles from the
:class:`InputColumn` objects. See the module docstring of
:mod:`engine.monitor.profile` for the inference rules.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..store.arrow_build import array_from_numpy, numpy_from_array
from .profile_base import INFER_DISTINCT_RATIO, INFER_MIN_DISTINCT, INFER_TEXT_MIN_LENGTH, KINDS
from .profile_categorical import as_strings, value_counts

# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def _numeric_chunk(c):
    """An Arrow chunk as integers or floats: dictionaries decoded, times as int64, the rest
    (decimal, bool, numeric strings) cast to float64 (ArrowInvalid if that fails)."""
    if pa.types.is_dictionary(c.type):
        c = c.dictionary_decode()
    if pa.types.is_temporal(c.type):
        c = c.cast(pa.int64())
    if not (pa.types.is_integer(c.type) or pa.types.is_floating(c.type)):
        c = pc.cast(c, pa.float64())
    return c


@dataclass
class InputColumn:
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
        parts = [numpy_from_array(_numeric_chunk(c)) for c in self.arrow.chunks]
        x = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0)
        return x.astype(np.float64, copy=False)

    def float64_into(self, out: np.ndarray) -> None:
        """Write :meth:`float64` into ``out`` (length ``n``), one Arrow chunk at a time,
        so that no float64 copy of the whole column is made besides ``out``."""
        if self.arrow is None:
            out[:] = self.array if self.array is not None else self.matrix[:, self.j]
            return
        pos = 0
        for c in self.arrow.chunks:
            part = numpy_from_array(_numeric_chunk(c))
            out[pos:pos + len(part)] = part
            pos += len(part)

    def arrow_array(self) -> pa.ChunkedArray:
        if self.arrow is not None:
            return self.arrow
        a = self.array if self.array is not None else self.matrix[:, self.j]
        return pa.chunked_array([array_from_numpy(a)])


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


def _column(name: str, v) -> InputColumn:
    if isinstance(v, pa.ChunkedArray):
        return InputColumn(name, arrow=v)
    if isinstance(v, pa.Array):
        return InputColumn(name, arrow=pa.chunked_array([v]))
    if _is_pandas(v, "Series"):
        dt = v.dtype
        if isinstance(dt, np.dtype) and dt.kind in "biuf":
            return InputColumn(name, array=v.to_numpy())
        return InputColumn(name, arrow=_to_arrow(v, name, True))
    if isinstance(v, np.ndarray):
        if v.ndim != 1:
            raise ValueError(f"column {name!r} must be 1-D, got shape {v.shape}")
        if v.dtype.kind in "biuf":
            return InputColumn(name, array=v)
        return InputColumn(name, arrow=_to_arrow(v, name, v.dtype.kind == "O"))
    if isinstance(v, (list, tuple)):
        return InputColumn(name, arrow=_to_arrow(v, name, False))
    raise TypeError(f"column {name!r} must be a 1-D array, list, pandas Series or Arrow array, "
                    f"got {type(v).__name__}")


class _FrameColumns:
    """``frame.iloc[:, j]`` on demand (a Series per selected column, not per column)."""

    def __init__(self, frame):
        self.frame = frame

    def __getitem__(self, j: int):
        return self.frame.iloc[:, j]


def columns_of(data, columns) -> tuple[list[InputColumn], int]:
    """``(input columns, number of rows)`` of ``data``; ``columns`` selects (or, for a 2-D
    array, names) them. Raises TypeError or ValueError naming what is wrong.

    Examples
    --------
    >>> cols, n = columns_of(np.zeros((3, 2)), ["a", "b"])
    >>> [c.name for c in cols], n, cols[1].family
    (['a', 'b'], 3, 'numeric')
    """
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
            cols = [InputColumn(n, matrix=data, j=j) for j, n in enumerate(names)]
        else:
            cols = [_column(n, data[:, j]) for j, n in enumerate(names)]
        return cols, data.shape[0]
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        names, values, n = data.column_names, data.columns, data.num_rows
    elif _is_pandas(data, "DataFrame"):
        names = [str(c) for c in data.columns]
        values = _FrameColumns(data)  # only the selected columns are taken out
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
    s = as_strings(arr)
    vc = value_counts(arr)
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


def decide_kinds(cols, types, edges_from, comm):
    """``(kinds, stats)``: the kind of every input column (``types`` first, then the kind of
    ``edges_from``'s column where the type allows, then inference), and the string
    statistics computed on the way (``stats[name]["vc"]``: value counts, for reuse)."""
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


# ---------------------------------------------------------------------------
# Arguments of profile()
# ---------------------------------------------------------------------------


def check_int(value, name: str, lo: int) -> int:
    """``value`` as an int ``>= lo``, else TypeError/ValueError naming the argument ``name``.

    Examples
    --------
    >>> check_int(3, "bins", 1)
    3
    """
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return v


def check_types(types, cols) -> dict:
    """``types`` as a dict, checked: known kinds only, for columns of ``cols`` only."""
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
