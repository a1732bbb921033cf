"""engine.store.pipeline directly: bytes in memory, a file, a tree, a stream, into a store."""

import os
import subprocess
import sys

import numpy as np
import pytest

import engine.store.pipeline as P
from engine.store import Store
from engine.store.pack import CODEC_RAW

from conftest import SMALL, random_bytes


@pytest.fixture
def st(tmp_path):
    return Store(tmp_path / "store", params=SMALL)


def ids_of(data, params=SMALL):
    """(id, length) pairs of ``data`` by chunk_bytes: what every entry point must give."""
    t = P.chunk_bytes(data, params, output="numpy")
    return [(bytes(r["id"]), int(r["length"])) for r in t]


def blob_pairs(blob):
    return [(bytes.fromhex(c), n) for c, n in blob["chunks"]]


def stored_codecs(st):
    return {bytes(e["id"]): int(e["codec"]) for pid in st.pack_ids() for e in st.read_index(pid)}


def write_tree(root, sizes, distinct):
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, n in enumerate(sizes):
        p = root / f"f{i:03d}.bin"
        p.write_bytes(random_bytes(n, i % distinct))
        paths.append(str(p))
    return paths


# ----------------------------------------------------------------------------- bytes in memory


def test_bytes_in_memory_round_trip_with_the_ids_of_chunk_bytes(st):
    data = random_bytes(300_000, 1)
    with P.ChunkSink(st) as sink:
        blob = sink.put_bytes(data)
    assert blob_pairs(blob) == ids_of(data)
    assert blob["id"] == P.file_id(P.chunk_bytes(data, SMALL)).hex() and blob["size"] == len(data)
    assert st.get_blob(blob) == data
    assert st.put_blob(data, st.writer()) == blob  # Store.put_blob is the same pipeline


def test_any_buffer_without_a_copy(st):
    data = random_bytes(100_000, 2)
    arr = np.frombuffer(data, np.uint32)
    with P.ChunkSink(st) as sink:
        blobs = [sink.put_bytes(b) for b in (data, bytearray(data), memoryview(data), arr)]
    assert all(b == blobs[0] for b in blobs) and blobs[0]["size"] == len(data)
    with pytest.raises(TypeError, match="data must be a bytes-like object"):
        P.ChunkSink(st).put_bytes("text")


@pytest.mark.parametrize("block_size", [50_000, 1 << 20])
@pytest.mark.parametrize("workers", [1, 3])
def test_large_buffers_are_cut_in_blocks_with_the_same_result(st, monkeypatch, block_size, workers):
    data = random_bytes(2_000_000, 3)
    monkeypatch.setattr(P, "BLOCK_SIZE", block_size)  # blocks hashed and packed on threads
    with P.ChunkSink(st, parallel=workers > 1) as sink:
        blob = sink.put_bytes(data, workers=workers)
    assert blob_pairs(blob) == ids_of(data)
    assert st.get_blob(blob) == data


@pytest.mark.parametrize("workers", [None, 1, 2])
def test_a_buffer_cut_on_every_core_gives_the_serial_cuts_and_ids(st, monkeypatch, workers):
    # Above PARALLEL_CUT_BYTES the candidate scan runs on the pool and the spans are hashed
    # (and packed) there; lowered here so that several scan blocks and spans are in play.
    import blake3

    from engine.kernels import cut_points

    monkeypatch.setattr(P, "PARALLEL_CUT_BYTES", 1 << 20)
    data = random_bytes(6_000_000, 9)
    c = P.Chunker(SMALL)
    serial = np.concatenate([c.update(data), c.finish()])
    want = [(blake3.blake3(data[a:b]).digest(), b - a) for a, b in zip([0, *serial[:-1]], serial)]
    t = P.chunk_bytes(data, SMALL, workers=workers, block_size=700_000, output="numpy")
    assert (t["offset"] + t["length"] == serial).all()
    assert (t["offset"] + t["length"] == cut_points(data, SMALL)).all()
    assert [(bytes(r["id"]), int(r["length"])) for r in t] == want
    with P.ChunkSink(st, parallel=True) as sink:
        blob = sink.put_bytes(data, workers=workers)
    assert blob_pairs(blob) == want and st.get_blob(blob) == data


def test_small_chunks_use_the_metadata_sizes(st):
    data = random_bytes(200_000, 4)
    with P.ChunkSink(st) as sink:
        blob = sink.put_bytes(data, small_chunks=True)
    assert blob_pairs(blob) == ids_of(data, P.meta_params())


