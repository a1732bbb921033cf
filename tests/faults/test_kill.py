"""SIGKILL at random moments during snapshot, checkout, registration, alias moves,
promotion and gc (issue 15, fault suites; docs/faults.md).

Each trial starts ``kill_driver.py`` (a real process running one operation after
another on a store, printing a line before and after each) and kills it with SIGKILL
after a delay drawn from the trial's seed. Afterwards:

* ``mlops data verify`` and ``mlops model verify`` exit 0: a kill leaves garbage
  (temporaries, unpublished or unreferenced packs, a stale lease), never damage;
* every version the killed process reported committed exists, and every version in the
  store (reported or in flight) reads back its exact bytes, rebuilt from the seeds in
  its message; an alias points at the last move reported or at the one in flight;
* a killed checkout left each file of the destination absent or whole, never torn
  (only its own temporaries beside them), and the next checkout removes those;
* a killed gc kept every version it had to keep; run again, it finishes.

At the end of each operation's trials, ``mlops data gc --grace 0`` removes every
leftover and the store verifies clean. The default run samples a few trials per
operation; ``pytest -m soak`` runs 18 per operation (126 in all). A failure names
the trial and ``MLOPS_FAULT_SEED``, which replays it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import faultkit as fk
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "kill_driver.py")
OPS = ["snapshot", "checkout", "register", "alias", "promote", "gc-data", "gc-model"]
FAST_TRIALS = int(os.environ.get("MLOPS_KILL_TRIALS", "3"))
SOAK_TRIALS = 18
#: longest wait for a driver to start, and for anything after a kill
TIMEOUT = 120
TEMPLATE_SEED = 7
#: how long the looping drivers run before the kill, at most (seconds)
LOOP_WINDOW = 1.2
#: bytes of a registered blob, per artifact name (kill_driver.py)
BLOB_SIZE = {"m": 200 << 10, "p": 64 << 10}

#: $MLOPS_LEASE_STALE while the test itself works on a store between kills (nothing else
#: runs then): a lock file a kill left torn is stale after this many seconds
STALE = 1.0

COUNTS: dict[str, dict[str, int]] = {}


@pytest.fixture(autouse=True)
def _short_stale(monkeypatch):
    monkeypatch.setenv("MLOPS_LEASE_STALE", str(STALE))


def _count(op: str, **kw) -> None:
    c = COUNTS.setdefault(op, {"trials": 0, "killed": 0, "in_flight": 0, "finished": 0,
                               "ops_done": 0, "torn_locks": 0})
    for k, v in kw.items():
        c[k] += v


@pytest.fixture(scope="module", autouse=True)
def _kill_report():
    yield
    if not COUNTS:
        return
    keys = ["trials", "killed", "in_flight", "finished", "ops_done", "torn_locks"]
    rows = [[op, *(c[k] for k in keys)] for op, c in sorted(COUNTS.items())]
    tot = [sum(r[i] for r in rows) for i in range(1, len(keys) + 1)]
    print(f"\nSIGKILL trials (seed MLOPS_FAULT_SEED={fk.BASE_SEED})")
    print(fk.format_table(["operation", "trials", "killed", "mid-operation", "ran to the end",
                           "operations reported", "torn lock files"], rows + [["total", *tot]]))
    fk.write_report("kill", {"seed": fk.BASE_SEED, "operations": COUNTS,
                             "total": dict(zip(keys, tot))})


@pytest.fixture
def scratch(tmp_path):
    """A directory for checkouts, in memory where there is one (they are many)."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        d = tempfile.mkdtemp(prefix="mlops-kill-", dir="/dev/shm")
        yield d
        shutil.rmtree(d, ignore_errors=True)
    else:
        yield str(tmp_path / "scratch")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A store with ds:v1..v6 (1 MiB trees sharing files, 256 KiB packs), registry
    m:v1..v5 (production on m:v1) and p:v1 (val_loss 1, production on it)."""
    import engine.data as D
    from engine.registry import Registry
    from engine.store import Store

    base = tmp_path_factory.mktemp("kill-template")
    root = str(base / "store")
    Store(root, pack_max_bytes=1 << 18).close()
    src = base / "src"
    for i in range(1, 7):
        fk.write_tree(src, fk.tree_files(TEMPLATE_SEED, i))
        D.snapshot(src, "ds", store=root, message=json.dumps([TEMPLATE_SEED, i]))
    with Registry(root, index_path=":memory:") as reg:
        for i in range(1, 6):
            reg.register("m", fk.blob(TEMPLATE_SEED, i), message=json.dumps([TEMPLATE_SEED, i]))
        reg.set_alias("m:v1", "production")
        reg.register("p", fk.blob(TEMPLATE_SEED, 0, BLOB_SIZE["p"]), metrics={"val_loss": 1.0},
                     message=json.dumps([TEMPLATE_SEED, 0]), aliases=["production"])
    return root


# ----------------------------------------------------------------------------- the driver


def run_driver(op, root, work, seed, delay, extra=(), cache=None, stale=None):
    """Start the driver, SIGKILL it ``delay`` s after it is ready (unless it exits first).
    Returns (killed, events, wall-clock time when it was ready)."""
    env = dict(os.environ, MLOPS_CACHE_DIR=cache or os.path.join(work, "cache"),
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("MLOPS_LEASE_STALE", None)  # the default: the test's short one is for its own steps
    if stale is not None:
        env["MLOPS_LEASE_STALE"] = str(stale)
    p = subprocess.Popen([sys.executable, DRIVER, op, str(root), str(work), str(seed), *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=HERE)
    lines: list[str] = []
    errs: list[str] = []
    is_ready = threading.Event()

    def drain_out():  # read as it comes, so a full pipe never stalls the driver
        for line in p.stdout:
            if line.strip() == "ready":
                is_ready.set()
            lines.append(line)
        is_ready.set()  # exited without being ready: the check below says so

    readers = [threading.Thread(target=drain_out, daemon=True),
               threading.Thread(target=lambda: errs.extend(p.stderr), daemon=True)]
    for r in readers:
        r.start()
    killed = False
    try:
        if not is_ready.wait(TIMEOUT) or "ready\n" not in lines:
            p.kill()
            p.wait(TIMEOUT)
            for r in readers:
                r.join(TIMEOUT)
            raise AssertionError(f"driver {op} did not start: {''.join(errs)[-2000:]}")
        ready = time.time()
        try:
            p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)  # not reaped yet, so the pid is still the driver's
            killed = True
            p.wait(TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(TIMEOUT)
        for r in readers:
            r.join(TIMEOUT)
    out, err = "".join(lines), "".join(errs)
    if not killed and p.returncode != 0:
        raise AssertionError(f"driver {op} failed with {p.returncode}:\n{err[-3000:]}")
    if killed and p.returncode != -signal.SIGKILL:  # it exited by itself just before the kill
        killed = False
        if p.returncode != 0:
            raise AssertionError(f"driver {op} failed with {p.returncode}:\n{err[-3000:]}")
    events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    bad = [e for e in events if e["ev"] == "error"]
    assert not bad, bad
    return killed, events, ready


def in_flight(events) -> dict | None:
    """The operation begun and not reported done when the process died, or None."""
    if events and events[-1]["ev"] == "begin":
        return events[-1]
    return None


# ----------------------------------------------------------------------------- checks


def assert_verifies(root, ctx) -> None:
    (dc, drep), (mc, mrep) = fk.verify_both(root)
    assert dc == 0 and drep.get("ok"), f"{ctx} mlops data verify: {dc} {drep}"
    assert mc == 0 and mrep.get("ok", True), f"{ctx} mlops model verify: {mc} {mrep}"


def dataset_refs(root) -> list[str]:
    from engine.store import Store

    with Store(root, create=False) as st:
        return [f"ds:v{n}" for n in st.list_numbers("dataset", "ds")]


def assert_datasets_intact(root, scratch, ctx) -> list[str]:
    """Every dataset version checks out to exactly the tree its message names."""
    import engine.data as D

    refs = dataset_refs(root)
    for ref in refs:
        dest = os.path.join(scratch, "co")
        shutil.rmtree(dest, ignore_errors=True)
        res = D.checkout(ref, dest, store=root)
        seed, i = json.loads(res.version.message)
        want = fk.tree_files(seed, i)
        got = fk.read_tree(dest)
        assert got == want, (f"{ctx} {ref} does not check out as snapshotted: differs in "
                             f"{sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))}")
    return refs


def registry_state(root) -> dict:
    """``{"versions": {name: [numbers]}, "aliases": {name@alias: version}}`` read cold
    from the log (a fresh in-memory index)."""
    from engine.registry import Registry

    with Registry(root, create=False, index_path=":memory:") as reg:
        reg.refresh()
        out = {"versions": {}, "aliases": {}}
        for name in ("m", "p"):
            if reg.kind_of(name) is None:
                continue
            vs = reg.versions(name)
            out["versions"][name] = [mv.version for mv in vs]
            for mv in vs:
                for a in reg.aliases_of(mv):
                    if a != "latest":
                        out["aliases"][f"{name}@{a}"] = mv.version
        return out


def assert_registry_intact(root, ctx) -> dict:
    """Every live registry version reads back the bytes its message names."""
    from engine.registry import Registry

    with Registry(root, create=False, index_path=":memory:") as reg:
        reg.refresh()
        for name in ("m", "p"):
            if reg.kind_of(name) is None:
                continue
            for mv in reg.versions(name):
                seed, i = json.loads(mv.message)
                assert reg.read_bytes(mv.ref) == fk.blob(seed, i, BLOB_SIZE[name]), \
                    f"{ctx} {mv.ref} does not read back its bytes"
    return registry_state(root)


def assert_clean_after_gc(root, scratch, ctx, op=None) -> None:
    """``mlops data gc --grace 0`` leaves no leftover and no dead pack; all still intact."""
    wait_out_torn_locks(root, op or ctx)
    code, out, err = fk.cli("data", "gc", "--grace", "0", "--store", root, "--json")
    assert code == 0, f"{ctx} gc: {code} {err}"
    assert_verifies(root, ctx + " after gc")
    left = fk.leftovers(root)
    assert not any(left.values()), f"{ctx} gc left {left}"
    assert fk.dead_packs(root) == [], f"{ctx} gc left dead packs"
    assert_datasets_intact(root, scratch, ctx + " after gc")
    assert_registry_intact(root, ctx + " after gc")


# ----------------------------------------------------------------------------- trials


def torn_locks(root) -> list[str]:
    """Lock files whose body does not parse: a process killed between creating its lock
    file and writing it. engine/store/lease.py counts them live until they are stale
    ($MLOPS_LEASE_STALE, 120 s by default), so gc refuses until then (docs/faults.md,
    defects)."""
    out = []
    for rel in fk.leftovers(root)["locks"]:
        try:
            with open(os.path.join(root, rel), "rb") as f:
                body = json.loads(f.read())
            if not isinstance(body, dict):
                raise ValueError(rel)
        except (ValueError, OSError):
            out.append(rel)
    return out


def wait_out_torn_locks(root, op) -> None:
    """Let torn lock files go stale (the documented recovery), counting them."""
    torn = torn_locks(root)
    if torn:
        _count(op, torn_locks=len(torn))
        time.sleep(STALE + 0.2)


def _ctx(op, trial) -> str:
    return f"[{op} trial {trial}, MLOPS_FAULT_SEED={fk.BASE_SEED}]"


def trial_seed(op, trial) -> int:
    return fk.rng_for(fk.BASE_SEED, op, trial).randrange(1 << 30)


def _loop_trials(op, root, work, scratch, trials, check, extra=()):
    """Trials of a looping driver on one store; ``check(events, ctx)`` after each."""
    for t in range(trials):
        ctx = _ctx(op, t)
        delay = fk.rng_for(fk.BASE_SEED, op, t, "delay").uniform(0.0, LOOP_WINDOW)
        args = extra() if callable(extra) else extra
        killed, events, _ = run_driver(op, root, work, trial_seed(op, t), delay, args)
        flying = in_flight(events)
        _count(op, trials=1, killed=int(killed), in_flight=int(killed and flying is not None),
               finished=int(not killed), ops_done=sum(e["ev"] == "done" for e in events))
        assert_verifies(root, ctx)
        check(events, flying, ctx)


def kill_snapshots(tmp_path, scratch, trials):
    from engine.store import Store

    root = str(tmp_path / "store")
    Store(root, pack_max_bytes=1 << 18).close()
    committed: set[str] = set()

    def check(events, flying, ctx):
        done = {e["ref"] for e in events if e["ev"] == "done"}
        committed.update(done)
        refs = set(assert_datasets_intact(root, scratch, ctx))
        assert committed <= refs, f"{ctx} reported committed, then gone: {committed - refs}"
        assert len(refs - committed) <= (1 if flying else 0), \
            f"{ctx} versions nobody reported: {sorted(refs - committed)}"
        committed.update(refs)  # one the kill hit after its commit, before its report

    _loop_trials("snapshot", root, str(tmp_path), scratch, trials, check)
    assert_clean_after_gc(root, scratch, _ctx("snapshot", "end"), "snapshot")


def kill_checkouts(template, tmp_path, scratch, trials):
    root = str(tmp_path / "store")
    shutil.copytree(template, root)
    refs = ["ds:v1", "ds:v4", "ds:v6"]
    trees = {r: fk.tree_files(TEMPLATE_SEED, int(r.rpartition("v")[2])) for r in refs}
    dest = tmp_path / "dest"

    def check(events, flying, ctx):
        got = fk.read_tree(dest, skip_tmp=True)
        for rel, data in got.items():  # each file absent or whole: one of the versions'
            assert any(t.get(rel) == data for t in trees.values()), \
                f"{ctx} {rel} in the destination is torn or wrong"
        done = [e for e in events if e["ev"] == "done"]
        if done and not flying:
            assert got == trees[done[-1]["ref"]], f"{ctx} last checkout incomplete"

    _loop_trials("checkout", root, str(tmp_path), scratch, trials, check, extra=refs)
    import engine.data as D

    D.checkout("ds:v4", dest, store=root)
    assert fk.checkout_temporaries(dest) == [], "the next checkout removes the temporaries"
    assert fk.read_tree(dest) == trees["ds:v4"]
    assert_clean_after_gc(root, scratch, _ctx("checkout", "end"), "checkout")


def kill_registrations(tmp_path, scratch, trials):
    from engine.store import Store

    root = str(tmp_path / "store")
    Store(root, pack_max_bytes=1 << 18).close()
    committed: set[int] = set()

    def check(events, flying, ctx):
        committed.update(int(e["ref"].rpartition("v")[2]) for e in events if e["ev"] == "done")
        have = set(assert_registry_intact(root, ctx)["versions"].get("m", []))
        assert committed <= have, f"{ctx} reported committed, then gone: {committed - have}"
        assert len(have - committed) <= (1 if flying else 0), f"{ctx} unreported: {have - committed}"
        committed.update(have)

    _loop_trials("register", root, str(tmp_path), scratch, trials, check)
    assert_clean_after_gc(root, scratch, _ctx("register", "end"), "register")


def kill_alias_moves(template, tmp_path, scratch, trials):
    root = str(tmp_path / "store")
    shutil.copytree(template, root)
    targets = ["m:v2", "m:v3", "m:v4", "m:v5", "m:v1"]
    holder = [1]

    def check(events, flying, ctx):
        done = [e for e in events if e["ev"] == "done"]
        allowed = {int(done[-1]["target"].rpartition("v")[2]) if done else holder[0]}
        if flying:
            allowed.add(int(flying["target"].rpartition("v")[2]))
        now = assert_registry_intact(root, ctx)["aliases"].get("m@production")
        assert now in allowed, f"{ctx} m@production is v{now}, expected one of {allowed}"
        holder[0] = now

    _loop_trials("alias", root, str(tmp_path), scratch, trials, check, extra=targets)
    assert_clean_after_gc(root, scratch, _ctx("alias", "end"), "alias")


def kill_promotions(template, tmp_path, scratch, trials):
    root = str(tmp_path / "store")
    shutil.copytree(template, root)
    holder = [1]
    committed: set[int] = {1}

    def check(events, flying, ctx):
        promoted = [e for e in events if e["ev"] == "done" and e["op"] == "promote"]
        allowed = {int(promoted[-1]["target"].rpartition("v")[2]) if promoted else holder[0]}
        if flying and flying["op"] == "promote":
            allowed.add(int(flying["target"].rpartition("v")[2]))
        state = assert_registry_intact(root, ctx)
        now = state["aliases"].get("p@production")
        assert now in allowed, f"{ctx} p@production is v{now}, expected one of {allowed}"
        holder[0] = now
        committed.update(int(e["ref"].rpartition("v")[2]) for e in events
                         if e["ev"] == "done" and e["op"] == "register")
        have = set(state["versions"]["p"])
        assert committed <= have, f"{ctx} reported committed, then gone: {committed - have}"
        committed.update(have)

    # each trial's versions get lower val_loss than every version before (they pass the gate)
    _loop_trials("promote", root, str(tmp_path), scratch, trials, check,
                 extra=lambda: [str(max(committed))])
    assert_clean_after_gc(root, scratch, _ctx("promote", "end"), "promote")


def _gc_calibrate(op, template, tmp_path) -> tuple[float, float]:
    """(seconds from ready to the start of gc, seconds gc takes) of an uninterrupted run."""
    root = str(tmp_path / "calibrate")
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(template, root)
    killed, events, ready = run_driver(op, root, str(tmp_path), 0, TIMEOUT)
    assert not killed and [e["ev"] for e in events] == ["begin", "done"], events
    shutil.rmtree(root)
    return max(events[0]["t"] - ready, 0.0), events[1]["t"] - events[0]["t"]


def kill_gc(op, template, tmp_path, scratch, trials):
    start, took = _gc_calibrate(op, template, tmp_path)
    # what gc --keep-last 2 must keep: ds:v5, ds:v6; m:v4, m:v5 and m:v1 (aliased); p:v1
    must_ds = {"ds:v5", "ds:v6"}
    must_m = {1, 4, 5} if op == "gc-model" else {1, 2, 3, 4, 5}
    for t in range(trials):
        ctx = _ctx(op, t)
        root = str(tmp_path / f"store{t}")
        shutil.copytree(template, root)
        delay = fk.rng_for(fk.BASE_SEED, op, t, "delay").uniform(start, start + 1.1 * took)
        killed, events, _ = run_driver(op, root, str(tmp_path), 0, delay)
        _count(op, trials=1, killed=int(killed), in_flight=int(killed and in_flight(events) is not None),
               finished=int(not killed), ops_done=sum(e["ev"] == "done" for e in events))
        assert_verifies(root, ctx)
        refs = set(assert_datasets_intact(root, scratch, ctx))
        assert must_ds <= refs, f"{ctx} gc dropped a version it had to keep: {must_ds - refs}"
        state = assert_registry_intact(root, ctx)
        assert must_m <= set(state["versions"]["m"]), f"{ctx} registry versions {state}"
        assert state["aliases"] == {"m@production": 1, "p@production": 1}, f"{ctx} {state}"
        # run again, to the end: it finishes what the killed one began
        wait_out_torn_locks(root, op)
        killed, events, _ = run_driver(op, root, str(tmp_path), 0, TIMEOUT, stale=STALE)
        assert not killed and events[-1]["ev"] == "done", f"{ctx} gc run again: {events}"
        assert_verifies(root, ctx + " gc run again")
        if op == "gc-data":
            assert set(dataset_refs(root)) == must_ds, ctx
        else:
            assert set(registry_state(root)["versions"]["m"]) == must_m, ctx
        assert_clean_after_gc(root, scratch, ctx, op)
        shutil.rmtree(root)


def run_op(op, template, tmp_path, scratch, trials):
    if op == "snapshot":
        kill_snapshots(tmp_path, scratch, trials)
    elif op == "checkout":
        kill_checkouts(template, tmp_path, scratch, trials)
    elif op == "register":
        kill_registrations(tmp_path, scratch, trials)
    elif op == "alias":
        kill_alias_moves(template, tmp_path, scratch, trials)
    elif op == "promote":
        kill_promotions(template, tmp_path, scratch, trials)
    else:
        kill_gc(op, template, tmp_path, scratch, trials)


@pytest.mark.parametrize("op", OPS)
def test_sigkill_leaves_every_reported_version_intact(op, template, tmp_path, scratch):
    run_op(op, template, tmp_path, scratch, FAST_TRIALS)
    assert COUNTS[op]["trials"] >= FAST_TRIALS


@pytest.mark.soak
@pytest.mark.parametrize("op", OPS)
def test_sigkill_soak(op, template, tmp_path, scratch):
    run_op(op, template, tmp_path, scratch, SOAK_TRIALS)
    c = COUNTS[op]
    # the kills really land while operations run (not only between them, nor after gc ended)
    assert c["killed"] >= SOAK_TRIALS // 2, c
    assert c["in_flight"] >= SOAK_TRIALS // 3, c
