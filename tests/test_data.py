"""Dataset versions: snapshot, checkout, diff, log, verify, gc, references, stat cache."""

import os
import time

import numpy as np
import pytest

import engine.data as D
import engine.data.ingest as snap_mod
import engine.store.pipeline as pipeline
from engine.data import manifest as mf
from engine.store import AmbiguousReference, Store, UnknownVersion


def make_tree(root, seed=0, big=2_000_000):
    rng = np.random.default_rng(seed)
    os.makedirs(root / "sub" / "deeper", exist_ok=True)
    (root / "big.bin").write_bytes(rng.bytes(big))
    (root / "empty").write_bytes(b"")
    (root / "sub" / "a.txt").write_text("alpha\n" * 1000)
    (root / "sub" / "deeper" / "b.bin").write_bytes(rng.bytes(70_000))
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("big.bin", root / "link")
    os.symlink("/etc/hostname", root / "abs_link")
    os.symlink("missing-target", root / "dangling")
    return root


def age(root, seconds=100):
    """Push mtimes into the past, so the stat cache may trust them (not racy)."""
    t = time.time() - seconds
    for dp, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(dp, f)
            if not os.path.islink(p):
                os.utime(p, (t, t))


def same_tree(a, b):
    for dp, _, fs in os.walk(a):
        for f in fs:
            pa_ = os.path.join(dp, f)
            pb = os.path.join(b, os.path.relpath(pa_, a))
            if os.path.islink(pa_):
                assert os.readlink(pa_) == os.readlink(pb), pa_
            else:
                assert open(pa_, "rb").read() == open(pb, "rb").read(), pa_
                assert os.stat(pa_).st_mode == os.stat(pb).st_mode, pa_
    return True


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "src")


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "store")


def test_snapshot_and_checkout_round_trip(tree, store, tmp_path):
    v = D.snapshot(tree, "ds", "first", store=store)
    assert (v.ref, v.number, v.parent, v.message) == ("ds:v1", 1, None, "first")
    assert v.files == 8 and v.bytes == sum(
        os.path.getsize(tree / p) for p in ["big.bin", "empty", "sub/a.txt", "sub/deeper/b.bin", "run.sh"])
    r = D.checkout("ds:v1", tmp_path / "out", store=store)
    assert (r.files, r.links) == (5, 3)
    assert same_tree(tree, tmp_path / "out")
    assert os.stat(tmp_path / "out" / "run.sh").st_mode & 0o111
    assert os.stat(tmp_path / "out" / "big.bin").st_mtime_ns == os.stat(tree / "big.bin").st_mtime_ns


def test_same_tree_same_id_anywhere(tmp_path):
    a = make_tree(tmp_path / "a", seed=3)
    b = make_tree(tmp_path / "b", seed=3)
    age(b, 5000)  # other mtimes, other inodes, other store
    va = D.snapshot(a, "x", store=tmp_path / "s1")
    vb = D.snapshot(b, "y", store=tmp_path / "s2")
    assert va.id == vb.id
    os.chmod(b / "run.sh", 0o700)
    assert D.snapshot(b, "y", store=tmp_path / "s2").id != va.id


def test_unchanged_tree_commits_nothing(tree, store):
    v1 = D.snapshot(tree, "ds", store=store)
    again = D.snapshot(tree, "ds", store=store)
    assert again.unchanged and again.ref == "ds:v1" and again.id == v1.id
    assert [v.ref for v in D.log("ds", store=store)] == ["ds:v1"]


def test_versions_chain_and_log(tree, store):
    v1 = D.snapshot(tree, "ds", store=store)
    (tree / "new.txt").write_text("n")
    v2 = D.snapshot(tree, "ds", "second", store=store)
    assert v2.parent == v1.id and v2.number == 2
    assert [v.ref for v in D.log("ds", store=store)] == ["ds:v2", "ds:v1"]
    assert D.resolve(Store(store), "ds@latest").id == v2.id
    assert D.resolve(Store(store), "ds").id == v2.id
    assert D.resolve(Store(store), "ds:1").id == v1.id
    assert D.resolve(Store(store), v1.id[:10]).id == v1.id
    assert D.resolve(Store(store), f"ds:{v2.id[:8]}").id == v2.id


