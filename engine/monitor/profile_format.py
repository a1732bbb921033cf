"""The :class:`Profile` container: merge, JSON summary and the versioned Arrow IPC format.

Part of :mod:`engine.monitor.profile`; import the public names from there.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from ..store.arrow_build import array_from_list, array_from_numpy, list_array, numpy_from_array
from ..store.ipc import FILE_MAGIC, read_ipc
from .profile_base import FORMAT, InvalidColumn, ProfileFormatError
from .profile_categorical import CategoricalColumn
from .profile_numeric import NumericColumn
from .profile_text import TextColumn

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
    # from buffers: pyarrow.array would import pandas
    values = array_from_numpy(np.concatenate(parts) if parts else np.zeros(0, dtype))
    return list_array(typ, offsets, values, valid=[a is not None for a in arrays])


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
            "name": array_from_list([c.name for c in cols], pa.string()),
            "kind": array_from_list([c.kind for c in cols], pa.string()),
            "stats": array_from_list([json.dumps(c.stored_scalars(), allow_nan=False)
                                      for c in cols], pa.string()),
        }
        for field, (typ, dtype) in _LISTS.items():
            data[field] = _list_array([c.stored_arrays().get(field) for c in cols], typ, dtype)
        meta = {"format": FORMAT, "format_version": str(self.FORMAT_VERSION),
                "profile": json.dumps({"n_rows": self.n_rows, "params": self.params})}
        table = pa.table(data).replace_schema_metadata(meta)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, table.schema) as w:
            w.write_table(table)
        return sink.getvalue().to_pybytes()

    @classmethod
    def from_bytes(cls, data, name: str = "data") -> Profile:
        """Read :meth:`to_bytes` output; ``name`` names the file in errors.

        Raises :class:`ProfileFormatError` (a ``ValueError``) naming ``name`` for anything
        that is not a profile of this format: the bytes are read without trusting them
        (no compressed buffer, the profile's schema, every batch validated), and every
        column's stored fields are held to their types before a column is built. A newer
        ``format_version`` says to upgrade.
        """
        if not isinstance(data, (bytes, bytearray, memoryview, pa.Buffer)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")

        def bad(why: str) -> ProfileFormatError:
            return ProfileFormatError(f"{name} is not a readable mlops-engine profile: {why}")

        buf = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
        if bytes(memoryview(buf)[:6]) != FILE_MAGIC:
            raise ProfileFormatError(f"{name} is not an mlops-engine profile (not an Arrow IPC "
                                     "file)")
        table = read_ipc(buf, name, file=True, error=ProfileFormatError)
        meta = table.schema.metadata or {}
        if meta.get(b"format") != FORMAT.encode():
            raise ProfileFormatError(f"{name} is not an mlops-engine profile (no 'format: "
                                     "mlops-engine profile' in the schema metadata)")
        try:
            version = int(meta[b"format_version"])
        except (KeyError, ValueError):
            raise bad("it has no valid format_version") from None
        if version > cls.FORMAT_VERSION:
            raise ProfileFormatError(
                f"{name}: its profile format_version {version} is newer than this "
                f"mlops-engine can read (format_version {cls.FORMAT_VERSION}); upgrade "
                "mlops-engine to read it")
        if version < 1:
            raise bad(f"its format_version {version} is not valid")
        if not table.schema.remove_metadata().equals(STORED_SCHEMA):
            raise bad("its columns are not those of a profile (name, kind, stats, edges, hist, "
                      "sample, sample_keys, trigrams)")
        head = _json(meta.get(b"profile", b""), bad, "its 'profile' metadata")
        if not (isinstance(head, dict) and _count(head.get("n_rows"))
                and isinstance(head.get("params", {}), (dict, type(None)))):
            raise bad("its 'profile' metadata has no row count (n_rows) or params")
        for field in ("name", "kind", "stats"):
            if table.column(field).null_count:
                raise bad(f"its column {field!r} has nulls")
        arrays = {}
        for field, (_, dtype) in _LISTS.items():
            col = table.column(field).combine_chunks()
            offsets = numpy_from_array(col.offsets)  # not to_numpy: that imports pandas
            values = numpy_from_array(col.values, dtype)
            valid = numpy_from_array(col.is_valid())
            arrays[field] = [values[offsets[i]:offsets[i + 1]] if valid[i] else None
                             for i in range(len(col))]
        columns = {}
        for i, (cname, kind, stats) in enumerate(zip(table.column("name").to_pylist(),
                                                     table.column("kind").to_pylist(),
                                                     table.column("stats").to_pylist())):
            if kind not in _CLASSES:
                raise bad(f"column {cname!r} has unknown kind {kind!r}")
            if cname in columns:
                raise bad(f"it holds column {cname!r} twice")
            stored = _json(stats.encode(), bad, f"the stats of column {cname!r}")
            col_arrays = {f: a[i] for f, a in arrays.items()}
            problem = _stored_problem(kind, stored, col_arrays)
            if problem is not None:
                raise bad(f"column {cname!r} ({kind}): {problem}")
            columns[cname] = _CLASSES[kind].from_stored(cname, stored, col_arrays)
        return cls(head["n_rows"], columns, head.get("params"))

    def save(self, path) -> None:
        """Write :meth:`to_bytes` to ``path``.

        The bytes go to a temporary file in ``path``'s directory, are fsynced and then
        renamed over ``path``, so a reader never sees a partial profile. On any failure
        the temporary file is removed and the error names ``path``.

        Raises
        ------
        IsADirectoryError
            ``path`` is a directory.
        FileNotFoundError, NotADirectoryError
            ``path``'s directory does not exist, or is a file.
        OSError
            The file could not be written (permissions, a full disk), with ``path`` as
            its ``filename``.
        """
        path = os.fspath(path)
        if os.path.isdir(path):
            raise IsADirectoryError(f"cannot write the profile to {path!r}: {path!r} is a "
                                    "directory; give a file name, such as "
                                    f"{os.path.join(path, 'ref.profile')!r}")
        parent = os.path.dirname(path) or "."
        if not os.path.isdir(parent):
            cls, what = (NotADirectoryError, "is not a directory") if os.path.exists(parent) \
                else (FileNotFoundError, "does not exist")
            raise cls(f"cannot write the profile to {path!r}: {parent!r} {what}")
        data = self.to_bytes()
        # beside the destination (a rename never crosses file systems), unique per call
        tmp = os.path.join(parent, f".{os.path.basename(path)}.tmp-{os.getpid()}-"
                                   f"{secrets.token_hex(4)}")
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError) and exc.errno is not None:
                # the temporary name means nothing to the caller: name the path it gave
                raise OSError(exc.errno, exc.strerror, path) from None
            raise

    @classmethod
    def load(cls, path) -> Profile:
        """The profile in file ``path`` (:class:`ProfileFormatError` naming it if it is none)."""
        with open(os.fspath(path), "rb") as f:
            return cls.from_bytes(f.read(), repr(os.fspath(path)))


# ---------------------------------------------------------------------------
# Checks of stored profiles
# ---------------------------------------------------------------------------

STORED_SCHEMA = pa.schema([("name", pa.string()), ("kind", pa.string()), ("stats", pa.string())]
                          + [(f, t) for f, (t, _) in _LISTS.items()])


def _json(raw: bytes, bad, what: str):
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise bad(f"{what} is not JSON ({str(exc)[:100]})") from None


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 1 << 63


def _number(x) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool)
                         and abs(x) < 1e308 * 10)


def _str(x) -> bool:
    return isinstance(x, str)


def _opt_count(x) -> bool:
    return x is None or _count(x)


def _counts_by_name(x) -> bool:
    return isinstance(x, dict) and all(_str(k) and _count(v) for k, v in x.items())


def _pairs(x) -> bool:
    return isinstance(x, list) and all(isinstance(p, list) and len(p) == 2 and _str(p[0])
                                       and _count(p[1]) for p in x)


#: kind -> stored scalar -> check (what each column class's ``from_stored`` reads)
_STORED = {
    "numeric": {"dtype": _str, "count": _count, "nulls": _count, "nans": _count,
                "posinf": _count, "neginf": _count, "min": _number, "max": _number,
                "mean": _number, "m2": _number, "sample_size": _opt_count},
    "categorical": {"dtype": _str, "count": _count, "nulls": _count, "counts": _pairs,
                    "other": _count, "n_distinct": _count,
                    "truncated": lambda x: isinstance(x, bool), "top_k": _count},
    "text": {"dtype": _str, "count": _count, "nulls": _count, "empty": _count,
             "len_min": _opt_count, "len_max": _opt_count, "len_mean": _number,
             "len_m2": _number, "scripts": _counts_by_name, "script_values": _counts_by_name},
    "invalid": {"dtype": _str, "count": _count, "nulls": _count, "reason": _str},
}
#: kind -> the list fields its columns must have (not null)
_ARRAYS = {"numeric": ("edges", "hist", "sample", "sample_keys"), "text": ("trigrams",)}


def _stored_problem(kind: str, stored, arrays: dict) -> str | None:
    """What makes a stored column of ``kind`` unfit for its class's ``from_stored``, or None."""
    if not isinstance(stored, dict):
        return "its stats are not a JSON object"
    for key, ok in _STORED[kind].items():
        if key not in stored or not ok(stored[key]):
            return f"its stat {key!r} is {str(stored.get(key))[:80]!r}, missing or of the wrong type"
    for field in _ARRAYS.get(kind, ()):
        if arrays[field] is None:
            return f"it has no {field}"
    if kind in ("numeric", "text"):
        m2 = stored["m2" if kind == "numeric" else "len_m2"]
        if m2 is not None and not m2 >= 0:
            return f"its sum of squared deviations {m2} is negative"
    if kind == "numeric" and stored["posinf"] + stored["neginf"] > stored["count"]:
        return "it counts more infinite values than values"
    if kind == "text" and stored["empty"] > stored["count"]:
        return "it counts more empty strings than strings"
    if kind == "numeric":
        edges, hist = arrays["edges"], arrays["hist"]
        if len(hist) != (len(edges) + 1 if len(edges) else 0):
            return f"it has {len(edges)} histogram edges but {len(hist)} bins"
        if len(arrays["sample"]) != len(arrays["sample_keys"]):
            return "its sample and sample keys differ in length"
    return None
