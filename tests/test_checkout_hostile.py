"""Checkout of crafted manifests (issue 15, "Hostile input").

Whoever can write a store can write any manifest and commit a version record that
references it. Each test here does exactly that (the real manifest writer, the store's
own put-if-absent record commit), then checks the version out, through the API and
through ``mlops data checkout``: a hostile manifest is refused with the documented
error naming the path (``ValueError``, exit code 2; a manifest that breaks the format,
such as one describing a device: ``StoreCorruption``, exit code 3), and NOTHING was
written: a full listing of the test's directory, which holds the store, ``dest``, and
the directories outside ``dest`` that planted links point at, is the same before and
after.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat

import pytest

import engine.data as D
import engine.data.restore as restore
from engine.cli.app import main as cli_main
from engine.data import manifest as mf
from engine.store import Store, StoreCorruption
from engine.store.store import now_iso


def listing(root) -> dict:
    """Every entry under ``root``: path -> (type, size, mode, mtime_ns, link target)."""
    out = {}
    root = os.fspath(root)
    for dp, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (
                stat.S_IFMT(st.st_mode), st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                st.st_mode, st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else 0,
                os.readlink(p) if stat.S_ISLNK(st.st_mode) else None)
    return out


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "store")


def _file(path: str, blob: dict, **kw) -> dict:
    e = {"path": path, "kind": "file", "mode": 0o644, "size": blob["size"], "mtime_ns": 0,
         "file_id": bytes.fromhex(blob["id"]), "target": None,
         "chunks": [(bytes.fromhex(c), n) for c, n in blob["chunks"]]}
    e.update(kw)
    return e


def _link(path: str, target: str) -> dict:
    return {"path": path, "kind": "symlink", "mode": 0o777, "size": 0, "mtime_ns": 0,
            "file_id": None, "target": target, "chunks": None}


def forge(store, name: str, entries, raw: bool = False) -> str:
    """Commit ``entries`` (manifest rows; for a file, ``blob`` stands for stored bytes) as
    the next version of ``name``, as anyone who can write the store could; its reference.
    ``raw``: the rows go into the table as given, without the manifest builder's sorting."""
    st = Store(store)
    try:
        w = st.writer()
        payload = st.put_blob(b"payload", w)
        rows = [_file(e["path"], payload, **{k: v for k, v in e.items() if k != "path"})
                if e.get("kind", "file") == "file" else e
                for e in entries]
        man = mf.build(rows) if not raw else mf.table_from_columns(
            {n: [r.get(n) for r in rows] for n in mf.SCHEMA.names}, mf.SCHEMA)
        blob = st.put_blob(mf.to_bytes(man), w, small_chunks=True)
        w.close()
        st.absorb(w)

        def record(number, parent):
            return {"format_version": 1, "kind": "dataset", "format": "files", "name": name,
                    "number": number, "id": "ab" * 32,
                    "parent": parent["id"] if parent else None, "message": "crafted",
                    "created": now_iso(), "source": "/nowhere", "files": len(rows),
                    "bytes": 7 * len(rows), "manifest": blob}

        rec = st.commit_record("dataset", name, record)
        return f"{name}:v{rec['number']}"
    finally:
        st.close()


def refused(tmp_path, store, ref, dest, error, match, code):
    """Check ``ref`` out into ``dest`` through the API and the CLI: refused with ``error``
    matching ``match`` (CLI: exit ``code``), and nothing under ``tmp_path`` changed."""
    before = listing(tmp_path)
    with pytest.raises(error, match=match):
        D.checkout(ref, dest, store=store)
    assert listing(tmp_path) == before
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        got = cli_main(["data", "checkout", ref, str(dest), "--store", store])
    assert got == code, err.getvalue()
    assert listing(tmp_path) == before
    return err.getvalue()


OK = {"path": "ok.txt"}  # a harmless file beside each hostile entry: it must not appear


@pytest.mark.parametrize("bad", ["../escape", "a/../../escape", "/tmp/evil", "/etc/passwd",
                                 "./a", "a//b", "a/./b", "a/..", "x\x00y", "dir\\..\\up"])
def test_paths_leaving_dest_are_refused_before_any_write(tmp_path, store, bad):
    ref = forge(store, "evil", [OK, {"path": bad}])
    out = refused(tmp_path, store, ref, tmp_path / "dest", ValueError, "refusing", 2)
    assert "evil:v1" in out and repr(bad)[1:-1][:6] in out  # names the version and the path
    assert not (tmp_path / "escape").exists()


