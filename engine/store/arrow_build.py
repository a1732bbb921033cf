"""Arrow arrays and tables from Python lists and NumPy arrays, without pandas.

``pyarrow.array``, ``pyarrow.table`` and ``Table.from_pydict`` on Python lists or
NumPy arrays, ``pyarrow.scalar``, and ``Array.to_numpy`` ask pyarrow whether the
input is pandas data, and pyarrow answers by importing pandas when it is installed:
about 0.4 s of start-up for a command that never sees a DataFrame. The functions here
build the same arrays from their buffers (``pyarrow.Array.from_buffers`` over
``pyarrow.py_buffer`` of NumPy arrays and bytes) and read primitive arrays back as
NumPy views of their buffers, which import nothing. Every layer above the store uses
them where it builds Arrow data from Python values; the results are equal to what
``pyarrow.array`` builds, buffer for buffer (so that Arrow IPC files written from them
are byte-identical too).

Supported types: integers, floats, booleans, fixed-width temporals (stored as their
integers), ``string``, ``large_string``, ``binary``, ``large_binary``,
``fixed_size_binary``, ``list``, ``large_list`` and ``struct`` of those (nested to any
depth). Anything else raises ``TypeError`` naming the type.

Examples
--------
>>> import pyarrow as pa
>>> t = table_from_columns({"n": [1, None, 3], "s": ["a", "bc", None]},
...                        pa.schema([("n", pa.int64()), ("s", pa.string())]))
>>> t.to_pydict()
{'n': [1, None, 3], 's': ['a', 'bc', None]}
>>> numpy_from_array(t.column("n").fill_null(0)).tolist()
[1, 0, 3]
"""

from __future__ import annotations

from builtins import type as builtins_type
from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import is_, is_not

import numpy as np
import pyarrow as pa

__all__ = ["array_from_list", "array_from_numpy", "list_array", "numpy_dtype",
           "numpy_from_array", "scalar_from_value", "struct_array", "table_from_columns",
           "table_from_rows"]

_INT32_MAX = 2**31 - 1


def numpy_dtype(type: pa.DataType) -> np.dtype:
    """The NumPy dtype of the values buffer of a fixed-width Arrow ``type``.

    Integers, floats and fixed-width temporals (timestamps, dates, times, durations,
    which store integers); ``TypeError`` for any other type (booleans store bits).

    Examples
    --------
    >>> numpy_dtype(pa.uint32()), numpy_dtype(pa.timestamp("ns")), numpy_dtype(pa.float32())
    (dtype('uint32'), dtype('int64'), dtype('float32'))
    """
    if pa.types.is_floating(type):
        return np.dtype(f"f{type.bit_width // 8}")
    if pa.types.is_integer(type):
        return np.dtype(f"{'i' if pa.types.is_signed_integer(type) else 'u'}{type.bit_width // 8}")
    if pa.types.is_temporal(type) and type.bit_width in (32, 64):
        return np.dtype(f"i{type.bit_width // 8}")
    raise TypeError(f"type must be a fixed-width numeric or temporal Arrow type, got {type}")


def _bitmap(bits: np.ndarray) -> pa.Buffer:
    """Arrow's LSB-first bitmap of a boolean array (trailing bits zero, as Arrow writes)."""
    return pa.py_buffer(np.packbits(bits, bitorder="little"))


def _validity(valid, n: int) -> tuple[pa.Buffer | None, int]:
    """(validity bitmap or None when nothing is null, null count) of an optional mask."""
    if valid is None:
        return None, 0
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (n,):
        raise ValueError(f"valid must be a boolean array of length {n}, got shape {valid.shape}")
    nulls = n - int(np.count_nonzero(valid))
    return (_bitmap(valid), nulls) if nulls else (None, 0)


