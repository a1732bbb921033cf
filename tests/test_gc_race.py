"""gc racing snapshots and registrations (issue 15, defect 8): leases keep them apart.

Each trial starts from a store where dataset ``a:v1`` holds some files and ``a:v2``
holds others, so ``gc --keep-last 1`` finds ``a:v1``'s chunks dead. Two forked
processes then run at once: one snapshots (or registers) a copy of ``a:v1``'s files
under a new name, deduplicating against exactly those chunks, and the other runs
``gc`` after a random delay. Whatever the interleaving, every version the writer
reports committed must check out to its exact bytes, and the store must verify.
gc may refuse (``StoreBusy``: a writer holds a lease) and a writer may wait for gc.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import shutil
import time

import pytest

import engine.data as data
from engine.registry import Registry
from engine.store import Store, StoreBusy, gc_lock, write_lease
from engine.store.lease import holders

FILES = 40


def _make_files(d, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(FILES):
        b = rng.randbytes(48 * 1024)
        (d / f"f{i:03d}.bin").write_bytes(b)
        out[f"f{i:03d}.bin"] = b
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("gcrace")
    store = root / "store"
    old = _make_files(root / "old", 1)
    _make_files(root / "new", 2)
    data.snapshot(root / "old", name="a", store=store)
    data.snapshot(root / "new", name="a", store=store)
    shutil.copytree(root / "old", root / "copy")  # another path: no stat-cache hit
    Registry(store, index_path=":memory:")  # the registry's roots are recorded now
    return root, old


def _slow(fn, pause: float):
    def slowed(*a, **k):
        time.sleep(pause)  # a slow file system between the dedup lookups and the commit
        return fn(*a, **k)
    return slowed


def _writer(kind: str, store: str, src: str, pause: float, q) -> None:
    import engine.data.ingest as ingest
    import engine.registry.registry as registry

    # The window a gc can hit, widened (in this child only): in real runs it is the
    # time to read, hash and pack a whole dataset before the version is committed.
    ingest._commit = _slow(ingest._commit, pause)
    registry.Registry.commit = _slow(registry.Registry.commit, pause)
    try:
        if kind == "snapshot":
            v = data.snapshot(src, name="b", store=store, progress=False)
            q.put(("committed", v.ref))
        else:
            reg = Registry(store, index_path=":memory:")
            mv = reg.register("m", src)
            q.put(("committed", mv.ref))
    except StoreBusy as exc:
        q.put(("busy", str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        q.put(("error", f"{type(exc).__name__}: {exc}"))


def _gc(store: str, delay: float, q) -> None:
    time.sleep(delay)
    try:
        rep = data.gc(store=store, keep_last=1, grace=0)
        q.put(("gc", rep.packs_deleted + rep.packs_repacked))
    except StoreBusy as exc:
        q.put(("gc-busy", str(exc)))
    except BaseException as exc:  # noqa: BLE001
        q.put(("gc-error", f"{type(exc).__name__}: {exc}"))


def _trial(template, tmp_path, kind: str, seed: int) -> dict:
    root, old = template
    store = tmp_path / f"s{seed}"
    shutil.copytree(root / "store", store)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    rng = random.Random(seed)
    w = ctx.Process(target=_writer, args=(kind, str(store), str(root / "copy"), 0.2, q))
    g = ctx.Process(target=_gc, args=(str(store), rng.uniform(0, 0.4), q))
    procs = [w, g] if rng.random() < 0.5 else [g, w]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, f"seed {seed}: a child did not finish"
    got = dict(q.get(timeout=5) for _ in range(2))
    assert "error" not in got and "gc-error" not in got, f"seed {seed}: {got}"
    if "committed" in got:
        ref = got["committed"]
        if kind == "snapshot":
            out = tmp_path / f"out{seed}"
            data.checkout(ref, out, store=store)
            back = {p.name: p.read_bytes() for p in out.iterdir()}
            assert back == old, f"seed {seed}: {ref} does not check out to its bytes"
        else:
            reg = Registry(store, index_path=":memory:")
            assert reg.verify()["ok"], f"seed {seed}: {reg.verify()['problems']}"
    rep = data.verify(store=store)
    assert rep.ok, f"seed {seed}: {got}: {rep.problems}"
    assert not os.listdir(store / "locks") or not holders(Store(store), "write")
    shutil.rmtree(store)
    return got


def _race(template, tmp_path, kind: str, trials: int) -> dict:
    outcomes: dict[str, int] = {}
    for seed in range(trials):
        got = _trial(template, tmp_path, kind, seed)
        key = "+".join(sorted(got))
        outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes


@pytest.mark.parametrize("kind", ["snapshot", "register"])
def test_gc_racing_a_writer_never_loses_a_committed_version(template, tmp_path, kind):
    outcomes = _race(template, tmp_path, kind, 12)
    print(kind, outcomes)
    # every trial committed the writer's version (a writer waits for gc, never gives up)
    assert sum(n for k, n in outcomes.items() if "committed" in k) == 12


@pytest.mark.soak
@pytest.mark.parametrize("kind", ["snapshot", "register"])
def test_gc_race_soak(template, tmp_path, kind):
    outcomes = _race(template, tmp_path, kind, 150)
    print(kind, outcomes)
    assert sum(n for k, n in outcomes.items() if "committed" in k) == 150


def test_gc_refuses_while_a_writer_holds_a_lease_and_deletes_nothing(template, tmp_path):
    root, _ = template
    store = tmp_path / "s"
    shutil.copytree(root / "store", store)
    before = sorted(p.relative_to(store) for p in (store / "packs").rglob("*"))
    writer = Store(store)
    with write_lease(writer, "snapshot b"):
        with pytest.raises(StoreBusy, match=r"1 writer\(s\) hold leases.*snapshot b.*nothing was deleted"):
            data.gc(store=store, keep_last=1, grace=0)
    assert {v.number for v in data.log("a", store=store)} == {1, 2}  # a:v1 was not dropped either
    assert sorted(p.relative_to(store) for p in (store / "packs").rglob("*")) == before
    assert not holders(Store(store), "write") and not holders(Store(store), "gc")
    rep = data.gc(store=store, keep_last=1, grace=0)  # the lease is gone: gc runs
    assert rep.versions_deleted == ["a:v1"] and rep.packs_deleted + rep.packs_repacked >= 1


def test_gc_waits_for_a_writer_with_wait(template, tmp_path):
    root, _ = template
    store = tmp_path / "s"
    shutil.copytree(root / "store", store)
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()

    def hold():
        with write_lease(Store(store), "slow snapshot"):
            ready.set()
            release.wait(30)

    p = ctx.Process(target=hold)
    p.start()
    assert ready.wait(30)
    t0 = time.monotonic()
    import threading

    threading.Timer(0.5, release.set).start()
    rep = data.gc(store=store, keep_last=1, grace=0, wait=30)
    assert time.monotonic() - t0 >= 0.4  # it waited for the lease to go
    assert rep.versions_deleted == ["a:v1"]
    p.join(30)


def test_writer_waits_for_gc_then_reloads_its_index(template, tmp_path):
    """A long-lived process loaded the index before a gc in another process deleted a
    pack; its next snapshot must not dedup against the deleted chunks."""
    root, old = template
    store = tmp_path / "s"
    shutil.copytree(root / "store", store)
    st = Store(store)
    _ = st.index  # cached: it lists a:v1's packs
    ctx = mp.get_context("fork")
    p = ctx.Process(target=lambda: data.gc(store=str(store), keep_last=1, grace=0))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    v = data.snapshot(root / "copy", name="b", store=st, progress=False)
    out = tmp_path / "out"
    data.checkout(v.ref, out, store=store)
    assert {q.name: q.read_bytes() for q in out.iterdir()} == old
    assert data.verify(store=store).ok


def test_a_dead_holders_lease_is_stale(template, tmp_path):
    root, _ = template
    store = tmp_path / "s"
    shutil.copytree(root / "store", store)
    ctx = mp.get_context("fork")

    def hold_and_die():
        with write_lease(Store(store), "killed snapshot"):
            os._exit(9)  # like SIGKILL: the lease file stays behind

    p = ctx.Process(target=hold_and_die)
    p.start()
    p.join(30)
    assert len(os.listdir(store / "locks")) >= 1  # the dead holder's lease file
    rep = data.gc(store=store, keep_last=1, grace=0)  # its pid is gone: stale, ignored
    assert rep.versions_deleted == ["a:v1"]
    assert not [f for f in os.listdir(store / "locks") if f.startswith("write-")]


def test_stale_by_heartbeat_age(template, tmp_path, monkeypatch):
    root, _ = template
    store = tmp_path / "s"
    shutil.copytree(root / "store", store)
    st = Store(store)
    (store / "locks").mkdir(exist_ok=True)
    lease = store / "locks" / "write-feed.json"
    lease.write_text('{"kind": "write", "what": "snapshot on another host", "host": "elsewhere", '
                     '"pid": 1, "started": 0}')
    assert [h["what"] for h in holders(st, "write")] == ["snapshot on another host"]
    old = time.time() - 10
    os.utime(lease, (old, old))
    monkeypatch.setenv("MLOPS_LEASE_STALE", "5")
    assert holders(st, "write") == [] and not lease.exists()


def test_a_second_gc_is_refused(template, tmp_path):
    root, _ = template
    store = tmp_path / "s"
    shutil.copytree(root / "store", store)
    with gc_lock(Store(store), "purge a:v1"):
        with pytest.raises(StoreBusy, match="another gc is running.*purge a:v1"):
            data.gc(store=store, keep_last=1, grace=0)


def test_cli_gc_beside_a_writer_exits_1_and_says_who(template, tmp_path):
    import subprocess
    import sys

    root, _ = template
    store = tmp_path / "s"
    shutil.copytree(root / "store", store)
    with write_lease(Store(store), "snapshot b"):
        r = subprocess.run([sys.executable, "-m", "engine.cli", "data", "gc", "--store", str(store),
                            "--keep-last", "1", "--grace", "0"], capture_output=True, text=True,
                           timeout=120)
    assert r.returncode == 1, r.stderr
    assert "mlops data gc: busy:" in r.stderr and "snapshot b" in r.stderr
    assert f"pid {os.getpid()}" in r.stderr and "--wait" in r.stderr
    assert {v.number for v in data.log("a", store=store)} == {1, 2}
