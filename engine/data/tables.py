"""Arrow tables for dataset versioning: conversion, row diffs between versions.

This module is pure: it touches no store and no file. It provides

* :func:`as_arrow_table` -- a ``pyarrow.Table`` from a Table, a RecordBatch or a
  pandas DataFrame (pandas is imported only when a DataFrame is passed);
* :func:`table_to_parquet_bytes` / :func:`parquet_bytes_to_table` -- a table as
  Parquet bytes laid out for a content-defined-chunking (CDC) store, and back;
* :func:`table_diff` -- rows added, removed and changed between two versions of a
  table, matched on a key, computed with Arrow kernels (a hash join, no Python
  loop over rows).

The Parquet conversion lives in :mod:`engine.data.parquet`; its names are
re-exported here. The module is a little over 500 lines because the row diff is one
concept: key checks, the join, and the per-type value comparison that makes
"changed" exact (floats, decimals, nested types) belong together.

Examples
--------
>>> import pyarrow as pa
>>> a = pa.table({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]})
>>> b = pa.table({"id": [2, 3, 4], "x": [2.0, 30.0, 4.0]})
>>> table_diff(a, b, key="id").summary()["num_changed"]
1
"""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .parquet import (  # noqa: F401 - re-exported
    PARQUET_WRITE_OPTIONS,
    _as_table,
    as_arrow_table,
    parquet_bytes_to_table,
    table_to_parquet_bytes,
)

__all__ = [
    "PARQUET_WRITE_OPTIONS",
    "TableDiff",
    "as_arrow_table",
    "parquet_bytes_to_table",
    "table_diff",
    "table_to_parquet_bytes",
]

OLD_SUFFIX = "__old"
NEW_SUFFIX = "__new"


@dataclass(frozen=True, eq=False)
class TableDiff:
    """Differences between two versions ``a`` (old) and ``b`` (new) of a keyed table.

    Attributes
    ----------
    key : tuple of str
        The key columns rows were matched on.
    added : pyarrow.Table
        Rows of ``b`` whose key is not in ``a``, with ``b``'s schema, in ``b``'s
        row order.
    removed : pyarrow.Table
        Rows of ``a`` whose key is not in ``b``, with ``a``'s schema, in ``a``'s
        row order.
    changed : pyarrow.Table
        One row per key present in both where some non-key value differs, in
        ``b``'s row order. Columns: the key columns (in ``key`` order), then for
        every non-key column ``c`` (in ``a``'s column order) ``c__old`` (the value
        in ``a``) and ``c__new`` (the value in ``b``), whether or not that
        particular column changed in that row.
    num_unchanged : int
        Keys present in both with all non-key values equal.
    column_changes : dict of str to int
        For every non-key column, in ``a``'s order, the number of changed rows in
        which that column differs.
    """

    key: tuple[str, ...]
    added: pa.Table = field(repr=False)
    removed: pa.Table = field(repr=False)
    changed: pa.Table = field(repr=False)
    num_unchanged: int
    column_changes: dict[str, int] = field(repr=False)

    @property
    def num_added(self) -> int:
        """Number of rows in :attr:`added`."""
        return self.added.num_rows

    @property
    def num_removed(self) -> int:
        """Number of rows in :attr:`removed`."""
        return self.removed.num_rows

    @property
    def num_changed(self) -> int:
        """Number of rows in :attr:`changed`."""
        return self.changed.num_rows

    @property
    def rows_a(self) -> int:
        """Rows in the old table ``a``."""
        return self.num_removed + self.num_changed + self.num_unchanged

    @property
    def rows_b(self) -> int:
        """Rows in the new table ``b``."""
        return self.num_added + self.num_changed + self.num_unchanged

    @property
    def has_changes(self) -> bool:
        """Whether any row was added, removed or changed."""
        return bool(self.num_added or self.num_removed or self.num_changed)

    def __repr__(self) -> str:
        return (
            f"TableDiff(key={self.key!r}, added={self.num_added}, removed={self.num_removed}, "
            f"changed={self.num_changed}, unchanged={self.num_unchanged})"
        )

    def summary(self) -> dict:
        """Counts only, as a JSON-ready dict.

        Returns
        -------
        dict
            ``key`` (list), ``rows_a``, ``rows_b``, ``num_added``, ``num_removed``,
            ``num_changed``, ``num_unchanged`` and ``changed_columns`` (non-key
            column -> changed rows where it differs).

        Examples
        --------
        >>> import pyarrow as pa
        >>> a = pa.table({"id": [1, 2], "x": [1, 2]})
        >>> b = pa.table({"id": [2, 3], "x": [5, 3]})
        >>> s = table_diff(a, b, "id").summary()
        >>> s["num_added"], s["num_removed"], s["num_changed"], s["changed_columns"]
        (1, 1, 1, {'x': 1})
        """
        return {
            "key": list(self.key),
            "rows_a": self.rows_a,
            "rows_b": self.rows_b,
            "num_added": self.num_added,
            "num_removed": self.num_removed,
            "num_changed": self.num_changed,
            "num_unchanged": self.num_unchanged,
            "changed_columns": dict(self.column_changes),
        }

    def to_json(self, *, rows: bool = False, indent: int | None = None) -> str:
        """The diff as a JSON string.

        Parameters
        ----------
        rows : bool, default False
            Also include the rows, as lists of objects under ``added``,
            ``removed`` and ``changed`` (the changed rows have the
            ``c__old``/``c__new`` layout).
        indent : int, optional
            Passed to :func:`json.dumps`.

        Returns
        -------
        str
            :meth:`summary`, plus the rows if asked. Strict JSON: NaN and
            infinities are written as the strings ``"NaN"``, ``"Infinity"`` and
            ``"-Infinity"``; dates and times in ISO 8601; durations in seconds;
            decimals as strings; binary values in base64.

        Examples
        --------
        >>> import pyarrow as pa
        >>> a = pa.table({"id": [1], "x": [float("nan")]})
        >>> b = pa.table({"id": [1], "x": [2.0]})
        >>> table_diff(a, b, "id").to_json(rows=True)[-55:]
        '"changed": [{"id": 1, "x__old": "NaN", "x__new": 2.0}]}'
        """
        out = self.summary()
        if rows:
            out["added"] = _jsonable(self.added.to_pylist())
            out["removed"] = _jsonable(self.removed.to_pylist())
            out["changed"] = _jsonable(self.changed.to_pylist())
        return json.dumps(out, indent=indent, allow_nan=False)