def array_from_numpy(values, type: pa.DataType | None = None, valid=None) -> pa.Array:
    """A primitive Arrow array over a 1-D NumPy array (no copy when the dtype matches).

    Parameters
    ----------
    values : array_like, 1-D
        The values; converted to ``type``'s dtype (a copy only if it differs).
    type : pyarrow.DataType, optional
        Integer, float, boolean or fixed-width temporal type; default from the dtype
        (``numpy.dtype`` kinds ``b``, ``i``, ``u``, ``f``).
    valid : array_like of bool, optional
        False where the value is null (its slot keeps whatever ``values`` holds there).

    Examples
    --------
    >>> import numpy as np
    >>> array_from_numpy(np.arange(3, dtype=np.int64)).to_pylist()
    [0, 1, 2]
    >>> array_from_numpy([True, False], valid=[True, False]).to_pylist()
    [True, None]
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    if type is None:
        if values.dtype.kind not in "biuf":
            raise TypeError(f"values: no Arrow type for dtype {values.dtype}; pass type=")
        type = pa.bool_() if values.dtype.kind == "b" else pa.from_numpy_dtype(values.dtype)
    n = len(values)
    validity, nulls = _validity(valid, n)
    if pa.types.is_boolean(type):
        data = _bitmap(values.astype(bool, copy=False))
    else:
        dt = numpy_dtype(type)
        _check_cast(values, dt, type)
        data = pa.py_buffer(np.ascontiguousarray(values, dtype=dt))
    return pa.Array.from_buffers(type, n, [validity, data], null_count=nulls)


def _check_cast(values: np.ndarray, dt: np.dtype, type: pa.DataType) -> None:
    """Refuse a conversion to an integer dtype that would change values (pyarrow.array
    refuses them too): from floats, and integers out of the target's range."""
    if dt.kind not in "iu" or values.dtype == dt or not len(values):
        return
    if values.dtype.kind not in "biu":
        raise TypeError(f"values: dtype {values.dtype} would be truncated to {type}; "
                        "convert them first")
    info = np.iinfo(dt)
    if values.dtype.kind != "b" and (values.min() < info.min or values.max() > info.max):
        raise ValueError(f"values: some are out of the range of {type}")


def _nulls_replaced(values: Sequence, fill) -> tuple[list, np.ndarray | None]:
    """``values`` with None replaced by ``fill``, and the validity mask (None if no nulls)."""
    if not any(map(is_, values, repeat(None))):  # at C speed, and never calls __eq__
        return values, None
    valid = np.fromiter(map(is_not, values, repeat(None)), dtype=bool, count=len(values))
    return [fill if v is None else v for v in values], valid


def _offsets(lengths: np.ndarray, large: bool, what: str) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if not large:
        if offsets[-1] > _INT32_MAX:
            raise ValueError(f"{what} hold {int(offsets[-1])} elements, more than a 32-bit "
                             "offset can address; use the large_ variant of the type")
        offsets = offsets.astype(np.int32)
    return offsets


def _as_bytes(v, text: bool) -> bytes:
    """One value of a string or binary column as bytes: str as UTF-8, and (as pyarrow
    takes them) bytes for a string column if they are UTF-8, str for a binary one."""
    if isinstance(v, str):
        return v.encode()
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError(f"values: a {'string' if text else 'binary'} column takes str, bytes "
                        f"or None, got {v!r}")
    b = bytes(v)
    if text:
        try:
            b.decode()
        except UnicodeDecodeError:
            raise ValueError(f"values: {b[:40]!r} is not UTF-8, so not a string") from None
    return b


def _binary_array(values: Sequence, type: pa.DataType) -> pa.Array:
    text = pa.types.is_string(type) or pa.types.is_large_string(type)
    values, valid = _nulls_replaced(values, "" if text else b"")
    try:  # the common case first: all str for a string column, all bytes for a binary one
        data = [v.encode() for v in values] if text else values
        joined = b"".join(data)
    except (AttributeError, TypeError):
        data = [_as_bytes(v, text) for v in values]
        joined = b"".join(data)
    lengths = np.fromiter(map(len, data), dtype=np.int64, count=len(data))
    if len(joined) != int(lengths.sum()):  # a buffer of wider items than bytes
        data = [_as_bytes(v, text) for v in values]
        lengths = np.fromiter(map(len, data), dtype=np.int64, count=len(data))
        joined = b"".join(data)
    large = pa.types.is_large_string(type) or pa.types.is_large_binary(type)
    offsets = _offsets(lengths, large, f"the {type} values")
    validity, nulls = _validity(valid, len(data))
    return pa.Array.from_buffers(type, len(data), [validity, pa.py_buffer(offsets),
                                                   pa.py_buffer(joined)], null_count=nulls)