@pytest.mark.parametrize("piece", [1, 777, 100_000, 3 << 20])
def test_a_stream_written_piece_by_piece_is_one_blob(st, piece):
    data = random_bytes(5 << 20, 5)
    with P.ChunkSink(st) as sink:
        s = sink.open_stream()
        pieces = [data[i:i + piece] for i in range(0, len(data), piece)] if piece > 1 else [
            data[:10], data[10:11], data[11:]]
        for p in pieces:
            assert s.write(p) == len(p)
        blob = s.close()
    assert blob_pairs(blob) == ids_of(data) and blob["size"] == len(data)
    assert st.get_blob(blob) == data


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("n", [0, 1, 63, 70_000, 1_000_000])
@pytest.mark.parametrize("read_block", [4096, 65_536, 8 << 20])
def test_a_file_gives_the_ids_of_chunk_bytes_for_any_block_size(st, tmp_path, monkeypatch, n,
                                                                 read_block):
    data = random_bytes(n, n)
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    monkeypatch.setattr(P, "READ_BLOCK", read_block)
    hashed = P.read_file(str(p), None, SMALL)  # no sink: hashing only, nothing stored
    assert hashed.chunks == ids_of(data) and hashed.stat.st_size == n
    assert hashed.id == P.file_id(P.chunk_file(p, SMALL, block_size=read_block))
    assert st.pack_ids() == []
    with P.ChunkSink(st) as sink:
        stored = sink.put_file(str(p))
    assert stored == hashed
    assert b"".join(st.read_chunk(c) for c, _ in stored.chunks) == data


def test_small_files_around_the_minimum_chunk_size(tmp_path):
    # Files up to min_size skip the chunker (one chunk, whatever the bytes): the same
    # chunks as chunk_bytes on each side of that size.
    m = SMALL.min_size
    for n in (1, 2, m - 1, m, m + 1, 3 * m):
        data = random_bytes(n, n)
        path = tmp_path / f"f{n}"
        path.write_bytes(data)
        assert P.read_file(str(path), params=SMALL).chunks == ids_of(data), n


def test_a_file_that_is_a_symlink_or_missing(tmp_path):
    (tmp_path / "t").write_bytes(b"x")
    os.symlink(tmp_path / "t", tmp_path / "link")
    with pytest.raises(P.FileChangedError, match="became a symlink"):
        P.read_file(str(tmp_path / "link"))
    with pytest.raises(P.FileVanishedError, match="vanished"):
        P.read_file(str(tmp_path / "missing"))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_tree_on_any_number_of_threads(st, tmp_path, workers, monkeypatch):
    sizes = [0, 10, 5000, 300_000, 70_000] * 6
    paths = write_tree(tmp_path / "tree", sizes, distinct=5)
    monkeypatch.setattr(P, "BATCH_FILES", 4)  # several batches in flight
    monkeypatch.setattr(P, "INLINE_BELOW", 6000)  # small files in this thread, others on the pool
    with P.ChunkSink(st, parallel=workers > 1) as sink:
        got = dict(P.read_files(paths, sink.put_file, size=os.path.getsize, workers=workers))
    assert sorted(got) == sorted(paths)
    for p in paths:
        data = open(p, "rb").read()
        assert got[p].chunks == ids_of(data)
        assert b"".join(st.read_chunk(c) for c, _ in got[p].chunks) == data
    assert sink.new_bytes == sum(sizes) // 6  # the same bytes six times: stored once


def test_read_files_keeps_small_files_in_the_calling_thread():
    import threading

    me = threading.current_thread()
    sizes = [10, 5_000_000, 20, 7_000_000, 30, 9_000_000] * 5
    items = list(enumerate(sizes))
    got = list(P.read_files(items, lambda it: threading.current_thread(), size=lambda it: it[1],
                            workers=2, inline_below=1000))
    assert sorted(it for it, _ in got) == items  # each item exactly once
    for (i, n), thread in got:
        assert (thread is me) == (n < 1000), (i, n)
    # all small: no thread at all; all big: none in this thread
    assert all(t is me for _, t in P.read_files([(0, 1), (1, 2)], lambda it: threading.current_thread(),
                                                size=lambda it: it[1], workers=3, inline_below=10))
    assert not any(t is me for _, t in P.read_files([(0, 50)], lambda it: threading.current_thread(),
                                                    size=lambda it: it[1], workers=3, inline_below=10))