def _jsonable(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return v
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if hasattr(v, "isoformat"):  # pandas.Timestamp / Timedelta and the like
        return v.isoformat()
    return str(v)


def _check_key(key) -> list[str]:
    if isinstance(key, str):
        return [key]
    if not isinstance(key, Sequence) or isinstance(key, (bytes, bytearray)):
        raise TypeError(f"key must be a column name or a list of column names, got {key!r}")
    names = list(key)
    if not names:
        raise ValueError("key must name at least one column, got an empty list")
    bad = [k for k in names if not isinstance(k, str)]
    if bad:
        raise TypeError(f"key must hold column names (str), got {bad[0]!r}")
    dup = sorted({k for k in names if names.count(k) > 1})
    if dup:
        raise ValueError(f"key names column {dup[0]!r} more than once")
    return names


def _check_columns(t: pa.Table, name: str, key: list[str]) -> None:
    names = t.column_names
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise ValueError(f"{name} has duplicate column name {dup[0]!r}")
    missing = [k for k in key if k not in names]
    if missing:
        raise KeyError(
            f"key column {missing[0]!r} is not in {name} (columns of {name}: {names})"
        )


def _check_schemas(a: pa.Table, b: pa.Table) -> None:
    ta = {f.name: f.type for f in a.schema}
    tb = {f.name: f.type for f in b.schema}
    problems = [f"column {c!r} is in a but not in b" for c in ta if c not in tb]
    problems += [f"column {c!r} is in b but not in a" for c in tb if c not in ta]
    problems += [
        f"column {c!r} is {ta[c]} in a but {tb[c]} in b"
        for c in ta
        if c in tb and ta[c] != tb[c]
    ]
    if problems:
        raise ValueError("a and b have different schemas: " + "; ".join(problems))


def _join_key(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A key column as the hash join should see it.

    Dictionary columns are decoded; floats are normalized so that -0.0 matches
    0.0 and all NaNs match each other (the join compares bit patterns).
    """
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_float16(t):
        col = col.cast(pa.float32())
        t = col.type
    if pa.types.is_floating(t):
        col = pc.add(col, pa.scalar(0.0, type=t))  # -0.0 + 0.0 == +0.0
        col = pc.if_else(pc.is_nan(col), pa.scalar(float("nan"), type=t), col)
    return col


def _fmt_key(key: list[str], values: dict) -> str:
    return ", ".join(f"{k}={values[k]!r}" for k in key)


def _check_keys(kt: pa.Table, name: str, key: list[str]) -> None:
    for k in key:
        nulls = kt.column(k).null_count
        if nulls:
            raise ValueError(
                f"key column {k!r} of {name} has {nulls} null value(s); key values must not be null"
            )
    counts = kt.select(key).group_by(key, use_threads=False).aggregate([([], "count_all")])
    if counts.num_rows == kt.num_rows:
        return
    dups = counts.filter(pc.greater(counts["count_all"], 1))
    first = dups.slice(0, 1).to_pylist()[0]
    more = f" (and {dups.num_rows - 1} more duplicated key(s))" if dups.num_rows > 1 else ""
    raise ValueError(
        f"{name} has duplicate keys: {_fmt_key(key, first)} appears {first['count_all']} "
        f"times{more}; key values must be unique"
    )


class _Incomparable(TypeError):
    pass


def _flat(x) -> pa.Array:
    return x.combine_chunks() if isinstance(x, pa.ChunkedArray) else x


def _np_bool(x) -> np.ndarray:
    return np.asarray(x.to_numpy(zero_copy_only=False), dtype=bool)


def _differs(x, y) -> np.ndarray:
    """Row-wise "values differ" of two equal-length arrays of one type, as a NumPy bool array.

    Null vs null: equal. Null vs value: different. NaN vs NaN: equal (also inside
    structs and lists). -0.0 vs 0.0: equal.
    """
    t = x.type
    n = len(x)
    if pa.types.is_null(t):
        return np.zeros(n, dtype=bool)
    if pa.types.is_dictionary(t):
        return _differs(x.cast(t.value_type), y.cast(t.value_type))
    if isinstance(t, pa.ExtensionType):
        return _differs(_flat(x).storage, _flat(y).storage)
    valid_x = _np_bool(x.is_valid())
    valid_y = _np_bool(y.is_valid())
    out = valid_x != valid_y
    both = valid_x & valid_y
    if not both.any():
        return out
    if pa.types.is_struct(t):
        x, y = _flat(x), _flat(y)
        d = np.zeros(n, dtype=bool)
        for i in range(t.num_fields):
            d |= _differs(x.field(i), y.field(i))
    elif pa.types.is_map(t):
        as_list = pa.list_(pa.struct([t.key_field, t.item_field]))
        return out | (both & _differs(_flat(x).cast(as_list), _flat(y).cast(as_list)))
    elif (
        pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    ):
        x, y = _flat(x), _flat(y)
        len_x = _np_bool_int(pc.list_value_length(x))
        len_y = _np_bool_int(pc.list_value_length(y))
        d = len_x != len_y
        rows = np.flatnonzero(both & ~d & (len_x > 0))
        if rows.size:
            idx = pa.array(rows)
            sx, sy = x.take(idx), y.take(idx)
            elem = _differs(pc.list_flatten(sx), pc.list_flatten(sy))
            parents = pc.list_parent_indices(sx).to_numpy()
            d[rows[np.bincount(parents[elem], minlength=rows.size) > 0]] = True
    else:
        if pa.types.is_float16(t):
            x, y = x.cast(pa.float32()), y.cast(pa.float32())
            t = x.type
        try:
            ne = pc.not_equal(x, y)
        except pa.ArrowNotImplementedError as e:
            raise _Incomparable(f"values of type {t} cannot be compared") from e
        if pa.types.is_floating(t):
            ne = pc.and_not(ne, pc.and_(pc.is_nan(x), pc.is_nan(y)))
        d = _np_bool(ne.fill_null(False))
    return out | (both & d)


def _np_bool_int(x) -> np.ndarray:
    return np.asarray(x.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _unique_name(base: str, taken) -> str:
    name = base
    while name in taken:
        name += "_"
    return name


def table_diff(a, b, key) -> TableDiff:
    """Rows added, removed and changed from table ``a`` (old) to table ``b`` (new).

    Rows are matched on ``key`` with a hash join (``pyarrow.Table.join``); values
    are compared column by column with Arrow compute kernels.

    Parameters
    ----------
    a, b : pyarrow.Table, pyarrow.RecordBatch or pandas.DataFrame
        The old and the new version. They must have the same columns (in any
        order) with the same types; schema metadata is ignored.
    key : str or list of str
        The column(s) that identify a row. Key values must be non-null and unique
        within each table. Float keys match numerically (-0.0 matches 0.0) and NaN
        matches NaN; dictionary keys match on their values.

    Returns
    -------
    TableDiff
        ``added`` and ``removed`` rows, ``changed`` rows in the ``c__old``/``c__new``
        layout, and counts. Two values are equal when both are null, both are NaN,
        or they compare equal (so -0.0 equals 0.0); a null and a value differ.
        Nested types (struct, list, map) are compared element by element under the
        same rules.

    Raises
    ------
    TypeError
        ``a`` or ``b`` is not a table; ``key`` is not a name or list of names; a
        non-key column has a type that cannot be compared (e.g. a union).
    KeyError
        A key column is missing from ``a`` or ``b``.
    ValueError
        ``key`` is empty or repeats a name; ``a`` and ``b`` have different
        schemas (the message lists each column missing, extra or of another type);
        a key column holds nulls; a key value occurs twice in ``a`` or ``b`` (the
        message shows it); a table has two columns of one name; a ``c__old`` or
        ``c__new`` output name would clash with a key column.

    Examples
    --------
    >>> import pyarrow as pa
    >>> a = pa.table({"id": [1, 2, 3], "x": [1.0, None, 3.0], "s": ["p", "q", "r"]})
    >>> b = pa.table({"id": [4, 3, 2], "x": [4.0, 3.0, 2.0], "s": ["t", "r", "q"]})
    >>> d = table_diff(a, b, key="id")
    >>> d
    TableDiff(key=('id',), added=1, removed=1, changed=1, unchanged=1)
    >>> d.changed.to_pydict()
    {'id': [2], 'x__old': [None], 'x__new': [2.0], 's__old': ['q'], 's__new': ['q']}
    >>> d.added["id"].to_pylist(), d.removed["id"].to_pylist()
    ([4], [1])
    """
    key = _check_key(key)
    a = _as_table(a, "a")
    b = _as_table(b, "b")
    _check_columns(a, "a", key)
    _check_columns(b, "b", key)
    _check_schemas(a, b)

    values = [c for c in a.column_names if c not in key]
    out_names = list(key)
    for c in values:
        out_names += [c + OLD_SUFFIX, c + NEW_SUFFIX]
    clash = sorted({c for c in out_names if out_names.count(c) > 1})
    if clash:
        raise ValueError(
            f"the changed table would have two columns named {clash[0]!r}; "
            f"rename a column so that no key column ends in {OLD_SUFFIX!r}/{NEW_SUFFIX!r} "
            "after a non-key column's name"
        )

    row_a = _unique_name("__row_a", key)
    row_b = _unique_name("__row_b", key + [row_a])
    ka = pa.table({**{k: _join_key(a.column(k)) for k in key},
                   row_a: pa.array(np.arange(a.num_rows, dtype=np.int64))})
    kb = pa.table({**{k: _join_key(b.column(k)) for k in key},
                   row_b: pa.array(np.arange(b.num_rows, dtype=np.int64))})
    _check_keys(ka, "a", key)
    _check_keys(kb, "b", key)

    j = ka.join(kb, keys=key, join_type="full outer", coalesce_keys=True)
    ja, jb = j.column(row_a), j.column(row_b)
    in_a, in_b = ja.is_valid(), jb.is_valid()
    added_rows = np.sort(_np_int(jb.filter(pc.invert(in_a))))
    removed_rows = np.sort(_np_int(ja.filter(pc.invert(in_b))))
    both = pc.and_(in_a, in_b)
    pair_a, pair_b = _np_int(ja.filter(both)), _np_int(jb.filter(both))
    order = np.argsort(pair_b, kind="stable")
    pair_a, pair_b = pair_a[order], pair_b[order]

    ia, ib = pa.array(pair_a), pa.array(pair_b)
    per_column = {}
    any_diff = np.zeros(len(pair_a), dtype=bool)
    for c in values:
        try:
            d = _differs(a.column(c).take(ia), b.column(c).take(ib))
        except _Incomparable as e:
            raise TypeError(f"column {c!r}: {e}") from None
        per_column[c] = d
        any_diff |= d
    sel = np.flatnonzero(any_diff)
    ca, cb = pa.array(pair_a[sel]), pa.array(pair_b[sel])
    arrays = [b.column(k).take(cb) for k in key]
    for c in values:
        arrays += [a.column(c).take(ca), b.column(c).take(cb)]
    fields = [b.schema.field(k) for k in key]
    for c in values:
        f = a.schema.field(c)
        fields += [f.with_name(c + OLD_SUFFIX), f.with_name(c + NEW_SUFFIX)]
    changed = pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    return TableDiff(
        key=tuple(key),
        added=b.take(pa.array(added_rows)),
        removed=a.take(pa.array(removed_rows)),
        changed=changed,
        num_unchanged=int(len(pair_a) - sel.size),
        column_changes={c: int(per_column[c].sum()) for c in values},
    )


def _np_int(x) -> np.ndarray:
    return np.asarray(x.to_numpy(), dtype=np.int64)