def test_a_link_out_of_the_tree_and_a_file_under_it_are_refused(tmp_path, store):
    outside = tmp_path / "OUT"
    outside.mkdir()
    ref = forge(store, "evil", [OK, _link("lnk", str(outside)), {"path": "lnk/f.txt"}])
    refused(tmp_path, store, ref, tmp_path / "dest", ValueError, "also holds 'lnk' as a symlink", 2)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("deep", ["lnk/f.txt", "lnk/a/b/c/f.txt"])
def test_a_link_planted_by_an_earlier_checkout_is_never_followed(tmp_path, store, deep):
    outside = tmp_path / "OUT"
    outside.mkdir()
    (outside / "keep.txt").write_text("outside")
    dest = tmp_path / "dest"
    D.checkout(forge(store, "plant", [_link("lnk", str(outside))]), dest, store=store)
    assert os.readlink(dest / "lnk") == str(outside)
    ref = forge(store, "evil", [OK, {"path": deep}])
    refused(tmp_path, store, ref, dest, ValueError, "'lnk' in dest is a symlink", 2)
    assert sorted(os.listdir(outside)) == ["keep.txt"]


def test_a_link_planted_at_a_file_path_is_replaced_not_written_through(tmp_path, store):
    outside = tmp_path / "OUT"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("outside, unchanged")
    dest = tmp_path / "dest"
    D.checkout(forge(store, "plant", [_link("f.txt", str(victim))]), dest, store=store)
    D.checkout(forge(store, "evil", [{"path": "f.txt"}]), dest, store=store)
    assert victim.read_text() == "outside, unchanged"
    assert not os.path.islink(dest / "f.txt") and (dest / "f.txt").read_bytes() == b"payload"


@pytest.mark.parametrize("kind", ["chardev", "blockdev", "fifo", "socket", "dir", "hardlink", ""])
def test_a_manifest_describing_a_device_fifo_or_socket_is_refused(tmp_path, store, kind):
    ref = forge(store, "evil", [OK, {"path": "dev", "kind": kind, "mode": 0o666, "size": 0,
                                     "mtime_ns": 0, "file_id": None, "target": None,
                                     "chunks": None}])
    out = refused(tmp_path, store, ref, tmp_path / "dest", StoreCorruption,
                  "manifest of evil:v1 is damaged: entry 'dev' has kind", 3)
    assert "never devices" in out


@pytest.mark.parametrize("mode", [stat.S_IFCHR | 0o666, stat.S_IFBLK | 0o600,
                                  stat.S_IFIFO | 0o644, stat.S_IFSOCK | 0o755, 0o170000])
def test_a_file_whose_mode_claims_another_file_type_is_refused(tmp_path, store, mode):
    ref = forge(store, "evil", [OK, {"path": "dev", "mode": mode}])
    refused(tmp_path, store, ref, tmp_path / "dest", StoreCorruption,
            "entry 'dev' has mode .* more than permission bits", 3)


def test_checkout_never_makes_a_set_user_or_group_id_file(tmp_path, store):
    ref = forge(store, "suid", [{"path": "run", "mode": 0o6755}, {"path": "t", "mode": 0o1777}])
    D.checkout(ref, tmp_path / "dest", store=store)
    assert stat.S_IMODE(os.stat(tmp_path / "dest" / "run").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "dest" / "t").st_mode) == 0o1777  # sticky is kept


def test_a_chunk_the_store_lacks_is_refused_before_any_write(tmp_path, store):
    ref = forge(store, "evil", [OK, {"path": "new/dir/f", "chunks": [(b"\xee" * 32, 7)],
                                     "file_id": b"\xee" * 32}])
    refused(tmp_path, store, ref, tmp_path / "dest", StoreCorruption,
            "chunk eeee.* is referenced but not stored", 3)


def test_duplicate_paths_are_refused(tmp_path, store):
    ref = forge(store, "evil", [OK, {"path": "a.txt"}, {"path": "a.txt"}])
    refused(tmp_path, store, ref, tmp_path / "dest", ValueError, "holds the path 'a.txt' twice", 2)


@pytest.mark.parametrize("rows", [[{"path": "a"}, {"path": "a/b"}],
                                  [{"path": "sub/x"}, {"path": "sub/x/y/z"}],
                                  [_link("l", "somewhere"), _link("l/m", "else")]])
def test_a_path_that_is_both_an_entry_and_a_directory_is_refused(tmp_path, store, rows):
    ref = forge(store, "evil", [OK, *rows])
    refused(tmp_path, store, ref, tmp_path / "dest", ValueError, "holds|also holds", 2)


