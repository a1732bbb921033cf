"""Dataset versions on S3 (a local moto server, tests/s3/server.py): the data layer's
calls of tests/test_data.py and tests/test_data_tables.py with an ``s3://`` store.

Unmarked-soak tests run in ``make test`` (a few seconds); the ``soak`` ones (several
packs and repacking, concurrent snapshots from several processes) in ``make soak``.
"""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pyarrow as pa
import pytest

import engine.data as D
from engine.store import Store
from engine.store.fs import ArrowFS, open_fs

pytestmark = pytest.mark.s3

SPAWN = mp.get_context("spawn")


def make_tree(root, seed=0, big=600_000):
    rng = np.random.default_rng(seed)
    os.makedirs(root / "sub" / "deeper", exist_ok=True)
    (root / "big.bin").write_bytes(rng.bytes(big))
    (root / "empty").write_bytes(b"")
    (root / "sub" / "a.txt").write_text("alpha\n" * 1000)
    (root / "sub" / "deeper" / "b.bin").write_bytes(rng.bytes(70_000))
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("big.bin", root / "link")
    return root


def same_tree(a, b) -> bool:
    for dp, _, files in os.walk(a):
        for f in files:
            pa_ = os.path.join(dp, f)
            pb = os.path.join(b, os.path.relpath(pa_, a))
            if os.path.islink(pa_):
                assert os.readlink(pa_) == os.readlink(pb), pa_
            else:
                assert open(pa_, "rb").read() == open(pb, "rb").read(), pa_
                assert os.stat(pa_).st_mode == os.stat(pb).st_mode, pa_
    return True


def bucket_prefix(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len("s3://"):].partition("?")[0].partition("/")
    return bucket, prefix


def leftovers(s3_server, uri) -> list[str]:
    """Temporaries (of writes, packs, probes) left under the store: none may stay."""
    return [k for k in s3_server.keys(*bucket_prefix(uri))
            if (k.startswith("tmp/") and not k.endswith("/")) or k.endswith(".tmp")]


# ----------------------------------------------------------------------------- fast


def test_directory_versions_on_s3(s3_server, s3_store, tmp_path):
    tree = make_tree(tmp_path / "src")
    v1 = D.snapshot(tree, "ds", "first", store=s3_store)
    assert (v1.ref, v1.number, v1.parent) == ("ds:v1", 1, None)
    assert isinstance(Store(s3_store).fs, ArrowFS)
    out = tmp_path / "out"
    r = D.checkout("ds:v1", out, store=s3_store)
    assert (r.files, r.links) == (5, 1) and same_tree(tree, out)
    assert D.snapshot(tree, "ds", store=s3_store).unchanged

    with open(tree / "big.bin", "r+b") as f:
        f.seek(300_000)
        f.write(b"X" * 100)
    (tree / "added.txt").write_text("new file")
    os.unlink(tree / "empty")
    v2 = D.snapshot(tree, "ds", "second", store=s3_store)
    assert v2.number == 2 and v2.parent == v1.id
    assert [v.ref for v in D.log("ds", store=s3_store)] == ["ds:v2", "ds:v1"]
    d = D.diff("ds:v1", "ds:v2", store=s3_store)
    assert [e["path"] for e in d.added] == ["added.txt"]
    assert [e["path"] for e in d.removed] == ["empty"]
    assert [e["path"] for e in d.modified] == ["big.bin"]
    assert D.verify(store=s3_store).ok

    rep = D.gc(store=s3_store, keep_last=1, grace=0)
    assert rep.versions_deleted == ["ds:v1"]
    assert [v.ref for v in D.log("ds", store=s3_store)] == ["ds:v2"]
    assert D.verify(store=s3_store).ok
    D.checkout("ds:v2", tmp_path / "out2", store=s3_store)
    assert same_tree(tree, tmp_path / "out2")
    (tree / "more.txt").write_text("more")
    assert D.snapshot(tree, "ds", store=s3_store).ref == "ds:v3"  # numbers never reused
    assert leftovers(s3_server, s3_store) == []


