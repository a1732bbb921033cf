"""Versioned datasets: snapshot, checkout, diff, status, list, log, verify, gc, and table versions.

Examples
--------
>>> import tempfile, pathlib, engine.data as data
>>> src = pathlib.Path(tempfile.mkdtemp()); (src / "x.csv").write_text("a,b\\n1,2\\n")
8
>>> store = tempfile.mkdtemp()
>>> v1 = data.snapshot(src, name="toy", store=store)
>>> res = data.checkout("toy@latest", tempfile.mkdtemp(), store=store)
>>> res.files
1
"""

from .compare import DiffResult, diff, status
from .ingest import FileChangedError, FileVanishedError, open_store, snapshot, using_store
from .maint import DatasetSummary, GcReport, PurgeResult, datasets, gc, log, purge
from .restore import CheckoutResult, checkout
from .verify import VerifyReport, verify
from .version import Version, resolve, versions


def load_table(ref, *, store=None):
    """The ``pyarrow.Table`` of a table version (one made by ``snapshot(table, ...)``)."""
    from .tables import parquet_bytes_to_table

    with using_store(store) as st:
        v = resolve(st, ref)
        if v.record.get("format") != "table":
            raise ValueError(f"{v.ref} is a version of files, not of a table; get its files with "
                             f"`mlops data checkout {v.ref} DIR` (Python: engine.data.checkout)")
        man = v.manifest()
        chunks = man.column("chunks")[0].as_py()
        data = b"".join(st.read_chunk(c["id"]) for c in chunks)
    return parquet_bytes_to_table(data)


def table_diff(a, b, key, *, store=None):
    """Rows added, removed and changed by ``key`` between two tables or table versions."""
    from .tables import table_diff as _table_diff

    def as_table(x):
        return load_table(x, store=store) if isinstance(x, (str, Version)) else x

    return _table_diff(as_table(a), as_table(b), key)


__all__ = [
    "CheckoutResult",
    "DatasetSummary",
    "DiffResult",
    "FileChangedError",
    "FileVanishedError",
    "GcReport",
    "PurgeResult",
    "Version",
    "VerifyReport",
    "checkout",
    "datasets",
    "diff",
    "gc",
    "load_table",
    "log",
    "open_store",
    "purge",
    "resolve",
    "snapshot",
    "status",
    "table_diff",
    "verify",
    "versions",
]
