"""On-disk formats, version 1: a committed store must stay readable, ids must not drift.

``tests/golden/store_v1`` was written by ``tests/golden/make_store_v1.py`` with
format_version 1. A change that breaks these tests changes the format: it needs
a new format_version and a reader for the old one, not a new fixture.
"""

import hashlib
import json
import os
import shutil
import sys

import numpy as np
import pytest

import engine.data as D
from engine.data import manifest as mf
from engine.kernels import CdcParams
from engine.store import Store
from engine.store.pack import ENTRY_DTYPE, HEADER, RECORD, encode_index

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "golden"))
import make_store_v1 as golden  # noqa: E402

V1_ID = "a26edc856d6258a815a28ee6710d24701d7ff6860961b6985d85d2627b39d6ae"
V2_ID = "a7bc9b43f678d0779832a35840e1b2d5f8eeae561509c247e6a5d94c482492e9"


@pytest.fixture
def golden_store(tmp_path):
    # A copy: tests must not touch the committed fixture (opening a store writes nothing,
    # but checkout and verify are run against the copy to be sure).
    dst = tmp_path / "store_v1"
    shutil.copytree(golden.STORE, dst, symlinks=True)
    return dst


def read_tree(root):
    out = {}
    for dp, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(dp, f)
            rel = os.path.relpath(p, root)
            out[rel] = ("link", os.readlink(p)) if os.path.islink(p) else (
                oct(os.stat(p).st_mode & 0o777), open(p, "rb").read())
    return out


def test_config_v1(golden_store):
    cfg = json.loads((golden_store / "config.json").read_text())
    assert cfg["format"] == "mlops-engine store" and cfg["format_version"] == 1
    assert cfg["chunking"] == {"algorithm": "gear-cdc", "gear": "mlops-engine gear table v1",
                               "avg_size": 256, "min_size": 64, "max_size": 1024}
    assert cfg["hash"] == "blake3-256" and cfg["pack_max_bytes"] == 8192


def test_golden_store_reads_and_verifies(golden_store, tmp_path):
    st = Store(golden_store, create=False)
    assert [v.ref for v in D.log("golden", store=st)] == ["golden:v2", "golden:v1"]
    assert D.resolve(st, "golden:v1").id == V1_ID
    assert D.resolve(st, "golden@latest").id == V2_ID
    assert D.resolve(st, "golden:v2").parent == V1_ID
    rep = D.verify(store=st)
    assert rep.ok and rep.versions == 2 and rep.packs >= 2
    codecs = {int(c) for pid in st.pack_ids() for c in st.read_index(pid)["codec"]}
    assert 0 in codecs and codecs - {0}, "fixture should hold raw and compressed chunks"
    for ref, make in (("golden:v1", [golden.tree_v1]), ("golden:v2", [golden.tree_v1, golden.tree_v2])):
        expect_dir = tmp_path / f"expect-{ref[-2:]}"
        expect_dir.mkdir()
        for step in make:
            step(str(expect_dir))
        out = tmp_path / f"out-{ref[-2:]}"
        D.checkout(ref, out, store=st)
        assert read_tree(out) == read_tree(expect_dir)


def test_golden_diff(golden_store):
    d = D.diff("golden:v1", "golden:v2", store=golden_store)
    assert [e["path"] for e in d.added] == ["added.txt"]
    assert d.renamed == [{"from": "nested/dir/small.txt", "to": "nested/moved.txt", "size": 19}]
    assert [e["path"] for e in d.modified] == ["text.csv"]
    assert d.removed == []


def test_same_tree_gives_the_golden_ids_today(tmp_path):
    st = Store(tmp_path / "fresh", params=CdcParams(avg_size=256, min_size=64, max_size=1024))
    src = tmp_path / "src"
    src.mkdir()
    golden.tree_v1(str(src))
    assert D.snapshot(src, "again", store=st).id == V1_ID
    golden.tree_v2(str(src))
    assert D.snapshot(src, "again", store=st).id == V2_ID


def test_manifest_schema_v1(golden_store):
    man = D.resolve(Store(golden_store), "golden:v1").manifest()
    assert man.schema.metadata[b"format_version"] == b"1"
    assert [(f.name, str(f.type)) for f in man.schema] == [
        ("path", "string"), ("kind", "string"), ("mode", "uint32"), ("size", "uint64"),
        ("mtime_ns", "int64"), ("file_id", "fixed_size_binary[32]"), ("target", "string"),
        ("chunks", "list<item: struct<id: fixed_size_binary[32], length: uint32>>"),
    ]
    assert man.column("path").to_pylist() == sorted(man.column("path").to_pylist())
    assert mf.version_id(man) == V1_ID


def test_binary_layouts_v1():
    assert HEADER.size == 16 and RECORD.size == 48 and ENTRY_DTYPE.itemsize == 56
    e = np.zeros(2, ENTRY_DTYPE)
    e["id"][0] = 7
    e["id"][1] = 3
    e["offset"] = [64, 16]
    e["stored"] = [10, 20]
    e["raw"] = [30, 40]
    e["codec"] = [2, 0]
    data = encode_index(e)
    assert data[:8] == b"MLOPSIX\0" and int.from_bytes(data[8:12], "little") == 1
    assert len(data) == 16 + 2 * 56 + 32
    assert data[16] == 3  # sorted by id
    assert hashlib.sha256(data).hexdigest() == GOLDEN_INDEX_SHA256
    assert RECORD.pack(b"\1" * 32, 2, 30, 10)[32:] == bytes([2, 0, 0, 0]) + (30).to_bytes(4, "little") + (
        10).to_bytes(4, "little") + bytes(4)


def test_version_id_canonical_form():
    man = mf.build([
        {"path": "b", "kind": "file", "mode": 0o644, "size": 3, "mtime_ns": 1,
         "file_id": b"\x11" * 32, "target": None, "chunks": [(b"\x22" * 32, 3)]},
        {"path": "a", "kind": "symlink", "mode": 0o777, "size": 0, "mtime_ns": 2,
         "file_id": None, "target": "b", "chunks": None},
    ])
    import blake3

    expect = blake3.blake3(
        b"mlops-engine dataset version v1\n"
        + b"a\0" + b"l" + (0o777).to_bytes(4, "little") + (0).to_bytes(8, "little") + b"b\0"
        + b"b\0" + b"f" + (0o644).to_bytes(4, "little") + (3).to_bytes(8, "little") + b"\x11" * 32
    ).hexdigest()
    assert mf.version_id(man) == expect
    # times never enter the id
    man2 = man.set_column(4, "mtime_ns", __import__("pyarrow").array([9, 9], "int64"))
    assert mf.version_id(man2) == expect


GOLDEN_INDEX_SHA256 = "db5494aa7479b1ea6729a9e4f2453dc09d92ff20c742657027cc044c9d87d077"
