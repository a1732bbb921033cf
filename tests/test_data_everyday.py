"""The everyday data commands: list, status, diff against a directory, name suggestions,
a verify that reports every damaged record, chunk and pack, and human-readable output."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import engine.data as D
import engine.data.ingest as ingest
from engine.store import Store, StoreCorruption, UnknownVersion
from engine.store.pack import pack_key


def mlops(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd)


def age(root, seconds=100):
    """Push mtimes into the past so that the stat cache trusts them (not racy)."""
    t = time.time() - seconds
    for dp, _, fs in os.walk(root):
        for f in fs:
            os.utime(os.path.join(dp, f), (t, t))


def write_tree(root, seed, sizes=(300_000, 50_000)):
    rng = np.random.default_rng(seed)
    (root / "sub").mkdir(parents=True, exist_ok=True)
    (root / "a.bin").write_bytes(rng.bytes(sizes[0]))
    (root / "sub" / "b.bin").write_bytes(rng.bytes(sizes[1]))
    (root / "c.txt").write_text("hello\n")
    return root


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "store")


@pytest.fixture
def work(tmp_path, store):
    """A working directory snapshotted as ds:v1, its mtimes old enough to be cached."""
    w = write_tree(tmp_path / "work", 1)
    age(w)
    assert D.snapshot(w, "ds", store=store).ref == "ds:v1"
    return w


# ----------------------------------------------------------------------------- data list


def test_list_every_dataset_with_its_latest_version(tmp_path, store, work):
    other = write_tree(tmp_path / "other", 2, sizes=(2_000_000, 10))
    D.snapshot(other, "imagenet", store=store)
    (other / "c.txt").write_text("again\n")
    D.snapshot(other, "imagenet", store=store, message="second")
    rows = D.datasets(store=store)
    assert [(r.name, r.versions, r.latest.ref) for r in rows] == [("ds", 1, "ds:v1"),
                                                                  ("imagenet", 2, "imagenet:v2")]
    r = mlops("data", "list", "--store", store)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "VERSIONS", "LATEST", "SIZE"], lines
    ds = next(ln for ln in lines if ln.startswith("ds "))
    assert "ds:v1" in ds and "341.8 KiB" in ds and "3 files" in ds and "1 version" not in ds
    img = next(ln for ln in lines if ln.startswith("imagenet "))
    assert "imagenet:v2" in img and "1.9 MiB" in img and " 2 " in img and "second" in img
    assert time.strftime("%Y-%m-%d") in img or time.strftime("%Y-%m-%d", time.gmtime()) in img
    js = json.loads(mlops("data", "list", "--store", store, "--json").stdout)
    assert [(d["name"], d["versions"], d["latest"]["ref"], d["latest"]["bytes"]) for d in js] == [
        ("ds", 1, "ds:v1", 300_000 + 50_000 + 6), ("imagenet", 2, "imagenet:v2", 2_000_016)]


def test_list_of_an_empty_store(tmp_path, store):
    Store(store)
    r = mlops("data", "list", "--store", store)
    assert r.returncode == 0 and "no datasets in" in r.stdout
    assert json.loads(mlops("data", "list", "--store", store, "--json").stdout) == []


# ----------------------------------------------------------------------------- suggestions


def test_an_unknown_dataset_name_suggests_the_closest(tmp_path, store, work):
    for name in ("imagenet", "imagenet-small"):
        D.snapshot(work, name, store=store)
    for ref in ("imagenett", "imagenett@latest", "imagenett:v1"):
        with pytest.raises(UnknownVersion, match="did you mean imagenet"):
            D.resolve(Store(store), ref)
    with pytest.raises(UnknownVersion, match="did you mean imagenet"):
        D.log("imagnet", store=store)
    with pytest.raises(UnknownVersion, match=r"mlops data list"):
        D.log("zzzzzz", store=store)
    r = mlops("data", "checkout", "imagenett:v1", tmp_path / "o", "--store", store)
    assert r.returncode == 2 and "did you mean imagenet" in r.stderr, r.stderr


def test_data_layer_does_not_import_the_registry(store, work):
    code = (f"import sys, engine.data as D; D.datasets(store={store!r}); "
            f"D.status('ds', {str(work)!r}, store={store!r}); D.diff('ds', {str(work)!r}, store={store!r}); "
            "print(any(m.startswith('engine.registry') for m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stdout + r.stderr


# ----------------------------------------------------------------------------- status


def test_status_of_an_unchanged_directory(store, work):
    s = D.status("ds", work, store=store)
    assert s.identical and s.a == "ds:v1" and s.unchanged == 3
    r = mlops("data", "status", "ds", work, "--store", store, "--exit-code")
    assert r.returncode == 0, r.stderr
    assert "no changes" in r.stdout and "ds:v1" in r.stdout


def test_status_lists_added_removed_modified(store, work):
    (work / "c.txt").write_text("changed\n")
    (work / "sub" / "b.bin").unlink()
    (work / "new.txt").write_text("new\n")
    s = D.status("ds", work, store=store)
    assert [e["path"] for e in s.added] == ["new.txt"]
    assert [e["path"] for e in s.removed] == ["sub/b.bin"]
    assert [e["path"] for e in s.modified] == ["c.txt"]
    assert s.unchanged == 1 and not s.identical
    r = mlops("data", "status", "ds", work, "--store", store)
    assert r.returncode == 0, r.stderr  # changes are not an error without --exit-code
    assert "A new.txt" in r.stdout and "D sub/b.bin" in r.stdout and "M c.txt" in r.stdout
    assert mlops("data", "status", "ds", work, "--store", store, "--exit-code").returncode == 1
    js = json.loads(mlops("data", "status", "ds", work, "--store", store, "--json").stdout)
    assert js["identical"] is False and [e["path"] for e in js["added"]] == ["new.txt"]
    assert js["b"] == str(work)


def test_status_reads_only_files_whose_stat_changed(store, work, monkeypatch):
    calls = []
    real = ingest._read_file
    monkeypatch.setattr(ingest, "_read_file", lambda e, *a, **k: calls.append(e.rel) or real(e, *a, **k))
    assert D.status("ds", work, store=store).identical
    assert calls == []  # one stat per file, nothing read
    (work / "c.txt").write_text("HELLO\n")  # same size, new content
    assert [e["path"] for e in D.status("ds", work, store=store).modified] == ["c.txt"]
    assert calls == ["c.txt"]


def test_status_defaults(tmp_path, store, work):
    # DIR defaults to the current directory, NAME to the dataset last snapshotted from it
    (work / "c.txt").write_text("changed\n")
    r = mlops("data", "status", "--store", store, cwd=work)
    assert r.returncode == 0 and "M c.txt" in r.stdout and "ds:v1" in r.stdout, r.stdout + r.stderr
    other = write_tree(tmp_path / "other", 3)
    D.snapshot(other, "other", store=store)
    r = mlops("data", "status", "--store", store, cwd=work)
    assert r.returncode == 0 and "M c.txt" in r.stdout, r.stderr
    # a directory no dataset came from: with several datasets the name is required
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = mlops("data", "status", "--store", store, cwd=elsewhere)
    assert r.returncode == 2 and "NAME" in r.stderr and "ds, other" in r.stderr, r.stderr


def test_status_errors(tmp_path, store, work):
    r = mlops("data", "status", "ds", tmp_path / "nowhere", "--store", store)
    assert r.returncode == 2 and "does not exist" in r.stderr and "nowhere" in r.stderr
    r = mlops("data", "status", "dss", work, "--store", store)
    assert r.returncode == 2 and "did you mean ds" in r.stderr


# ----------------------------------------------------------------------------- diff with a directory


def test_diff_against_a_directory_either_side(store, work):
    (work / "c.txt").write_text("changed\n")
    (work / "d.txt").write_text("new\n")
    d = D.diff("ds@latest", work, store=store)
    assert d.a == "ds:v1" and d.b == str(work)
    assert [e["path"] for e in d.added] == ["d.txt"] and [e["path"] for e in d.modified] == ["c.txt"]
    back = D.diff(str(work), "ds:v1", store=store)
    assert [e["path"] for e in back.removed] == ["d.txt"] and back.b == "ds:v1"
    r = mlops("data", "diff", "ds@latest", "./work", "--store", store, "--exit-code", cwd=work.parent)
    assert r.returncode == 1 and "A d.txt" in r.stdout and "M c.txt" in r.stdout, r.stdout + r.stderr
    # a bare word is a reference; the error shows how to name a directory
    r = mlops("data", "diff", "ds@latest", "work", "--store", store, cwd=work.parent)
    assert r.returncode == 2 and "./work" in r.stderr, r.stderr


def test_diff_of_a_directory_costs_no_store_writes(store, work):
    before = sorted(os.listdir(os.path.join(store, "packs")))
    (work / "e.bin").write_bytes(np.random.default_rng(9).bytes(100_000))
    d = D.diff("ds", work, store=store)
    assert d.added[0]["bytes_changed"] == 100_000
    assert sorted(os.listdir(os.path.join(store, "packs"))) == before


# ----------------------------------------------------------------------------- verify (item 13)


def _flip(path, pos):
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x5A]))


@pytest.fixture
def damaged(tmp_path, store):
    """ds:v1..v3 of distinct content; v2's record is cut short and a chunk only v3 uses is
    flipped in its pack."""
    for n in (1, 2, 3):
        D.snapshot(write_tree(tmp_path / f"t{n}", 10 + n), "ds", store=store)
    st = Store(store)
    v3 = D.resolve(st, "ds:v3")
    row = next(r for r in v3.manifest().to_pylist() if r["path"] == "a.bin")
    loc = st.locate(row["chunks"][1]["id"])
    st.close()
    pack = os.path.join(store, *pack_key(loc.pack_id, "pack").split("/"))
    _flip(pack, loc.offset + loc.stored // 2)
    record = os.path.join(store, "datasets", "ds", "v00000002.json")
    with open(record, "r+b") as f:
        f.truncate(os.path.getsize(record) // 2)
    return {"pack": pack, "record": record, "chunk": row["chunks"][1]["id"].hex(), "tmp": tmp_path}


def test_verify_reports_a_damaged_record_and_a_damaged_pack(store, damaged):
    rep = D.verify(store=store)
    assert not rep.ok
    by_kind = {p["problem"]: p for p in rep.problems}
    assert set(by_kind) == {"version record damaged", "chunk corrupted"}, rep.problems
    rec, chunk = by_kind["version record damaged"], by_kind["chunk corrupted"]
    assert rec["path"] == damaged["record"] and rec["versions"] == ["ds:v2"]
    assert chunk["path"] == damaged["pack"] and chunk["versions"] == ["ds:v3"]
    assert chunk["chunk"] == damaged["chunk"]
    assert rep.versions == 3 and rep.damaged_versions == ["ds:v2", "ds:v3"]
    assert rep.intact_versions == ["ds:v1"]
    D.checkout("ds:v1", damaged["tmp"] / "ok", store=store)  # the other version still reads

    r = mlops("data", "verify", "--store", store)
    assert r.returncode == 1, r.stdout + r.stderr
    assert damaged["record"] in r.stdout and damaged["pack"] in r.stdout, r.stdout
    assert "damaged versions: ds:v2, ds:v3" in r.stdout and "intact versions: ds:v1" in r.stdout
    js = json.loads(mlops("data", "verify", "--store", store, "--json").stdout)
    assert {p["path"] for p in js["problems"]} == {damaged["record"], damaged["pack"]}


def test_a_record_that_parses_but_lacks_fields_is_damaged(tmp_path, store, work):
    (work / "c.txt").write_text("v2\n")
    D.snapshot(work, "ds", store=store)
    record = os.path.join(store, "datasets", "ds", "v00000002.json")
    rec = json.loads(open(record).read())
    del rec["manifest"]
    with open(record, "w") as f:
        json.dump(rec, f)
    rep = D.verify(store=store)
    assert [(p["problem"], p["path"], p["versions"]) for p in rep.problems] == [
        ("version record damaged", record, ["ds:v2"])]
    assert "manifest" in rep.problems[0]["detail"]
    # the log lists the other versions, and names the damaged record (issue 15, defect 4)
    with pytest.warns(UserWarning, match="v00000002.json.*mlops data verify"):
        assert [v.ref for v in D.log("ds", store=store)] == ["ds:v1"]
    r = mlops("data", "log", "ds", "--store", store)
    assert r.returncode == 0 and "ds:v1" in r.stdout
    assert "v00000002.json" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(StoreCorruption, match="v00000002.json"):
        D.checkout("ds:v2", tmp_path / "out", store=store)  # what needs it still says so


def test_a_damaged_pack_header_names_the_pack_and_its_versions(tmp_path, store, work):
    st = Store(store)
    pid = st.pack_ids()[0]
    st.close()
    pack = os.path.join(store, *pack_key(pid, "pack").split("/"))
    _flip(pack, 0)
    rep = D.verify(store=store)
    p = next(p for p in rep.problems if p["problem"] == "pack header damaged")
    assert p["path"] == pack and p["versions"] == ["ds:v1"]


def test_verify_progress_bar(store, work, capsys):
    D.verify(store=store, progress=True)
    err = capsys.readouterr().err
    assert "verify" in err and "chunks" in err
    D.verify(store=store)  # not a terminal: no bar
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- wording


def test_data_output_has_human_sizes_and_plurals(tmp_path, store):
    f = tmp_path / "one.bin"
    f.write_bytes(np.random.default_rng(0).bytes(300_000))
    r = mlops("data", "snapshot", f, "-n", "one", "--store", store)
    assert r.returncode == 0, r.stderr
    assert "1 entry," in r.stdout and "293.0 KiB" in r.stdout and "300000" not in r.stdout, r.stdout
    r = mlops("data", "checkout", "one", tmp_path / "out", "--store", store)
    assert "1 file," in r.stdout and "293.0 KiB" in r.stdout and "300000" not in r.stdout, r.stdout
    r = mlops("data", "log", "one", "--store", store)
    assert "293.0 KiB" in r.stdout and "1 file " in r.stdout and "300000" not in r.stdout, r.stdout
    r = mlops("data", "verify", "--store", store)
    assert "KiB" in r.stdout and "1 version:" in r.stdout and "1 versions" not in r.stdout, r.stdout
    js = json.loads(mlops("data", "snapshot", f, "-n", "one", "--store", store, "--json").stdout)
    assert js["bytes"] == 300_000  # exact bytes stay in --json


def test_diff_summary_is_human(store, work):
    (work / "d.bin").write_bytes(np.random.default_rng(5).bytes(200_000))
    D.snapshot(work, "ds", store=store)
    s = D.diff("ds:v1", "ds:v2", store=store).summary()
    assert "1 added" in s and "195.3 KiB in new chunks" in s, s
    r = mlops("data", "diff", "ds:v1", "ds:v2", "--store", store)
    assert "A d.bin (195.3 KiB)" in r.stdout, r.stdout


def test_a_files_version_as_a_table_names_the_cli_command(store, work):
    with pytest.raises(ValueError, match=r"mlops data checkout ds:v1"):
        D.load_table("ds", store=store)
