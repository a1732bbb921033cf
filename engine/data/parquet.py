"""Arrow tables as Parquet bytes laid out for the content-defined-chunking store.

* :func:`as_arrow_table` -- a ``pyarrow.Table`` from a Table, a RecordBatch or a
  pandas DataFrame (pandas is imported only when a DataFrame is passed);
* :func:`table_to_parquet_bytes` / :func:`parquet_bytes_to_table` -- a table as
  Parquet bytes laid out for a content-defined-chunking (CDC) store, and back.

Parquet layout
--------------
:func:`table_to_parquet_bytes` always writes with :data:`PARQUET_WRITE_OPTIONS`:

``use_content_defined_chunking={"min_chunk_size": 32 KiB, "max_chunk_size": 128 KiB, "norm_level": 0}``
    The writer cuts data pages where a rolling hash of the *values* says so, not
    every N values, so rows inserted or appended change only the pages around
    them; every other page is byte-identical to the previous version's and the
    store's own chunker (8/64/128 KiB) finds the same chunks again. Pages of
    32-128 KiB (measured before encoding) match the store's chunk sizes; the
    Arrow default (256 KiB-1 MiB) loses a whole large page per edit per column.
``compression="none"``
    Compression is the store's job: it compresses every chunk (lz4/zstd).
    A compressed page is an opaque blob, so Parquet-level compression makes the
    store's chunker see different bytes around every edit.
``use_dictionary=False``
    A dictionary page sits at the start of each column chunk and the indices in
    every later page depend on it: one new value can change a whole column, and
    high-cardinality columns overflow the dictionary (1 MiB) and fall back to
    plain encoding at a row that moves with every insert. Plain encoding keeps
    pages a function of their own values only.
``write_statistics=True``
    Min/max/null counts per page and per column chunk, for readers' predicate
    pushdown. They are local to each page (and the footer), so they cost no dedup.
``row_group_size=1 << 20``
    Rows per row group, fixed here rather than left to the library default. A row
    group boundary moves with an insert, which costs about one page per column at
    each boundary after it; one million rows keeps that small.
``store_schema=True``
    The Arrow schema is kept in the footer (``ARROW:schema``) so types such as
    timestamp time zones, ``large_string`` and dictionary columns read back as
    written. Schema metadata (for example pandas' own) is kept as well.
``version="2.6"``, ``data_page_version="1.0"``, ``data_page_size=1 MiB``,
``write_page_index=False``, ``write_page_checksum=False``
    Pinned so that a change of library default does not change the bytes.

Measured with pyarrow 26 and the store's default chunker, on the 200,000-row table
of ``tests/test_tables.py`` (two int64, a float64 with NaN, two string columns;
10 MB), share of the new file's bytes in chunks the old file already has, over
four seeds:

=====================  ===============  =====================
edit                   these settings   same without CDC
=====================  ===============  =====================
insert 100 rows (mid)  92-96%           72-74%
append 1,000 rows      93-95%           94-96%
=====================  ===============  =====================

Appends dedup well either way (only the tail of each column changes); inserts need
CDC. On 3,000,000 rows (three row groups), 100 rows inserted near the start keep
98.9% with CDC and 54% without. Alternatives measured on a similar table (means of
three seeds, insert / append): ``compression="zstd"`` 83% / 84% with 32-128 KiB
pages and 67% / 84% with the default 256 KiB-1 MiB pages; dictionary encoding
84% / 92%; the default page sizes without zstd 86% / 92%. Once the store has
compressed its chunks, the first version takes about 3.3 MB here either way
(2.9 MB with Parquet zstd), and each edit adds about 0.24 MB (0.47 MB or more with
Parquet zstd).

Determinism: the same table gives the same bytes on the same pyarrow version,
whatever its chunk layout in memory (no timestamps or random ids are written).
Bytes may differ across pyarrow versions: the encoder and the CDC parameters
are the library's, and the footer records the writer (``created_by``, such as
``parquet-cpp-arrow version 26.0.1``). A DataFrame's pandas metadata records the
pandas version too. Compare table *contents* (``Table.equals``), not bytes,
across versions.

Examples
--------
>>> import pyarrow as pa
>>> a = pa.table({"id": [1, 2, 3], "x": [1.0, 2.0, 3.0]})
>>> parquet_bytes_to_table(table_to_parquet_bytes(a)).equals(a)
True
"""

from __future__ import annotations

import inspect
import types
import warnings

import pyarrow as pa
import pyarrow.parquet as pq

# Parquet CDC page sizes, measured before encoding (see the module docstring).
CDC_OPTIONS = types.MappingProxyType(
    {"min_chunk_size": 32 * 1024, "max_chunk_size": 128 * 1024, "norm_level": 0}
)

#: Keyword arguments of every ``pyarrow.parquet.write_table`` call made here.
PARQUET_WRITE_OPTIONS = types.MappingProxyType({
    "version": "2.6",
    "data_page_version": "1.0",
    "compression": "none",
    "use_dictionary": False,
    "write_statistics": True,
    "row_group_size": 1 << 20,
    "data_page_size": 1 << 20,
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": False,
    "use_byte_stream_split": False,
    "use_content_defined_chunking": dict(CDC_OPTIONS),
})