def test_reference_errors(tree, store):
    D.snapshot(tree, "ds", store=store)
    st = Store(store)
    with pytest.raises(UnknownVersion, match="no version ds:v7"):
        D.resolve(st, "ds:v7")
    with pytest.raises(UnknownVersion, match="no dataset named 'other'"):
        D.resolve(st, "other@latest")
    with pytest.raises(UnknownVersion, match="unknown alias 'prod'"):
        D.resolve(st, "ds@prod")
    with pytest.raises(UnknownVersion, match="no version matches"):
        D.resolve(st, "ffffffffffff")
    with pytest.raises(ValueError, match="malformed"):
        D.resolve(st, "ds:banana")
    with pytest.raises(ValueError, match="malformed"):
        D.resolve(st, "bad name:v1")
    with pytest.raises(ValueError, match="non-empty string"):
        D.resolve(st, "")
    with pytest.raises(ValueError, match="non-empty string"):
        D.resolve(st, 42)
    with pytest.raises(UnknownVersion):
        D.log("nope", store=store)


def test_ambiguous_prefix(tmp_path, store):
    from engine.data.version import _by_prefix

    for i in range(20):  # 20 ids over 16 hex digits: two share a first digit
        d = tmp_path / f"t{i}"
        d.mkdir()
        (d / "f").write_text(str(i))
        D.snapshot(d, f"n{i}", store=store)
    st = Store(store)
    firsts = [v.id[0] for n in st.list_names("dataset") for v in D.versions(st, n)]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    with pytest.raises(AmbiguousReference, match="give more digits"):
        _by_prefix(st, shared, st.list_names("dataset"), shared)


def test_checkout_subset_and_errors(tree, store, tmp_path):
    D.snapshot(tree, "ds", store=store)
    r = D.checkout("ds", tmp_path / "o", store=store, paths=["sub", "run.sh"])
    assert r.files == 3 and r.links == 0
    assert (tmp_path / "o" / "sub" / "deeper" / "b.bin").exists()
    assert not (tmp_path / "o" / "big.bin").exists()
    with pytest.raises(FileNotFoundError, match="'nope' is not in the version"):
        D.checkout("ds", tmp_path / "o2", store=store, paths=["nope"])
    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError):
        D.checkout("ds", tmp_path / "afile", store=store)


def _forge_version(store, paths):
    """Commit a version whose manifest has the given (possibly hostile) paths."""
    st = Store(store)
    w = st.writer()
    blob_file = st.put_blob(b"payload", w)
    entries = [{"path": p, "kind": "file", "mode": 0o644, "size": 7, "mtime_ns": 0,
                "file_id": bytes.fromhex(blob_file["id"]), "target": None,
                "chunks": [(bytes.fromhex(c), n) for c, n in blob_file["chunks"]]} for p in paths]
    man = mf.build(entries)
    blob = st.put_blob(mf.to_bytes(man), w)
    w.close()
    st.absorb(w)
    return snap_mod._commit(st, "evil", None, mf.version_id(man), blob, len(paths), 7, "x", "files", {})


@pytest.mark.parametrize("bad", ["../escape", "/etc/evil", "a/../../b", "a//b", "./a"])
def test_checkout_refuses_paths_outside_dest(store, tmp_path, bad):
    v = _forge_version(store, ["ok.txt", bad])
    with pytest.raises(ValueError, match="refusing"):
        D.checkout(v.ref, tmp_path / "dest", store=store)
    assert not (tmp_path / "dest" / "ok.txt").exists()  # rejected before anything is written
    assert not (tmp_path / "escape").exists()


def test_checkout_never_writes_through_a_symlink_out_of_dest(store, tmp_path):
    v = _forge_version(store, ["sub/file.txt"])
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "sub")
    with pytest.raises(ValueError, match="'sub' in dest is a symlink"):
        D.checkout(v.ref, dest, store=store)
    assert list(outside.iterdir()) == []