@pytest.mark.parametrize("bad", [0, 1])
def test_read_files_raises_what_a_small_or_big_file_raised(bad):
    sizes = [10, 5_000_000]

    def read(n):
        if n == sizes[bad]:
            raise OSError(f"cannot read {n}")
        return n

    with pytest.raises(OSError, match=f"cannot read {sizes[bad]}"):
        list(P.read_files(sizes, read, size=lambda n: n, workers=2, inline_below=1000))


def test_file_workers_small_job_runs_in_the_calling_thread():
    assert P.file_workers(P.SMALL_JOB_BYTES, P.BATCH_FILES) == 1
    assert P.file_workers(P.SMALL_JOB_BYTES + 1, 1) == P.default_workers() + 1
    assert P.file_workers(10, 1, workers=3) == 3


# ----------------------------------------------------------------------------- dedup, compression


def test_dedup_against_chunks_already_stored(st):
    a = random_bytes(400_000, 6)
    b = a[:200_000] + random_bytes(50_000, 7) + a[200_000:]
    with P.ChunkSink(st) as first:
        first.put_bytes(a)
    assert first.new_bytes == len(a)
    with P.ChunkSink(st) as again:
        again.put_bytes(a)
    assert again.new_bytes == 0 and again.writer.bytes_written == 0 and again.writer.published == []
    with P.ChunkSink(st) as edited:
        blob = edited.put_bytes(b)
    assert 50_000 <= edited.new_bytes < 50_000 + 4 * SMALL.max_size
    assert st.get_blob(blob) == b


def test_dedup_within_one_write(st):
    part = random_bytes(100_000, 8)
    with P.ChunkSink(st) as sink:
        sink.put_bytes(part * 4)
    assert sink.new_bytes < len(part) + 4 * SMALL.max_size


def test_compression_is_chosen_per_chunk(st):
    rng = np.random.default_rng(9)
    text = (b"the quick brown fox jumps over the lazy dog " * 3000)[:120_000]
    noise = rng.integers(0, 256, 120_000, dtype=np.uint8).tobytes()
    data = text + noise
    with P.ChunkSink(st) as sink:
        blob = sink.put_bytes(data)
    codecs = stored_codecs(st)
    text_ids = {c for c, _ in ids_of(text)} - {c for c, _ in ids_of(noise)}
    noise_only = [c for c, _ in blob_pairs(blob) if c not in text_ids][-10:]
    assert all(codecs[c] == CODEC_RAW for c in noise_only)  # random bytes are kept raw
    assert any(codecs[c] != CODEC_RAW for c in text_ids if c in codecs)  # text is compressed
    assert st.get_blob(blob) == data


# ----------------------------------------------------------------------------- failures


def test_an_exception_midway_publishes_no_partial_pack(st, monkeypatch):
    calls = {"n": 0}
    real = P.compress

    def failing(raw):
        calls["n"] += 1
        if calls["n"] == 50:
            raise OSError("disk on fire")
        return real(raw)

    monkeypatch.setattr(P, "compress", failing)
    with pytest.raises(OSError, match="disk on fire"):
        with P.ChunkSink(st) as sink:
            sink.put_bytes(random_bytes(300_000, 10))
    assert st.pack_ids() == [] and st.fs.list("tmp") == []
    assert len(Store(st.root).index) == 0


def test_a_crash_midway_publishes_no_partial_pack(tmp_path):
    root = tmp_path / "store"
    Store(root, params=SMALL)
    code = f"""
import os, numpy as np
import engine.store.pipeline as P
from engine.store import Store
real, n = P.compress, [0]
def crash(raw):
    n[0] += 1
    if n[0] == 200:
        os._exit(3)  # killed in the middle of a pack: no clean-up runs
    return real(raw)
P.compress = crash
st = Store({str(root)!r})
with P.ChunkSink(st) as sink:
    sink.put_bytes(np.random.default_rng(1).integers(0, 256, 1 << 20, dtype=np.uint8))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == 3, r.stderr.decode()
    st = Store(root)
    assert st.pack_ids() == [] and len(st.index) == 0
    assert [f for f in st.fs.list("tmp") if f.endswith(".pack.tmp")]  # garbage, for gc


def test_bad_arguments():
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        P.chunk_bytes(b"x", workers=0)
    with pytest.raises(ValueError, match="block_size must be a positive integer"):
        P.chunk_file(__file__, block_size=-1)