_CDC_SUPPORTED = "use_content_defined_chunking" in inspect.signature(pq.write_table).parameters
_cdc_warned = False


# ----------------------------------------------------------------------------- conversion


def _looks_like_dataframe(obj) -> bool:
    return any(
        cls.__name__ == "DataFrame" and cls.__module__.split(".")[0] == "pandas"
        for cls in type(obj).__mro__
    )


def _as_table(obj, name: str) -> pa.Table:
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    if _looks_like_dataframe(obj):
        import pandas as pd

        if isinstance(obj, pd.DataFrame):
            return pa.Table.from_pandas(obj)
    raise TypeError(
        f"{name} must be a pyarrow.Table, a pyarrow.RecordBatch or a pandas.DataFrame, "
        f"got {type(obj).__module__}.{type(obj).__qualname__}"
    )


def as_arrow_table(table) -> pa.Table:
    """Return ``table`` as a ``pyarrow.Table``.

    Parameters
    ----------
    table : pyarrow.Table, pyarrow.RecordBatch or pandas.DataFrame
        A Table is returned as is; a RecordBatch becomes a one-chunk Table; a
        DataFrame goes through ``pyarrow.Table.from_pandas`` with its defaults (a
        RangeIndex is kept as metadata only, any other index becomes columns).

    Returns
    -------
    pyarrow.Table

    Raises
    ------
    TypeError
        ``table`` is of any other type.

    Examples
    --------
    >>> import pyarrow as pa
    >>> batch = pa.RecordBatch.from_pydict({"id": [1, 2]})
    >>> as_arrow_table(batch).num_rows
    2
    """
    return _as_table(table, "table")


def table_to_parquet_bytes(table) -> bytes:
    """Serialize a table to Parquet bytes laid out for a content-defined-chunking store.

    The writer settings are :data:`PARQUET_WRITE_OPTIONS` (see the module
    docstring for why): content-defined data pages of 32-128 KiB, no Parquet
    compression (the store compresses chunks), no dictionary encoding, statistics
    on, one row group per 2**20 rows, the Arrow schema stored.

    Parameters
    ----------
    table : pyarrow.Table, pyarrow.RecordBatch or pandas.DataFrame
        Anything :func:`as_arrow_table` accepts.

    Returns
    -------
    bytes
        A complete Parquet file. The same table gives the same bytes on the same
        pyarrow version, whatever its chunk layout in memory; other pyarrow
        versions may write other bytes (the footer's ``created_by`` names the
        writer). Should this pyarrow lack content-defined chunking (before 21.0),
        the file is written without it, with a warning: it reads back the same but
        deduplicates worse.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"id": [1, 2, 3]})
    >>> data = table_to_parquet_bytes(t)
    >>> data[:4], data == table_to_parquet_bytes(t)
    (b'PAR1', True)
    """
    global _cdc_warned
    table = _as_table(table, "table")
    options = dict(PARQUET_WRITE_OPTIONS)
    options["use_content_defined_chunking"] = dict(CDC_OPTIONS)
    if not _CDC_SUPPORTED:  # pragma: no cover - pyarrow < 21
        del options["use_content_defined_chunking"]
        if not _cdc_warned:
            _cdc_warned = True
            warnings.warn(
                f"pyarrow {pa.__version__} has no Parquet content-defined chunking; "
                "Parquet files will deduplicate poorly (pyarrow >= 21 needed)",
                RuntimeWarning,
                stacklevel=2,
            )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    return sink.getvalue().to_pybytes()


def parquet_bytes_to_table(data) -> pa.Table:
    """Read Parquet bytes (as written by :func:`table_to_parquet_bytes`) into a table.

    Parameters
    ----------
    data : bytes, bytearray, memoryview or pyarrow.Buffer
        A complete Parquet file.

    Returns
    -------
    pyarrow.Table
        With the Arrow schema stored in the file, if any.

    Raises
    ------
    TypeError
        ``data`` is not bytes-like.
    pyarrow.ArrowInvalid
        (a ``ValueError``) ``data`` is not a valid Parquet file.

    Examples
    --------
    >>> import pyarrow as pa
    >>> t = pa.table({"s": ["a", None]})
    >>> parquet_bytes_to_table(table_to_parquet_bytes(t)).to_pydict()
    {'s': ['a', None]}
    """
    if isinstance(data, pa.Buffer):
        buf = data
    elif isinstance(data, (bytes, bytearray, memoryview)):
        buf = pa.py_buffer(data)
    else:
        raise TypeError(
            f"data must be bytes, bytearray, memoryview or pyarrow.Buffer, "
            f"got {type(data).__module__}.{type(data).__qualname__}"
        )
    return pq.ParquetFile(pa.BufferReader(buf)).read()


# ----------------------------------------------------------------------------- diff