def _forge_link_version(store, name, link, target):
    """A version holding one symlink ``link -> target``."""
    st = Store(store)
    w = st.writer()
    man = mf.build([{"path": link, "kind": "symlink", "mode": 0o777, "size": 0, "mtime_ns": 0,
                     "file_id": b"\0" * 32, "target": target, "chunks": []}])
    blob = st.put_blob(mf.to_bytes(man), w)
    w.close()
    st.absorb(w)
    return snap_mod._commit(st, name, None, mf.version_id(man), blob, 1, 0, "x", "files", {})


def test_checkout_creates_nothing_through_a_link_an_earlier_checkout_planted(store, tmp_path):
    # issue 15, defect 1: a link `lnk -> OUT` checked out into D, then a version holding
    # lnk/a/b/c/f.txt checked out into the same D: directories used to appear under OUT
    outside = tmp_path / "OUT"
    outside.mkdir()
    dest = tmp_path / "D"
    first = _forge_link_version(store, "links", "lnk", str(outside))
    D.checkout(first.ref, dest, store=store)
    assert os.readlink(dest / "lnk") == str(outside)
    second = _forge_version(store, ["lnk/a/b/c/f.txt", "ok.txt"])
    with pytest.raises(ValueError, match="'lnk' in dest is a symlink"):
        D.checkout(second.ref, dest, store=store)
    assert list(outside.iterdir()) == []           # nothing created outside
    assert not (dest / "ok.txt").exists()           # refused before any write
    # a link that stays inside dest is not followed either
    (dest / "real").mkdir()
    os.unlink(dest / "lnk")
    os.symlink(dest / "real", dest / "lnk")
    with pytest.raises(ValueError, match="never follows a link"):
        D.checkout(second.ref, dest, store=store)
    assert list((dest / "real").iterdir()) == []


def test_checkout_refuses_a_manifest_with_a_link_and_paths_under_it(store, tmp_path):
    st = Store(store)
    w = st.writer()
    blob_file = st.put_blob(b"payload", w)
    entries = [{"path": "lnk", "kind": "symlink", "mode": 0o777, "size": 0, "mtime_ns": 0,
                "file_id": b"\0" * 32, "target": str(tmp_path / "OUT"), "chunks": []},
               {"path": "lnk/f.txt", "kind": "file", "mode": 0o644, "size": 7, "mtime_ns": 0,
                "file_id": bytes.fromhex(blob_file["id"]), "target": None,
                "chunks": [(bytes.fromhex(c), n) for c, n in blob_file["chunks"]]}]
    man = mf.build(entries)
    blob = st.put_blob(mf.to_bytes(man), w)
    w.close()
    st.absorb(w)
    v = snap_mod._commit(st, "both", None, mf.version_id(man), blob, 2, 7, "x", "files", {})
    with pytest.raises(ValueError, match="also holds 'lnk' as a symlink"):
        D.checkout(v.ref, tmp_path / "D", store=store)
    assert not (tmp_path / "OUT").exists()


def test_checkout_refuses_duplicate_paths(store, tmp_path):
    v = _forge_version(store, ["a.txt", "a.txt"])
    with pytest.raises(ValueError, match="holds the path 'a.txt' twice"):
        D.checkout(v.ref, tmp_path / "D", store=store)
    assert not (tmp_path / "D" / "a.txt").exists()


def test_checkout_removes_the_temporaries_of_a_killed_checkout(store, tmp_path):
    # issue 15, defect 9
    v = _forge_version(store, ["sub/f.txt", "g.txt"])
    dest = tmp_path / "D"
    (dest / "sub").mkdir(parents=True)
    left = [dest / ".g.txt.0123abcd.mlops-tmp", dest / "sub" / ".f.txt.deadbeef.mlops-tmp"]
    for p in left:
        p.write_bytes(b"x" * 1000)
    os.symlink("/etc", dest / "h.txt.cafef00d.mlops-tmp")  # a stray link temporary
    (dest / "mine.txt").write_text("kept")
    D.checkout(v.ref, dest, store=store)
    assert sorted(p.name for p in dest.rglob("*")) == ["f.txt", "g.txt", "mine.txt", "sub"]
    assert os.path.exists("/etc")  # the link was removed, not what it pointed at