def _fixed_binary_array(values: Sequence, type: pa.FixedSizeBinaryType) -> pa.Array:
    width = type.byte_width
    values, valid = _nulls_replaced(values, bytes(width))
    try:
        data = b"".join(values)
    except TypeError:
        values = [_as_bytes(v, False) for v in values]
        data = b"".join(values)
    if len(data) != width * len(values):
        bad = next(i for i, v in enumerate(values) if len(v) != width)
        raise ValueError(f"values[{bad}] has {len(values[bad])} bytes; {type} needs {width}")
    validity, nulls = _validity(valid, len(values))
    return pa.Array.from_buffers(type, len(values), [validity, pa.py_buffer(data)],
                                 null_count=nulls)


def list_array(type: pa.DataType, offsets, values: pa.Array, valid=None) -> pa.Array:
    """A ``list`` or ``large_list`` array from its offsets and its flat child array.

    Parameters
    ----------
    type : pyarrow.ListType or pyarrow.LargeListType
    offsets : array_like of int, length n + 1
        Row i holds ``values[offsets[i]:offsets[i + 1]]`` (a null row: an empty range).
    values : pyarrow.Array
        The flat values, of ``type.value_type``.
    valid : array_like of bool, optional
        False where the row is null.

    Examples
    --------
    >>> list_array(pa.list_(pa.int64()), [0, 2, 2, 3], array_from_numpy([1, 2, 3]),
    ...            valid=[True, False, True]).to_pylist()
    [[1, 2], None, [3]]
    """
    if not (pa.types.is_list(type) or pa.types.is_large_list(type)):
        raise TypeError(f"type must be a list or large_list type, got {type}")
    if values.type != type.value_type:
        raise TypeError(f"values has type {values.type}; {type} needs {type.value_type}")
    offsets = np.ascontiguousarray(offsets, dtype=np.int64 if pa.types.is_large_list(type)
                                   else np.int32)
    n = len(offsets) - 1
    validity, nulls = _validity(valid, n)
    return pa.Array.from_buffers(type, n, [validity, pa.py_buffer(offsets)], null_count=nulls,
                                 children=[values])


def struct_array(type: pa.StructType, children: Sequence[pa.Array], valid=None) -> pa.Array:
    """A ``struct`` array from one child array per field (in the type's field order).

    Examples
    --------
    >>> t = pa.struct([("a", pa.int32())])
    >>> struct_array(t, [array_from_numpy([1, 2], pa.int32())]).to_pylist()
    [{'a': 1}, {'a': 2}]
    """
    if not pa.types.is_struct(type):
        raise TypeError(f"type must be a struct type, got {type}")
    if len(children) != type.num_fields:
        raise ValueError(f"children: {type} has {type.num_fields} fields, got {len(children)} "
                         "arrays")
    n = len(children[0]) if children else 0
    for f, c in zip(type, children):
        if c.type != f.type or len(c) != n:
            raise TypeError(f"children: field {f.name!r} needs {n} values of {f.type}, got "
                            f"{len(c)} of {c.type}")
    validity, nulls = _validity(valid, n)
    return pa.Array.from_buffers(type, n, [validity], null_count=nulls, children=list(children))


