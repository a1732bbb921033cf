"""Purge (issue 15): a version and every chunk only it used leave the store's files."""

from __future__ import annotations

import json
import os

import pytest

import engine.data as data
from engine.registry import Registry
from engine.store import PurgedVersion, Store, StoreBusy, write_lease

MARKER = b"PLANTED-MARKER-4f1c9e-DO-NOT-KEEP"


def _raw_hits(store) -> list[str]:
    """Files under the store whose raw bytes hold the marker."""
    hits = []
    for dirpath, _dirs, files in os.walk(store):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                if MARKER in fh.read():
                    hits.append(os.path.relpath(p, store))
    return hits


def _secret(n: int = 300_000) -> bytes:
    # incompressible, so the chunk is stored raw and the marker is visible in the pack
    b = bytearray(os.urandom(n))
    for off in range(1000, n - 100, 20_000):
        b[off:off + len(MARKER)] = MARKER
    return bytes(b)


@pytest.fixture()
def two_versions(tmp_path):
    store = tmp_path / "store"
    shared = os.urandom(200_000)
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "shared.bin").write_bytes(shared)
    (a / "personal.bin").write_bytes(_secret())
    (b / "other.bin").write_bytes(os.urandom(100_000))
    va = data.snapshot(a, name="people", store=store)
    vb = data.snapshot(b, name="people", store=store)
    return store, va, vb, shared


def test_data_purge_removes_the_bytes_and_leaves_a_tombstone(two_versions, tmp_path):
    store, va, vb, shared = two_versions
    assert _raw_hits(store)  # the marker is in a pack before
    res = data.purge(va.ref, store=store, reason="erasure request 42")
    assert res.version == "people:v1" and res.chunks_removed >= 1 and res.packs_rewritten >= 1
    assert res.chunks_kept >= 1  # shared.bin is still used by v2
    assert _raw_hits(store) == []  # gone from every file of the store
    # the tombstone: who, when, why; no content id, no manifest
    rec = json.loads((store / "datasets" / "people" / "v00000001.json").read_text())
    assert rec["purged"]["reason"] == "erasure request 42" and "user" in rec["purged"]
    assert "id" not in rec and "manifest" not in rec and "pending" not in rec
    with pytest.raises(PurgedVersion, match=r"people:v1 was purged .*erasure request 42"):
        data.checkout("people:v1", tmp_path / "out", store=store)
    assert [v.ref for v in data.log("people", store=store)] == ["people:v2"]
    out = tmp_path / "out2"
    data.checkout(vb.ref, out, store=store)  # what v2 shares with v1 is intact
    assert (out / "shared.bin").read_bytes() == shared
    assert data.verify(store=store).ok
    # numbers are never reused, and a purged version cannot be purged twice
    (tmp_path / "a" / "new.txt").write_text("new")
    assert data.snapshot(tmp_path / "a", name="people", store=store).number == 3
    with pytest.raises(PurgedVersion):
        data.purge("people:v1", store=store)
    rep = data.gc(store=store, grace=0)
    assert rep.versions_deleted == [] and data.verify(store=store).ok


def test_purge_of_the_latest_keeps_the_numbering(two_versions):
    store, va, vb, _ = two_versions
    data.purge(vb.ref, store=store)
    assert data.resolve(Store(store), "people@latest").ref == "people:v1"
    assert [v.ref for v in data.log("people", store=store)] == ["people:v1"]
    assert [d.latest.ref for d in data.datasets(store=store)] == ["people:v1"]


def test_dry_run_changes_nothing(two_versions):
    store, va, _, _ = two_versions
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    res = data.purge(va.ref, store=store, dry_run=True)
    assert res.dry_run and res.chunks_removed >= 1
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()} == before


def test_purge_refuses_beside_a_writer(two_versions):
    store, va, _, _ = two_versions
    with write_lease(Store(store), "snapshot people"):
        with pytest.raises(StoreBusy, match="snapshot people"):
            data.purge(va.ref, store=store)
    assert _raw_hits(store) and data.log("people", store=store)[-1].ref == "people:v1"


def test_a_purge_killed_half_way_is_reported_and_finished_by_running_it_again(two_versions,
                                                                              monkeypatch):
    store, va, _, _ = two_versions
    import engine.store.purge as sp

    def killed(*a, **k):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(sp, "drop_chunks", killed)
    with pytest.raises(KeyboardInterrupt):
        data.purge(va.ref, store=store)
    monkeypatch.undo()
    rep = data.verify(store=store)
    assert not rep.ok and any("did not finish" in p["detail"] for p in rep.problems)
    res = data.purge("people:v1", store=store)
    assert res.chunks_removed >= 1 and _raw_hits(store) == [] and data.verify(store=store).ok