def test_diff(tree, store):
    D.snapshot(tree, "ds", store=store)
    os.rename(tree / "sub" / "a.txt", tree / "sub" / "renamed.txt")
    with open(tree / "big.bin", "r+b") as f:
        f.seek(500_000)
        f.write(b"X" * 100)
    (tree / "added.txt").write_text("new file")
    os.unlink(tree / "empty")
    D.snapshot(tree, "ds", store=store)
    d = D.diff("ds:v1", "ds:v2", store=store)
    assert [e["path"] for e in d.added] == ["added.txt"]
    assert [e["path"] for e in d.removed] == ["empty"]
    assert d.renamed == [{"from": "sub/a.txt", "to": "sub/renamed.txt", "size": 6000}]
    assert [e["path"] for e in d.modified] == ["big.bin"]
    m = d.modified[0]
    assert 0 < m["bytes_changed"] <= 2 * 131072 and m["chunks_reused"] >= m["chunks"] - 2
    assert d.unchanged == 5 and not d.identical
    assert '"renamed"' in d.to_json()
    assert D.diff("ds:v2", "ds:v2", store=store).identical


def test_stat_cache_skips_reading_unchanged_files(tree, store, monkeypatch):
    age(tree)
    D.snapshot(tree, "ds", store=store)
    calls = []
    real = snap_mod._read_file
    monkeypatch.setattr(snap_mod, "_read_file", lambda e, *a, **k: calls.append(e.rel) or real(e, *a, **k))
    (tree / "touched.txt").write_text("t")
    D.snapshot(tree, "ds", store=store)
    assert calls == ["touched.txt"]
    # same size and mtime put back, new content: ctime changed, so it is re-read
    st = os.stat(tree / "sub" / "a.txt")
    (tree / "sub" / "a.txt").write_text("ALPHA\n" * 1000)
    os.utime(tree / "sub" / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    calls.clear()
    v3 = D.snapshot(tree, "ds", store=store)
    assert "sub/a.txt" in calls
    out = tree.parent / "o3"
    D.checkout(v3.ref, out, store=store, paths=["sub/a.txt"])
    assert (out / "sub" / "a.txt").read_text().startswith("ALPHA")


def _count_builds(monkeypatch):
    """Count manifest builds and file reads of the snapshots that follow."""
    calls = {"build": 0, "read": []}
    real_build, real_read = snap_mod._manifest, snap_mod._read_file

    def build(*a, **k):
        calls["build"] += 1
        return real_build(*a, **k)

    monkeypatch.setattr(snap_mod, "_manifest", build)
    monkeypatch.setattr(snap_mod, "_read_file",
                        lambda e, *a, **k: calls["read"].append(e.rel) or real_read(e, *a, **k))
    return calls


def _age_links(root, seconds=100):
    t = time.time() - seconds
    for dp, _, fs in os.walk(root):
        for f in fs:
            if os.path.islink(os.path.join(dp, f)):
                os.utime(os.path.join(dp, f), (t, t), follow_symlinks=False)


def test_unchanged_tree_reuses_the_remembered_manifest(tree, store, monkeypatch):
    age(tree)
    _age_links(tree)
    v1 = D.snapshot(tree, "ds", store=store)
    calls = _count_builds(monkeypatch)
    v = D.snapshot(tree, "ds", store=store)
    assert v.ref == "ds:v1" and v.unchanged and v.id == v1.id
    assert calls == {"build": 0, "read": []}  # no file read, no manifest built
    b = D.snapshot(tree, "other", store=store)  # another name, same tree: same manifest
    assert b.id == v1.id and b.record["manifest"] == v1.record["manifest"]
    assert calls["build"] == 0
    out = tree.parent / "o"
    D.checkout("other", out, store=store)
    assert same_tree(tree, out)


def test_unchanged_tree_path_sees_a_retargeted_link_and_a_new_file(tree, store, monkeypatch):
    age(tree)
    _age_links(tree)
    D.snapshot(tree, "ds", store=store)
    calls = _count_builds(monkeypatch)
    os.unlink(tree / "link")
    os.symlink("run.sh", tree / "link")  # same name, other target: no file changed
    v2 = D.snapshot(tree, "ds", store=store)
    assert v2.ref == "ds:v2" and calls["build"] == 1 and calls["read"] == []
    assert [e["path"] for e in D.diff("ds:v1", "ds:v2", store=store).modified] == ["link"]
    assert os.readlink(D.checkout("ds:v2", tree.parent / "o2", store=store).dest + "/link") == "run.sh"
    (tree / "sub" / "new.txt").write_text("new")
    v3 = D.snapshot(tree, "ds", store=store)
    assert v3.ref == "ds:v3" and calls["read"] == ["sub/new.txt"]
    os.unlink(tree / "sub" / "new.txt")
    v4 = D.snapshot(tree, "ds", store=store)
    assert v4.id == v2.id and v4.ref == "ds:v4"


def test_unchanged_tree_whose_chunks_gc_removed_is_stored_again(tree, store, tmp_path, monkeypatch):
    age(tree)
    _age_links(tree)
    D.snapshot(tree, "a", store=store)  # the stat cache of `tree` remembers this manifest
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    D.snapshot(other, "a", store=store)
    D.gc(store=store, keep_last=1, grace=0)  # a:v1 and its chunks are gone
    calls = _count_builds(monkeypatch)
    v = D.snapshot(tree, "b", store=store)
    assert calls["build"] == 1 and "big.bin" in calls["read"]
    out = tmp_path / "o"
    D.checkout(v.ref, out, store=store)
    assert same_tree(tree, out)
    assert D.verify(store=store).ok


def test_a_recent_link_keeps_the_tree_from_being_remembered(tree, store, monkeypatch):
    age(tree)  # files old, links just made: racy
    D.snapshot(tree, "ds", store=store)
    calls = _count_builds(monkeypatch)
    D.snapshot(tree, "ds", store=store)
    assert calls["build"] == 1 and calls["read"] == []  # files from the cache, manifest rebuilt


def test_manifest_from_the_cache_equals_one_built_from_reading_everything(tree, store, tmp_path,
                                                                          monkeypatch):
    age(tree)
    D.snapshot(tree, "ds", store=store)
    (tree / "sub" / "a.txt").write_text("changed\n" * 500)  # one miss among hits, links between
    (tree / "zz_new.bin").write_bytes(np.random.default_rng(5).bytes(300_000))
    v = D.snapshot(tree, "ds", store=store)
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "cold-cache"))  # nothing vouched for
    fresh = D.snapshot(tree, "ds2", store=store)
    assert fresh.id == v.id
    assert v.manifest().equals(fresh.manifest())


