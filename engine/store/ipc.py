"""Reading Arrow IPC bytes from disk without trusting them.

``pyarrow.ipc.open_stream``/``open_file`` trust what a file says: a compressed buffer
starts with its uncompressed length (an int64), and Arrow allocates that many bytes
before it decompresses, so a 700-byte file claiming a TiB makes it allocate a TiB (or
fail with ``MemoryError``); a footer may point anywhere; a batch is not validated.
:func:`read_ipc` reads the same bytes as a sequence of messages instead, and before
Arrow decodes a record batch it reads the batch's message header itself (a
FlatBuffers table, :class:`_Flat`) to hold every buffer to the body and every
uncompressed length to a bound; then it checks the schema, decodes the batch and
validates it fully. Every failure is one error class naming the file.

The stream of an IPC *file* (``ARROW1`` magic, the messages, a footer, the magic
again) is read from its messages; the footer, which only indexes them, is not used.
"""

from __future__ import annotations

import struct

import pyarrow as pa

from .errors import StoreCorruption

FILE_MAGIC = b"ARROW1"
#: MessageHeader union members (Arrow's Message.fbs)
_SCHEMA, _DICTIONARY, _RECORD_BATCH = 1, 2, 3


class _Flat:
    """Bounds-checked reads of a FlatBuffers buffer (only what Arrow's ``Message`` needs)."""

    def __init__(self, buf: bytes, fail):
        self.b = buf
        self.fail = fail

    def u(self, fmt: str, pos: int):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.b):
            raise self.fail("its message header points outside itself")
        return struct.unpack_from(fmt, self.b, pos)[0]

    def root(self) -> int:
        return self.u("<I", 0)

    def field(self, table: int, i: int) -> int | None:
        """Position of field ``i`` of the table at ``table``, or None if it is absent."""
        vt = table - self.u("<i", table)
        if self.u("<H", vt) < 4 + 2 * i + 2:
            return None
        off = self.u("<H", vt + 4 + 2 * i)
        return table + off if off else None

    def scalar(self, table: int, i: int, fmt: str, default=0):
        p = self.field(table, i)
        return default if p is None else self.u(fmt, p)

    def ref(self, table: int, i: int) -> int | None:
        """Where the table or vector that field ``i`` refers to starts, or None."""
        p = self.field(table, i)
        return None if p is None else p + self.u("<I", p)

    def structs(self, table: int, i: int, size: int) -> list[int]:
        """Positions of the ``size``-byte structs of the vector in field ``i``."""
        v = self.ref(table, i)
        if v is None:
            return []
        n = self.u("<I", v)
        if v + 4 + n * size > len(self.b):
            raise self.fail("a vector of its message header runs past its end")
        return [v + 4 + k * size for k in range(n)]


def _batch_claims(meta: bytes, body: pa.Buffer | None, compressed_ok: bool, fail) -> int:
    """Bytes that decoding the record batch of message header ``meta`` will allocate (the
    uncompressed lengths its compressed buffers claim), after checking every buffer lies
    in the body."""
    fb = _Flat(meta, fail)
    msg = fb.root()
    batch = fb.ref(msg, 2)
    if batch is None:
        raise fail("a record batch message has no header")
    size = 0 if body is None else body.size
    compressed = fb.ref(batch, 3) is not None
    if compressed and not compressed_ok:
        raise fail("it holds compressed buffers, which this format never has")
    view = memoryview(body) if body is not None and size else memoryview(b"")
    claims = 0
    for pos in fb.structs(batch, 2, 16):
        offset, length = fb.u("<q", pos), fb.u("<q", pos + 8)
        if offset < 0 or length < 0 or offset + length > size:
            raise fail(f"a buffer ({offset}, {length}) lies outside its {size}-byte message body")
        if compressed and length:
            if length < 8:
                raise fail("a compressed buffer is shorter than its length prefix")
            (raw,) = struct.unpack_from("<q", view, offset)
            if raw < -1:
                raise fail(f"a compressed buffer claims {raw} bytes")
            claims += length - 8 if raw == -1 else raw
    return claims


def _fields(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}: {f.type}" for f in schema)


def read_ipc(data, where: str, *, file: bool | None = None, schema: pa.Schema | None = None,
             compressed: bool = False, max_raw: int = 0, error=StoreCorruption) -> pa.Table:
    """The table held by Arrow IPC bytes (stream or file format) read from disk.

    Parameters
    ----------
    data : bytes-like or pyarrow.Buffer
    where : str
        Names the file in errors (``"manifest of ds:v3"``, a path).
    file : bool, optional
        True: the IPC file format is required; False: the stream format; None: either.
    schema : pyarrow.Schema, optional
        The schema the data must have (field names and types; metadata is not compared).
    compressed : bool
        Whether compressed buffers are allowed (formats written with ``compression=``).
    max_raw : int
        The most bytes all compressed buffers together may claim uncompressed; a larger
        claim is refused before anything is allocated.
    error : exception class
        Raised, naming ``where``, for anything that is not such a table.
    """
    what = {True: "Arrow file", False: "Arrow stream", None: "Arrow IPC table"}[file]

    def fail(why: str):
        return error(f"{where} is not a readable {what}: {why}")

    buf = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    start = 0
    if bytes(memoryview(buf)[:6]) == FILE_MAGIC:
        if file is False:
            raise fail("it is an Arrow file")
        if buf.size < 16 or bytes(memoryview(buf)[-6:]) != FILE_MAGIC:
            raise fail("it starts like an Arrow file but does not end like one (truncated?)")
        start = 8
    elif file:
        raise fail("it does not start with the Arrow file magic")
    reader = pa.ipc.MessageReader.open_stream(pa.BufferReader(buf.slice(start)))
    got: pa.Schema | None = None
    batches = []
    claims = 0
    while True:
        try:
            msg = reader.read_next_message()
        except StopIteration:
            break
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise fail(str(exc)) from None
        if msg is None:
            break
        kind = msg.type
        try:
            if got is None:
                if kind != "schema":
                    raise fail(f"its first message is a {kind}, not the schema")
                got = pa.ipc.read_schema(msg)
                if schema is not None and not got.remove_metadata().equals(
                        schema.remove_metadata()):
                    raise fail(f"its schema is ({_fields(got)}), expected ({_fields(schema)})")
                if any(pa.types.is_dictionary(f.type) for f in got):
                    raise fail("it has dictionary-encoded fields")
                continue
            if kind != "record batch":
                raise fail(f"it holds a {kind} message")
            claims += _batch_claims(bytes(msg.metadata), msg.body, compressed, fail)
            if claims > max_raw:
                raise fail(f"its compressed buffers claim {claims} bytes, more than the "
                           f"{max_raw} this format allows")
            batch = pa.ipc.read_record_batch(msg, got)
            batch.validate(full=True)
        except (pa.ArrowException, OSError, ValueError, IndexError) as exc:
            if isinstance(exc, error):
                raise
            raise fail(str(exc)) from None
        batches.append(batch)
    if got is None:
        raise fail("it holds no schema")
    return pa.Table.from_batches(batches, got)