def test_a_path_that_is_a_directory_in_dest_is_refused(tmp_path, store):
    dest = tmp_path / "dest"
    (dest / "x.txt").mkdir(parents=True)
    (dest / "x.txt" / "mine").write_text("kept")
    ref = forge(store, "evil", [OK, {"path": "x.txt"}])
    refused(tmp_path, store, ref, dest, ValueError, "'x.txt'.* is a directory", 2)


def test_a_device_or_fifo_in_dest_is_replaced_never_opened(tmp_path, store):
    dest = tmp_path / "dest"
    dest.mkdir()
    os.mkfifo(dest / "f.txt")  # opening it for writing would block forever
    D.checkout(forge(store, "ok", [{"path": "f.txt"}]), dest, store=store)
    assert stat.S_ISREG(os.lstat(dest / "f.txt").st_mode)


@pytest.mark.parametrize("bad", ["n" * 256, "sub/" + "é" * 128, "d/" * 2100 + "f"])
def test_names_longer_than_the_file_system_allows_are_refused(tmp_path, store, bad):
    ref = forge(store, "evil", [OK, {"path": bad}])
    refused(tmp_path, store, ref, tmp_path / "dest", ValueError, "refusing to write", 2)


def test_a_symlink_target_longer_than_the_system_allows_is_refused(tmp_path, store):
    # found by the fuzzing: os.symlink failed with ENAMETOOLONG after the files were written
    ref = forge(store, "evil", [OK, _link("l", "x" * 5000)])
    refused(tmp_path, store, ref, tmp_path / "dest", ValueError, "symlink target is 5000 bytes", 2)


def test_a_long_name_that_fits_checks_out(tmp_path, store):
    # its temporary name is cut to fit NAME_MAX, so the longest legal name checks out
    name = "n" * 255
    D.checkout(forge(store, "long", [{"path": name}, _link("l" * 255, name)]), tmp_path / "d",
               store=store)
    assert (tmp_path / "d" / name).read_bytes() == b"payload"
    assert os.readlink(tmp_path / "d" / ("l" * 255)) == name


# ----------------------------------------------------------------------------- case


CASE = [OK, {"path": "A.txt"}, {"path": "a.txt"}, {"path": "Sub/x"}, {"path": "sub/y"}]


def test_case_colliding_paths_check_out_where_case_matters(tmp_path, store):
    # tmpfs and ext4 respect case: nothing collides, the version checks out as snapshotted
    dest = tmp_path / "dest"
    ref = forge(store, "cases", CASE)
    assert restore.folds_case(str(tmp_path)) is False  # "store" is there, "STORE" is not
    D.checkout(ref, dest, store=store)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == \
        ["A.txt", "Sub", "Sub/x", "a.txt", "ok.txt", "sub", "sub/y"]


@pytest.mark.parametrize("probe,folds,why", [("folds_case", True, "ignores case"),
                                             ("_dest_folds_case", None, "may ignore case")])
def test_case_colliding_paths_are_refused_where_case_is_ignored(tmp_path, store, monkeypatch,
                                                                probe, folds, why):
    # No file system that ignores case can be mounted here, so the probe is replaced: what
    # is tested is that its answer (or its silence) decides before anything is written.
    ref = forge(store, "cases", CASE)
    monkeypatch.setattr(restore, probe, lambda d: folds)
    out = refused(tmp_path, store, ref, tmp_path / "dest", ValueError,
                  f"'A.txt' and 'a.txt', which differ only in case.*{why}", 2)
    assert "cases:v1" in out


def test_case_probe_reads_what_the_directory_says(tmp_path):
    d = tmp_path / "probe"
    d.mkdir()
    assert restore.folds_case(str(d)) is None  # empty: nothing to tell by
    (d / "123").write_text("")
    assert restore.folds_case(str(d)) is None  # no letters
    (d / "Name").write_text("")
    assert restore.folds_case(str(d)) is False
    assert listing(d) == {"123": listing(d)["123"], "Name": listing(d)["Name"]}  # read-only


def test_case_collisions_are_found_per_directory():
    composed, decomposed = "\u00e9", "e\u0301"
    found = restore.case_collisions(["a/B", "a/b", "A/b", f"c/{composed}", f"c/{decomposed}",
                                     "x", "X/y"])
    assert ("a", "B", "b") in found
    assert ("", "a", "A") in found and ("", "x", "X") in found
    assert ("c", composed, decomposed) in found  # one name on APFS and HFS+
    assert not restore.case_collisions(["a/b", "b/b", "ab", "a.b"])