def test_chunk_lists_gather_like_python_lists():
    from engine.data.statcache import ChunkLists

    rng = np.random.default_rng(3)
    lists = [[(rng.bytes(32), int(rng.integers(1, 1 << 20))) for _ in range(rng.integers(0, 5))]
             for _ in range(40)]
    more = [[(rng.bytes(32), 7)] * int(k) for k in rng.integers(0, 3, 9)]
    pool = ChunkLists.concat([ChunkLists.from_pylists(lists), ChunkLists.from_pylists(more),
                              ChunkLists.from_pylists([])])
    every = lists + more
    rows = rng.integers(-1, len(every), 200)
    got = pool.take(rows).to_arrow().to_pylist()
    want = [None if r < 0 else [{"id": i, "length": n} for i, n in every[r]] for r in rows]
    assert got == want
    assert ChunkLists.from_arrow(pool.to_arrow()).take(range(len(every))).to_arrow().to_pylist() \
        == [[{"id": i, "length": n} for i, n in row] for row in every]
    assert pool.take([]).to_arrow().to_pylist() == []


def test_racy_recent_files_are_not_cached(tree, store, monkeypatch):
    D.snapshot(tree, "ds", store=store)  # files written just now: too recent to trust
    calls = []
    real = snap_mod._read_file
    monkeypatch.setattr(snap_mod, "_read_file", lambda e, *a, **k: calls.append(e.rel) or real(e, *a, **k))
    D.snapshot(tree, "ds", store=store)
    assert "big.bin" in calls