def array_from_list(values, type: pa.DataType) -> pa.Array:
    """The Arrow array of ``type`` holding Python ``values`` (None is null).

    What ``pyarrow.array(values, type=type)`` builds, without importing pandas. Lists
    are sequences (or None); structs are dicts keyed by field name (a missing key is
    null), or tuples in field order (or None). A 1-D NumPy array is taken as is for a
    primitive type. One difference: a float with a fraction for an integer type is
    refused (``pyarrow.array`` truncates it).

    Parameters
    ----------
    values : sequence or numpy.ndarray
    type : pyarrow.DataType
        See the module's docstring for the supported types.

    Examples
    --------
    >>> chunk = pa.struct([("id", pa.binary(2)), ("length", pa.uint32())])
    >>> a = array_from_list([[(b"ab", 5)], None, []], pa.list_(chunk))
    >>> a.to_pylist()
    [[{'id': b'ab', 'length': 5}], None, []]
    >>> array_from_list([1, 2.5], pa.float64()).to_pylist()
    [1.0, 2.5]
    """
    if not isinstance(type, pa.DataType):
        raise TypeError(f"type must be a pyarrow.DataType, got {type!r}")
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "biuf":
        return array_from_numpy(values, type)
    values = values if isinstance(values, (list, tuple)) else list(values)
    n = len(values)
    if pa.types.is_boolean(type) or pa.types.is_integer(type) or pa.types.is_floating(type) \
            or (pa.types.is_temporal(type) and type.bit_width in (32, 64)):
        dtype = np.dtype(bool) if pa.types.is_boolean(type) else numpy_dtype(type)
        vals, valid = _nulls_replaced(values, dtype.type(0).item())
        # NumPy would parse "1", or truncate 1.5 (as pyarrow.array does: refused here, since
        # it loses data), and take True as 1, where Arrow refuses them
        _check_numbers(vals, type, dtype)
        try:
            arr = np.fromiter(vals, dtype=dtype, count=n)
        except (TypeError, ValueError, OverflowError) as exc:
            raise TypeError(f"values: cannot convert them to {type} ({exc})") from None
        return array_from_numpy(arr, type, valid)
    if pa.types.is_fixed_size_binary(type):
        return _fixed_binary_array(values, type)
    if pa.types.is_string(type) or pa.types.is_large_string(type) or pa.types.is_binary(type) \
            or pa.types.is_large_binary(type):
        return _binary_array(values, type)
    if pa.types.is_list(type) or pa.types.is_large_list(type):
        vals, valid = _nulls_replaced(values, ())
        lengths = np.fromiter(map(len, vals), dtype=np.int64, count=n)
        flat = [x for v in vals for x in v]
        offsets = _offsets(lengths, pa.types.is_large_list(type), f"the {type} rows")
        return list_array(type, offsets, array_from_list(flat, type.value_type), valid)
    if pa.types.is_struct(type):
        # a null struct holds an empty, valid value in each child, as Arrow's builder does
        rows, valid = _nulls_replaced(values, _empty_value(type))
        names = type.names
        if any(builtins_type(r) is not tuple for r in rows):  # exact type: the fast case
            rows = [_struct_row(r, names) for r in rows]
        if any(len(r) != len(names) for r in rows):
            raise ValueError(f"values: a {type} value is a dict or a tuple of {len(names)}")
        cols = list(zip(*rows)) if rows else [()] * len(names)
        return struct_array(type, [array_from_list(c, f.type) for c, f in zip(cols, type)], valid)
    raise TypeError(f"type {type} is not supported here (see engine.store.arrow_build)")


def _struct_row(v, names) -> tuple:
    """A struct value as a tuple in field order; a dict without a field has it null, as
    pyarrow.array has it."""
    if isinstance(v, Mapping):
        return tuple(v.get(name) for name in names)
    try:
        return tuple(v)
    except TypeError:
        raise ValueError(f"values: a struct value is a dict or a tuple, got {v!r}") from None


def _check_numbers(vals: Sequence, type: pa.DataType, dtype: np.dtype) -> None:
    """Refuse what NumPy converts and Arrow does not: "1" (parsed), True for an integer
    and 1 for a boolean, and 1.5 for an integer (truncated, as pyarrow.array also does;
    refused here since it loses data)."""
    fine = {bool} if dtype.kind == "b" else {int} if dtype.kind in "iu" else {int, float}
    if set(map(builtins_type, vals)) <= fine:
        return  # the usual case, decided at C speed
    for v in vals:
        if dtype.kind == "b":
            bad = not isinstance(v, (bool, np.bool_))
        else:
            bad = isinstance(v, (str, bytes)) or (dtype.kind in "iu" and (
                isinstance(v, bool) or (isinstance(v, float) and not v.is_integer())))
        if bad:
            raise TypeError(f"values: {type} cannot hold {v!r}")


def _empty_value(type: pa.DataType):
    """The value Arrow's builder puts in a child slot under a null struct."""
    if pa.types.is_struct(type):
        return tuple(_empty_value(f.type) for f in type)
    if pa.types.is_fixed_size_binary(type):
        return bytes(type.byte_width)
    if pa.types.is_string(type) or pa.types.is_large_string(type):
        return ""
    if pa.types.is_binary(type) or pa.types.is_large_binary(type):
        return b""
    if pa.types.is_list(type) or pa.types.is_large_list(type):
        return ()
    return False if pa.types.is_boolean(type) else 0


def scalar_from_value(value, type: pa.DataType) -> pa.Scalar:
    """An Arrow scalar of ``type``: ``pyarrow.scalar(value, type)`` without importing pandas
    (pass it to ``pyarrow.compute`` functions instead of a Python value, which they convert
    with ``pyarrow.scalar``).

    Examples
    --------
    >>> import pyarrow.compute as pc
    >>> keys = array_from_list(["loss", "acc", "loss"], pa.string())
    >>> pc.equal(keys, scalar_from_value("loss", pa.string())).to_pylist()
    [True, False, True]
    """
    return array_from_list([value], type)[0]


