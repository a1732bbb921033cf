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
from .profile_base import FORMAT, InvalidColumn
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
            offsets = numpy_from_array(col.offsets)  # not to_numpy: that imports pandas
            values = numpy_from_array(col.values, dtype)
            valid = numpy_from_array(col.is_valid())
            arrays[field] = [values[offsets[i]:offsets[i + 1]] if valid[i] else None
                             for i in range(len(col))]
        columns = {}
        for i, (name, kind, stats) in enumerate(zip(table.column("name").to_pylist(),
                                                    table.column("kind").to_pylist(),
                                                    table.column("stats").to_pylist())):
            if kind not in _CLASSES:
                raise ValueError(f"column {name!r} has unknown kind {kind!r}")
            columns[name] = _CLASSES[kind].from_stored(name, json.loads(stats),
                                                       {f: a[i] for f, a in arrays.items()})
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
        with open(os.fspath(path), "rb") as f:
            return cls.from_bytes(f.read())