def test_file_modified_during_snapshot_is_reread(tree, store, monkeypatch):
    monkeypatch.setattr(pipeline, "READ_BLOCK", 100_000)
    real_offer = pipeline.ChunkSink.offer
    state = {"n": 0}

    def offer(self, ids, views):
        state["n"] += 1
        if state["n"] == 3:  # the writer appends while we read big.bin
            with open(tree / "big.bin", "ab") as f:
                f.write(b"appended")
        return real_offer(self, ids, views)

    monkeypatch.setattr(pipeline.ChunkSink, "offer", offer)
    v = D.snapshot(tree, "ds", store=store, workers=1)
    out = tree.parent / "o"
    D.checkout(v.ref, out, store=store)
    assert (out / "big.bin").read_bytes() == (tree / "big.bin").read_bytes()
    assert (out / "big.bin").read_bytes().endswith(b"appended")


def test_file_that_keeps_changing_is_an_error(tree, store, monkeypatch):
    real_offer = pipeline.ChunkSink.offer

    def offer(self, ids, views):
        with open(tree / "big.bin", "ab") as f:
            f.write(b"!")
        return real_offer(self, ids, views)

    monkeypatch.setattr(pipeline.ChunkSink, "offer", offer)
    with pytest.raises(D.FileChangedError, match="kept changing"):
        D.snapshot(tree, "ds", store=store)
    assert Store(store).list_numbers("dataset", "ds") == []


def test_store_inside_tree_is_excluded(tree):
    store = tree / ".mlops"
    v = D.snapshot(tree, "ds", store=store)
    paths = v.manifest().column("path").to_pylist()
    assert not any(p.startswith(".mlops") for p in paths)
    with pytest.raises(ValueError, match="inside it"):
        D.snapshot(store, "ds", store=store)
    with pytest.raises(ValueError, match="inside it"):
        D.snapshot(store / "packs", "ds", store=store)


def test_single_file_and_empty_dir(tmp_path, store):
    f = tmp_path / "one.bin"
    f.write_bytes(b"data" * 1000)
    v = D.snapshot(f, "single", store=store)
    assert v.manifest().column("path").to_pylist() == ["one.bin"]
    (tmp_path / "empty").mkdir()
    e = D.snapshot(tmp_path / "empty", "empty", store=store)
    assert e.files == 0 and e.bytes == 0
    D.checkout(e.ref, tmp_path / "eo", store=store)


def test_symlink_loops_are_recorded_not_followed(tmp_path, store):
    d = tmp_path / "loopy"
    d.mkdir()
    os.symlink("a", d / "b")
    os.symlink("b", d / "a")
    os.symlink(".", d / "self")
    (d / "f").write_text("x")
    v = D.snapshot(d, "loopy", store=store)
    kinds = dict(zip(*v.manifest().select(["path", "kind"]).to_pydict().values()))
    assert kinds == {"a": "symlink", "b": "symlink", "f": "file", "self": "symlink"}
    os.symlink(d / "a", tmp_path / "entry")
    with pytest.raises(ValueError, match="symlink loop"):
        D.snapshot(tmp_path / "entry", "x", store=store)


def test_bad_arguments(tree, store):
    with pytest.raises(FileNotFoundError, match="source does not exist"):
        D.snapshot(tree / "nope", "ds", store=store)
    with pytest.raises(ValueError, match="name must be"):
        D.snapshot(tree, "bad/name", store=store)
    with pytest.raises(ValueError, match="name must be"):
        D.snapshot(tree, "", store=store)
    with pytest.raises(TypeError, match="source must be"):
        D.snapshot(12, "ds", store=store)
    with pytest.raises(TypeError, match="message must be"):
        D.snapshot(tree, "ds", message=5, store=store)
    with pytest.raises(ValueError, match="workers"):
        D.snapshot(tree, "ds", store=store, workers=0)
    os.mkfifo(tree / "fifo")
    v = D.snapshot(tree, "ds", store=store)
    assert v.record["skipped"] == ["fifo"]


def test_verify_ok_and_sample(tree, store):
    D.snapshot(tree, "ds", store=store)
    r = D.verify(store=store)
    assert r.ok and r.chunks_checked > 10 and r.versions == 1
    s = D.verify(store=store, sample=0.3, seed=1)
    assert s.ok and s.chunks_checked < r.chunks_checked
    with pytest.raises(ValueError, match="sample"):
        D.verify(store=store, sample=2)


