"""The chunk store: config, codecs, packs and indexes, chunk lookup, both file-system layers."""

import json
import os

import blake3
import numpy as np
import pyarrow.fs as pafs
import pytest

from engine.store import Store, StoreCorruption, StoreFormatError
from engine.store.pack import (
    CODEC_LZ4,
    CODEC_RAW,
    CODEC_ZSTD,
    ENTRY_DTYPE,
    PackWriter,
    compress,
    decode_index,
    decompress,
    encode_index,
    pack_key,
)
from engine.store.store import ChunkIndex


@pytest.fixture(params=["local", "arrow"])
def store(request, tmp_path):
    root = str(tmp_path / "store")
    if request.param == "local":
        return Store(root, pack_max_bytes=50_000)
    return Store((pafs.LocalFileSystem(), root), pack_max_bytes=50_000)


def put(st: Store, blobs: list[bytes]) -> list[bytes]:
    w = st.writer()
    ids = []
    for b in blobs:
        cid = blake3.blake3(b).digest()
        codec, payload = compress(b)
        w.add(cid, len(b), codec, payload)
        ids.append(cid)
    w.close()
    st.absorb(w)
    return ids


def test_new_store_config(tmp_path):
    st = Store(tmp_path / "s")
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert cfg["format_version"] == 1 and cfg["hash"] == "blake3-256"
    assert cfg["chunking"] == {"algorithm": "gear-cdc", "gear": "mlops-engine gear table v1",
                               "avg_size": 65536, "min_size": 8192, "max_size": 131072}
    assert st.params.avg_size == 65536
    assert Store(tmp_path / "s").config == cfg  # reopening reads, never rewrites


def test_store_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no store"):
        Store(tmp_path / "none", create=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        Store(tmp_path / "file")
    Store(tmp_path / "s")
    cfg = tmp_path / "s" / "config.json"
    d = json.loads(cfg.read_text())
    d["format_version"] = 99
    cfg.write_text(json.dumps(d))
    with pytest.raises(StoreFormatError, match="format_version 99, newer"):
        Store(tmp_path / "s")
    cfg.write_text("{not json")
    with pytest.raises(StoreCorruption, match="not valid JSON"):
        Store(tmp_path / "s")
    with pytest.raises(ValueError, match="pack_max_bytes"):
        Store(tmp_path / "t", pack_max_bytes=0)
    with pytest.raises(TypeError, match="store must be a path"):
        Store(123)


@pytest.mark.parametrize("data, codecs", [
    (os.urandom(65536), {CODEC_RAW}),
    (b"abcd" * 16384, {CODEC_LZ4, CODEC_ZSTD}),
    (b"", {CODEC_RAW}),
    (b"x" * 10, {CODEC_RAW}),
])
def test_compress_round_trip(data, codecs):
    codec, payload = compress(data)
    assert codec in codecs
    if codec != CODEC_RAW:
        assert len(payload) <= 0.9 * len(data)
    assert decompress(codec, payload, len(data)) == data


def test_compress_needs_ten_percent():
    half = os.urandom(60000) + b"\0" * 4000  # ~6% compressible
    assert compress(half)[0] == CODEC_RAW
    more = os.urandom(40000) + b"\0" * 24000
    assert compress(more)[0] != CODEC_RAW


def test_pack_round_trip_and_many_packs(store):
    rng = np.random.default_rng(0)
    blobs = [rng.bytes(int(n)) for n in rng.integers(1, 20000, 40)] + [b"z" * 30000]
    ids = put(store, blobs)
    assert len(store.pack_ids()) > 3  # 50 kB packs
    for cid, b in zip(ids, blobs):
        assert store.read_chunk(cid) == b
    for pid in store.pack_ids():
        ent = store.read_index(pid)
        keys = [e.tobytes() for e in ent["id"]]
        assert keys == sorted(keys)
    reopened = Store(store.fs.root if store.fs.local else (store.fs.fs, store.fs.root))
    assert len(reopened.index) == len(blobs)
    assert reopened.read_chunk(ids[-1]) == blobs[-1]


def test_missing_chunk_is_named(store):
    with pytest.raises(StoreCorruption, match="referenced but not stored"):
        store.read_chunk(b"\1" * 32)


def test_abort_leaves_no_published_pack(tmp_path):
    st = Store(tmp_path / "s")
    w = st.writer()
    w.add(b"\2" * 32, 5, CODEC_RAW, b"hello")
    w.abort()
    assert st.pack_ids() == []
    assert list(st.fs.walk_files("tmp")) == []


def test_chunk_index_lookup_with_shared_prefixes():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 256, (5000, 32), dtype=np.uint8)
    ids[100:110, :8] = ids[99, :8]  # a run of equal 8-byte prefixes
    idx = ChunkIndex()
    for k in range(0, 5000, 1000):
        e = np.zeros(1000, ENTRY_DTYPE)
        e["id"] = ids[k:k + 1000]
        e["offset"] = np.arange(k, k + 1000)
        idx.add(f"p{k}", e)
    pos = idx.locate(ids)
    assert (pos >= 0).all()
    np.testing.assert_array_equal(idx.rows(pos)[0]["offset"], np.arange(5000))
    absent = rng.integers(0, 256, (300, 32), dtype=np.uint8)
    absent[:50, :8] = ids[99, :8]  # same prefix, different id
    assert (idx.locate(absent) == -1).all()
    assert idx.locate(np.zeros((0, 32), np.uint8)).shape == (0,)