def test_table_versions_on_s3(s3_store):
    rng = np.random.default_rng(1)
    n = 20_000
    t1 = pa.table({"id": np.arange(n), "x": rng.normal(size=n),
                   "name": [f"row-{i}" for i in range(n)]})
    v1 = D.snapshot(t1, "tbl", store=s3_store)
    assert v1.record["format"] == "table" and v1.record["num_rows"] == n
    assert D.load_table("tbl:v1", store=s3_store).equals(t1)
    extra = pa.table({"id": np.arange(10**7, 10**7 + 50), "x": np.zeros(50),
                      "name": ["new"] * 50})
    t2 = pa.concat_tables([t1.slice(0, n // 2), extra, t1.slice(n // 2)])
    v2 = D.snapshot(t2, "tbl", store=s3_store)
    assert D.load_table(v2.ref, store=s3_store).equals(t2)
    d = D.table_diff("tbl:v1", "tbl:v2", key="id", store=s3_store)
    assert (d.num_added, d.num_removed, d.num_changed) == (50, 0, 0)
    assert D.verify(store=s3_store).ok


def test_put_if_absent_on_s3_is_a_conditional_put(s3_store):
    fs = open_fs(s3_store)
    assert isinstance(fs, ArrowFS) and fs.object_store
    assert fs.create_exclusive("registry/log/x.json", b"first") is True
    assert fs.create_exclusive("registry/log/x.json", b"second") is False
    assert fs.read_bytes("registry/log/x.json") == b"first"  # the loser changed nothing
    assert open_fs(s3_store).create_exclusive("registry/log/x.json", b"third") is False
    # the same through a SubTreeFileSystem over S3, as a (file system, path) store
    from pyarrow.fs import FileSystem, SubTreeFileSystem

    s3, base = FileSystem.from_uri(s3_store)
    sub = open_fs((SubTreeFileSystem(base.rsplit("/", 1)[0], s3), base.rsplit("/", 1)[1]))
    assert sub.object_store and sub.read_bytes("registry/log/x.json") == b"first"
    assert sub.create_exclusive("registry/log/x.json", b"fourth") is False
    assert sub.create_exclusive("registry/log/y.json", b"fifth") is True
    assert fs.read_bytes("registry/log/y.json") == b"fifth"


def test_object_store_files_behave_as_the_store_expects(s3_store):
    fs = open_fs(s3_store)
    fs.makedirs("a/b")  # nothing to make on an object store
    assert fs.list("a") == [] and not fs.exists("a/b")
    fs.write_atomic("a/b/c.json", b"one")
    fs.write_atomic("a/b/c.json", b"two")  # replaced whole
    assert fs.read_bytes("a/b/c.json") == b"two" and fs.size("a/b/c.json") == 3
    assert fs.read_range("a/b/c.json", 1, 2) == b"wo"
    assert fs.list("a") == ["b"] and fs.list("a/b") == ["c.json"]
    assert list(fs.walk_files("a")) == ["a/b/c.json"]
    assert abs(fs.mtime("a/b/c.json") - __import__("time").time()) < 300
    fs.rename("a/b/c.json", "d/c.json")
    assert not fs.exists("a/b/c.json") and fs.read_bytes("d/c.json") == b"two"
    fs.delete("d/c.json")
    fs.delete("d/c.json")  # deleting what is gone is not an error
    # a lock file released between a listing and its stat reads as gone, as on POSIX
    with pytest.raises(FileNotFoundError):
        fs.mtime("d/c.json")
    with pytest.raises(FileNotFoundError):
        fs.size("d/c.json")
    with pytest.raises(FileNotFoundError):
        fs.read_bytes("d/c.json")


def test_gc_removes_crash_leftovers_on_s3(s3_store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(os.urandom(50_000))
    D.snapshot(src, "ds", store=s3_store)
    fs = Store(s3_store).fs
    with fs.fs.open_output_stream(fs.path("tmp/dead.pack.tmp")) as f:
        f.write(b"junk")
    fs.write_atomic("packs/zz/zz00.pack", b"unpublished")
    assert D.gc(store=s3_store, grace=3600).temporaries_removed == 0
    assert D.gc(store=s3_store, grace=0).temporaries_removed == 2
    assert not fs.exists("tmp/dead.pack.tmp") and not fs.exists("packs/zz/zz00.pack")
    assert D.verify(store=s3_store).ok


# ----------------------------------------------------------------------------- soak


@pytest.mark.soak
def test_many_packs_gc_repack_on_s3(s3_server, tmp_path):
    uri = s3_server.uri("mlops-test", "many-packs-" + os.urandom(4).hex())
    Store(uri, pack_max_bytes=1 << 20)
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(5)
    for _ in range(3):
        (src / "data.bin").write_bytes(rng.bytes(3 << 20))  # each version all new
        D.snapshot(src, "ds", store=uri)
    keep = (src / "data.bin").read_bytes()
    rep = D.gc(store=uri, keep_last=1, grace=0)
    assert rep.versions_deleted == ["ds:v1", "ds:v2"] and rep.packs_deleted >= 4
    assert D.verify(store=uri).ok
    D.checkout("ds:v3", tmp_path / "o", store=uri)
    assert (tmp_path / "o" / "data.bin").read_bytes() == keep
    assert leftovers(s3_server, uri) == []


def _snapshotter(i, uri, cache, src, n, barrier, q):
    try:
        os.environ["MLOPS_CACHE_DIR"] = cache
        got = []
        barrier.wait()
        for j in range(n):
            with open(os.path.join(src, "f.txt"), "w") as f:
                f.write(f"writer {i} version {j}\n")
            got.append((D.snapshot(src, "shared", f"{i}-{j}", store=uri).number, f"{i}-{j}"))
        q.put((i, got))
    except BaseException as exc:  # the parent fails with it
        q.put((i, repr(exc)))


@pytest.mark.soak
def test_concurrent_snapshots_number_versions_gap_free_on_s3(s3_store, tmp_path):
    Store(s3_store)
    procs_n, n = 4, 5
    barrier, q = SPAWN.Barrier(procs_n), SPAWN.Queue()
    procs = []
    for i in range(procs_n):
        src = tmp_path / f"src{i}"
        src.mkdir()
        procs.append(SPAWN.Process(target=_snapshotter, args=(
            i, s3_store, str(tmp_path / f"cache{i}"), str(src), n, barrier, q)))
    for p in procs:
        p.start()
    results = dict(q.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(60)
    bad = {i: r for i, r in results.items() if isinstance(r, str)}
    assert not bad, bad
    told = sorted(x for r in results.values() for x in r)
    assert [num for num, _ in told] == list(range(1, procs_n * n + 1))  # no gap, no twin
    for v in D.log("shared", store=s3_store):
        assert dict((num, msg) for num, msg in told)[v.number] == v.message