def test_model_purge_appends_a_tombstone_commit_and_removes_the_bytes(tmp_path):
    store = tmp_path / "store"
    reg = Registry(store, index_path=":memory:")
    secret = _secret()
    reg.register("clf", secret, aliases=["production"])
    reg.register("clf", os.urandom(50_000))
    assert _raw_hits(store)
    res = reg.purge("clf:v1", reason="model trained on revoked data")
    assert res["version"] == "clf:v1" and res["chunks_removed"] >= 1
    assert _raw_hits(store) == []
    hist = reg.history("clf")
    assert hist[0]["summary"] == "purge clf:v1 (model trained on revoked data)"
    fresh = Registry(store, index_path=":memory:")
    v = fresh.verify()
    assert v["ok"], v["problems"]  # the hash chain is intact: nothing was rewritten
    with pytest.raises(Exception, match="deleted"):
        fresh.get("clf:v1")
    with pytest.raises(Exception, match="production"):
        fresh.get("clf@production")  # its alias went with it
    assert fresh.read_bytes("clf:v2")
    assert data.verify(store=store).ok
    again = fresh.purge("clf:v1")  # idempotent: nothing more to remove, no second tombstone
    assert again["chunks_removed"] == 0
    assert len(fresh.history("clf")) == len(hist)


def test_model_purge_keeps_chunks_a_dataset_uses(tmp_path):
    store = tmp_path / "store"
    src = tmp_path / "d"
    src.mkdir()
    payload = _secret()
    (src / "w.bin").write_bytes(payload)
    data.snapshot(src, name="ds", store=store)
    reg = Registry(store, index_path=":memory:")
    reg.register("clf", str(src / "w.bin"))
    res = reg.purge("clf:v1")
    assert res["chunks_kept"] >= 1  # the dataset still holds the same bytes
    out = tmp_path / "out"
    data.checkout("ds:v1", out, store=store)
    assert (out / "w.bin").read_bytes() == payload


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_cli_purge_of_a_dataset_and_a_model(two_versions):
    store, va, _, _ = two_versions
    r = _cli("data", "purge", va.ref, "--store", store, "--dry-run")
    assert r.returncode == 0 and r.stdout.startswith("would remove people:v1:"), r.stderr
    assert _raw_hits(store)
    r = _cli("data", "purge", va.ref, "--store", store, "--reason", "request 7")
    assert r.returncode == 0 and r.stdout.startswith("purged people:v1:"), r.stderr
    assert _raw_hits(store) == []
    r = _cli("data", "checkout", "people:v1", store / "x", "--store", store)
    assert r.returncode == 2 and "was purged" in r.stderr and "request 7" in r.stderr
    reg = Registry(store, index_path=":memory:")
    reg.register("clf", _secret())
    r = _cli("model", "purge", "clf:v1", "--store", store, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["chunks_removed"] >= 1 and _raw_hits(store) == []
    r = _cli("model", "purge", "clf:v1", "--store", store, "--wait", "-1")
    assert r.returncode == 2 and "--wait" in r.stderr


def test_purge_in_an_encrypted_store(tmp_path):
    key = "ab" * 32
    store = tmp_path / "store"
    st = Store(store, encrypt=True, key=key)
    src = tmp_path / "d"
    src.mkdir()
    (src / "p.bin").write_bytes(_secret())
    (src / "keep.bin").write_bytes(os.urandom(80_000))
    data.snapshot(src, name="enc", store=st)
    (src / "p.bin").unlink()
    data.snapshot(src, name="enc", store=st)
    packs_before = sorted(p.name for p in (store / "packs").rglob("*.pack"))
    res = data.purge("enc:v1", store=Store(store, key=key))
    assert res.chunks_removed >= 1 and res.packs_rewritten >= 1
    assert sorted(p.name for p in (store / "packs").rglob("*.pack")) != packs_before
    out = tmp_path / "out"
    data.checkout("enc:v2", out, store=Store(store, key=key))
    assert (out / "keep.bin").read_bytes() == (src / "keep.bin").read_bytes()
    assert data.verify(store=Store(store, key=key)).ok