@pytest.mark.parametrize("merge_min", [1 << 16, 50])
def test_chunk_index_packs_added_later_go_to_a_second_level(monkeypatch, merge_min):
    """Packs added after the first lookup are found (also with shared prefixes), with the
    right pack and offset, whether they sit in the small level or were merged."""
    monkeypatch.setattr(ChunkIndex, "MERGE_MIN", merge_min)
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    ids[2500:2505, :8] = ids[10, :8]  # later ids sharing a prefix with an early one
    idx = ChunkIndex()

    def part(lo, hi):
        e = np.zeros(hi - lo, ENTRY_DTYPE)
        e["id"], e["offset"] = ids[lo:hi], np.arange(lo, hi)
        return e

    idx.add("p0", part(0, 2000))
    assert (idx.locate(ids[:2000]) >= 0).all() and (idx.locate(ids[2000:]) == -1).all()
    for k, lo in enumerate(range(2000, 3000, 100)):
        idx.add(f"p{k + 1}", part(lo, lo + 100))
        pos = idx.locate(ids[:lo + 100])
        assert (pos >= 0).all()
        ent, pno = idx.rows(pos)
        np.testing.assert_array_equal(ent["offset"], np.arange(lo + 100))
        want = np.concatenate([np.zeros(2000, int), 1 + (np.arange(2000, lo + 100) - 2000) // 100])
        np.testing.assert_array_equal(pno, want)
        assert (idx.locate(ids[lo + 100:]) == -1).all()
    assert len(idx) == 3000
    merged = len(idx.entries) == 3000
    assert merged == (merge_min == 50)


def test_index_damage_is_detected():
    e = np.zeros(3, ENTRY_DTYPE)
    e["id"] = np.arange(96, dtype=np.uint8).reshape(3, 32)
    data = encode_index(e)
    assert len(decode_index(data, "x")) == 3
    with pytest.raises(StoreCorruption, match="truncated"):
        decode_index(data[:-5], "x.idx")
    with pytest.raises(StoreCorruption, match="truncated"):
        decode_index(data[:10], "x.idx")
    bad = bytearray(data)
    bad[40] ^= 1
    with pytest.raises(StoreCorruption, match="checksum"):
        decode_index(bytes(bad), "x.idx")
    bad = bytearray(data)
    bad[0:8] = b"NOTINDEX"
    with pytest.raises(StoreCorruption, match="magic"):
        decode_index(bytes(bad), "x.idx")
    newer = bytearray(data)
    newer[8:12] = (2).to_bytes(4, "little")
    body = bytes(newer[:-32])
    with pytest.raises(StoreCorruption, match="newer"):
        decode_index(body + blake3.blake3(body).digest(), "x.idx")


def test_truncated_index_file_names_it(tmp_path):
    st = Store(tmp_path / "s")
    put(st, [b"a" * 1000])
    pid = st.pack_ids()[0]
    p = tmp_path / "s" / pack_key(pid, "idx")
    p.write_bytes(p.read_bytes()[:-7])
    # readers skip it with a warning that names it; writers refuse the store, naming it
    st2 = Store(tmp_path / "s")
    with pytest.warns(UserWarning, match=f"{pid}.*mlops data verify"):
        assert len(st2.index) == 0
    assert pid in st2.damaged
    with pytest.raises(StoreCorruption, match=f"{pid}.*mlops data verify"):
        st2.require_intact()


def test_put_if_absent(tmp_path):
    st = Store(tmp_path / "s")
    assert st.fs.create_exclusive("a/b.json", b"one")
    assert not st.fs.create_exclusive("a/b.json", b"two")
    assert st.fs.read_bytes("a/b.json") == b"one"
    assert [f for f in os.listdir(tmp_path / "s" / "a") if f.endswith(".tmp")] == []


def test_pack_writer_publishes_in_background(tmp_path):
    st = Store(tmp_path / "s", pack_max_bytes=2048)
    w = PackWriter(st.fs, 2048)
    for i in range(20):
        w.add(bytes([i]) * 32, 1000, CODEC_RAW, bytes([i]) * 1000)
    published = w.close()
    assert len(published) == 10
    assert len(st.pack_ids()) == 10


def test_a_reader_finds_chunks_another_process_published_after_it_read_the_index(tmp_path):
    root = str(tmp_path / "s")
    reader = Store(root)
    (old,) = put(reader, [b"old chunk" * 100])
    assert reader.read_chunk(old) == b"old chunk" * 100  # its index is loaded now
    writer = Store(root)  # another process, as far as the reader can tell
    (new,) = put(writer, [b"new chunk" * 100])
    assert reader.read_chunk(new) == b"new chunk" * 100  # the index is read again
    assert [r.raw for r in reader.locate_many([old, new])] == [900, 900]
    with pytest.raises(StoreCorruption, match="referenced but not stored"):
        reader.read_chunk(blake3.blake3(b"never stored").digest())