def test_gc_keep_last_repacks_and_frees(tmp_path):
    store = tmp_path / "s"
    Store(store, pack_max_bytes=1 << 20)
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(5)
    for _i in range(3):
        (src / "data.bin").write_bytes(rng.bytes(3 << 20))  # each version all new
        D.snapshot(src, "ds", store=store)
    keep_bytes = (src / "data.bin").read_bytes()
    dry = D.gc(store=store, keep_last=1, grace=0, dry_run=True)
    assert dry.versions_deleted == ["ds:v1", "ds:v2"] and dry.bytes_freed > 5 << 20
    assert len(D.log("ds", store=store)) == 3  # dry run changed nothing
    size_before = sum(f.stat().st_size for f in (store / "packs").rglob("*"))
    rep = D.gc(store=store, keep_last=1, grace=0)
    assert rep.versions_deleted == ["ds:v1", "ds:v2"] and rep.packs_deleted >= 4
    size_after = sum(f.stat().st_size for f in (store / "packs").rglob("*"))
    assert size_after < size_before / 2
    assert D.verify(store=store).ok
    D.checkout("ds:v3", tmp_path / "o", store=store)
    assert (tmp_path / "o" / "data.bin").read_bytes() == keep_bytes
    (src / "data.bin").write_bytes(b"v4")
    assert D.snapshot(src, "ds", store=store).ref == "ds:v4"  # numbers never reused


def test_gc_keep_and_grace(tree, store):
    D.snapshot(tree, "ds", store=store)
    (tree / "x").write_text("x")
    D.snapshot(tree, "ds", store=store)
    (tree / "y").write_text("y")
    D.snapshot(tree, "ds", store=store)
    rep = D.gc(store=store, keep=["ds:v1"], grace=3600)
    assert rep.versions_deleted == ["ds:v2"]  # v1 kept by name, v3 as the newest
    assert rep.packs_deleted == 0 and rep.packs_repacked == 0  # young packs: grace
    with pytest.raises(ValueError, match="keep_last"):
        D.gc(store=store, keep_last=0)
    with pytest.raises(ValueError, match="grace"):
        D.gc(store=store, grace=-1)


def test_gc_removes_crash_leftovers(tree, store):
    D.snapshot(tree, "ds", store=store)
    st = Store(store)
    st.fs.makedirs("tmp")
    (open(st.fs.path("tmp/dead.pack.tmp"), "wb")).write(b"junk")
    st.fs.makedirs("packs/zz")
    open(st.fs.path("packs/zz/zz00.pack"), "wb").write(b"unpublished")
    assert D.gc(store=store, grace=3600).temporaries_removed == 0
    rep = D.gc(store=store, grace=0)
    assert rep.temporaries_removed == 2
    assert not os.path.exists(st.fs.path("tmp/dead.pack.tmp"))
    assert D.verify(store=store).ok


def test_readers_never_create_a_store(tmp_path):
    missing = tmp_path / "typo"
    for call in (lambda: D.verify(store=missing), lambda: D.log("ds", store=missing),
                 lambda: D.checkout("ds", tmp_path / "o", store=missing),
                 lambda: D.gc(store=missing), lambda: D.diff("a", "b", store=missing)):
        with pytest.raises(FileNotFoundError, match="no store at"):
            call()
    assert not missing.exists()


def test_publish_failure_fails_the_writer_fast(tmp_path, monkeypatch):
    import errno as _errno

    from engine.store.fs import LocalFS

    st = Store(tmp_path / "s", pack_max_bytes=4096)

    def failing(self, key):
        if key.startswith("packs/"):
            raise OSError(_errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LocalFS, "fsync_dir", failing)
    w = st.writer()
    with pytest.raises(OSError, match="No space left"):
        for i in range(1000):
            w.add(i.to_bytes(32, "little"), 1000, 0, b"x" * 1000)
            time.sleep(0.001)
    assert i < 999  # add() raised before the loop wrote everything
    w.abort()
    assert st.pack_ids() == [] and list(st.fs.walk_files("tmp")) == []