def _column(value, field: pa.Field):
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        if value.type != field.type:
            raise TypeError(f"column {field.name!r} has type {value.type}, the schema says "
                            f"{field.type}")
        return value
    return array_from_list(value, field.type)


def table_from_columns(columns: Mapping, schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` (metadata kept) from one list, NumPy array or Arrow array per
    field: ``pyarrow.table(columns, schema=schema)`` without importing pandas.

    Examples
    --------
    >>> s = pa.schema([("seq", pa.int64()), ("commit", pa.string())], metadata={"v": "1"})
    >>> t = table_from_columns({"seq": [1, 2], "commit": ["a", "b"]}, s)
    >>> t.num_rows, t.schema.metadata
    (2, {b'v': b'1'})
    """
    if not isinstance(schema, pa.Schema):
        raise TypeError(f"schema must be a pyarrow.Schema, got {type(schema).__name__}")
    extra = set(columns) - set(schema.names)
    if extra:
        raise ValueError(f"columns {sorted(extra)} are not in the schema {schema.names}")
    missing = [n for n in schema.names if n not in columns]
    if missing:
        raise ValueError(f"columns: no values for the schema's fields {missing}")
    return pa.Table.from_arrays([_column(columns[f.name], f) for f in schema], schema=schema)


def table_from_rows(rows: Sequence[Mapping], schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` from row dicts (a missing key is null):
    ``pyarrow.Table.from_pylist(rows, schema=schema)`` without importing pandas.

    Examples
    --------
    >>> s = pa.schema([("column", pa.string()), ("p", pa.float64())])
    >>> table_from_rows([{"column": "x", "p": 0.5}, {"column": "y"}], s).to_pylist()
    [{'column': 'x', 'p': 0.5}, {'column': 'y', 'p': None}]
    """
    return table_from_columns({n: [r.get(n) for r in rows] for n in schema.names}, schema)


def numpy_from_array(array, dtype=None) -> np.ndarray:
    """A primitive Arrow array (or chunked array) as NumPy: ``to_numpy(zero_copy_only=False)``
    without importing pandas.

    A view of the values buffer when there is one chunk, no null and no cast. Nulls
    become NaN (integers then come back as float64, as ``to_numpy`` returns them);
    booleans with nulls come back as an object array with None.

    Parameters
    ----------
    array : pyarrow.Array or pyarrow.ChunkedArray
        Integer, float, boolean or fixed-width temporal values (temporals as their
        integers).
    dtype : numpy dtype, optional
        Convert to this dtype (a copy only if it differs).

    Examples
    --------
    >>> numpy_from_array(pa.chunked_array([array_from_list([1, None], pa.int32())])).tolist()
    [1.0, nan]
    >>> numpy_from_array(array_from_list([True, False], pa.bool_())).tolist()
    [True, False]
    """
    if isinstance(array, pa.ChunkedArray):
        parts = [numpy_from_array(c) for c in array.chunks]
        if not parts:
            out = np.zeros(0, bool if pa.types.is_boolean(array.type) else numpy_dtype(array.type))
        else:
            out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return out if dtype is None else out.astype(dtype, copy=False)
    if not isinstance(array, pa.Array):
        raise TypeError(f"array must be a pyarrow Array or ChunkedArray, got "
                        f"{type(array).__name__}")
    n, off = len(array), array.offset
    bufs = array.buffers()
    if pa.types.is_boolean(array.type):
        bits = np.frombuffer(bufs[1], np.uint8) if bufs[1] is not None else np.zeros(0, np.uint8)
        out = np.unpackbits(bits, bitorder="little", count=off + n)[off:].astype(bool)
    else:
        dt = numpy_dtype(array.type)
        out = np.frombuffer(bufs[1], dt, count=n, offset=off * dt.itemsize) if n else np.zeros(0, dt)
    if array.null_count:
        valid = np.unpackbits(np.frombuffer(bufs[0], np.uint8), bitorder="little",
                              count=off + n)[off:].astype(bool)
        if out.dtype == bool:
            out = out.astype(object)
            out[~valid] = None
        else:
            out = out.astype(np.float64 if out.dtype.kind in "iu" else out.dtype)
            out[~valid] = np.nan
    return out if dtype is None else out.astype(dtype, copy=False)
