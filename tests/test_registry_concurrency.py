"""The registry's concurrency and durability claims, tested with real processes.

* N writers committing at once to one registry directory (each with its own host-local
  index, and several sharing one): every commit lands exactly once, version numbers are
  unique and gap-free per name, nothing is lost.
* Two processes racing to promote different versions through a gate: the gate is
  evaluated against the true current holder (compare-and-set), never a stale read.
* A writer SIGKILLed mid-commit leaves the log readable; a half-written commit file is
  never visible as a commit.
* The SQLite index is a cache: deleting it changes no answer; checkpoints keep a cold
  start from reading every commit file.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import traceback

import pyarrow as pa
import pytest

from engine import config
from engine.registry import (
    GateRejected,
    Registry,
    RegistryCorruption,
    RegistryFormatError,
    UnknownReference,
)
from engine.registry import log as logmod
from engine.registry.log import CHECKPOINT_DIR, LOG_DIR, CommitLog, commit_key
from engine.store import Store

SPAWN = mp.get_context("spawn")
SHARED = ("alpha", "beta")


# ----------------------------------------------------------------------------- helpers


def log_files(store_root) -> tuple[list[int], list[str]]:
    """(sequence numbers of the commit files, other files) under registry/log."""
    seqs, other = [], []
    for dp, _dirs, files in os.walk(os.path.join(store_root, *LOG_DIR.split("/"))):
        for f in files:
            if f.endswith(".json") and f[:-5].isdigit() and len(f) == 25:
                seqs.append(int(f[:-5]))
            else:
                other.append(os.path.join(dp, f))
    return sorted(seqs), other


def check_log_files(store_root) -> int:
    """Every commit file parses, holds its own number and the numbers are 1..head; returns head."""
    seqs, other = log_files(store_root)
    assert seqs == list(range(1, len(seqs) + 1)), f"log not contiguous: {seqs[:5]}..{seqs[-5:]}"
    for s in seqs:
        with open(os.path.join(store_root, *commit_key(s).split("/")), "rb") as f:
            body = logmod.decode(f.read(), s, f"commit {s}")  # raises on a partial file
        assert body["seq"] == s and body["actions"]
    for p in other:  # only the temporaries of put-if-absent may sit beside the commits
        base = os.path.basename(p)
        assert base.startswith(".") and base.endswith(".tmp"), f"unexpected file in the log: {p}"
    return len(seqs)


def run_children(target, args_list, timeout=120):
    """Run ``target(*args)`` in spawned processes at once; returns their results in order.

    A child returns ``("ok", value)`` or ``("error", traceback)`` through a queue, so a
    failure in a child fails the test with the child's traceback.
    """
    q = SPAWN.Queue()
    procs = [SPAWN.Process(target=_child_main, args=(q, i, target, args)) for i, args in
             enumerate(args_list)]
    for p in procs:
        p.start()
    results: dict = {}
    deadline = time.monotonic() + timeout
    try:
        while len(results) < len(procs):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"children timed out; {len(results)} of {len(procs)} answered")
            try:
                i, status, value = q.get(timeout=min(left, 5))
            except Exception:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    pytest.fail(f"a child died with exit code {dead[0].exitcode}")
                continue
            results[i] = (status, value)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    errors = [v for s, v in results.values() if s == "error"]
    assert not errors, "a child failed:\n" + "\n".join(errors)
    return [results[i][1] for i in range(len(procs))]


def _child_main(q, i, target, args):
    try:
        q.put((i, "ok", target(*args)))
    except BaseException:
        q.put((i, "error", traceback.format_exc()))


# ----------------------------------------------------------------------------- (a) N writers

N_PROCS = 8
K = 4  # versions of each shared name per process


def _writer(i, store, cache, k, barrier):
    """Register k versions of each shared name and of a name of its own, inside a run."""
    os.environ["MLOPS_CACHE_DIR"] = cache
    reg = Registry(store, create=False)
    pa.array([0])  # pyarrow's first array from a list imports pandas (~1 s): not inside the race
    lost, create = [0], reg.log.create

    def counting_create(seq, actions, before=None):  # counts lost races; changes nothing
        body = create(seq, actions, before)
        lost[0] += body is None
        return body

    reg.log.create = counting_create
    barrier.wait()
    got = []
    with reg.start_run(f"train{i}", params={"proc": i}) as run:
        for j in range(k):
            for name in SHARED:
                payload = f"proc-{i}-{j}-{name}".encode()
                mv = reg.register(name, payload, metrics={"val_loss": i + j / 10}, run=run)
                got.append((name, mv.version, payload.decode(), mv.seq))
            run.log_metric("loss", float(j))
        mv = run.log_model(f"own{i}", f"proc-{i}-own".encode())
        got.append((f"own{i}", mv.version, f"proc-{i}-own", mv.seq))
    reg.tag(f"own{i}:v1", writer=str(i))
    reg.close()
    return {"registered": got, "run": run.id, "lost": lost[0]}


def _census(store, cache):
    """From a fresh process and a fresh index: everything a checker needs, as plain data."""
    os.environ["MLOPS_CACHE_DIR"] = cache
    reg = Registry(store, create=False)
    head = reg.refresh()
    out = {"head": head, "history": [h["seq"] for h in reg.history()], "names": {},
           "runs": {r["run_id"]: (r["status"], r["params"], r["metrics"]) for r in reg.runs()}}
    for a in reg.artifacts():
        vs = reg.versions(a["name"], include_deleted=True)
        out["names"][a["name"]] = [(mv.version, reg.read_bytes(mv.ref).decode(), mv.seq, mv.run_id,
                                    mv.tags) for mv in vs]
    reg.close()
    return out


@pytest.mark.parametrize("layout", ["mixed", "shared"])
def test_concurrent_writers_every_commit_lands_once(tmp_path, layout):
    store = str(tmp_path / "store")
    Store(store).close()  # the store the children open with create=False
    # mixed: processes 0-3 share one host-local index (one host), 4-7 each have their own
    # (separate hosts); shared: all eight on one index.
    caches = [str(tmp_path / ("cache-shared" if layout == "shared" or i < 4 else f"cache-{i}"))
              for i in range(N_PROCS)]
    barrier = SPAWN.Barrier(N_PROCS)
    results = run_children(_writer, [(i, store, caches[i], K, barrier) for i in range(N_PROCS)])

    print(f"{layout}: lost commit races per writer: {[r['lost'] for r in results]}")
    census = run_children(_census, [(store, str(tmp_path / "cache-fresh"))])[0]
    per_proc = 2 * K + 1 + 2 + 1  # versions, own version, run start/end, tag
    expected = N_PROCS * per_proc
    assert census["head"] == expected
    assert check_log_files(store) == expected
    assert census["history"] == list(range(expected, 0, -1))

    for name in SHARED:
        rows = census["names"][name]
        assert [r[0] for r in rows] == list(range(1, N_PROCS * K + 1)), f"{name}: gaps or duplicates"
        payloads = sorted(r[1] for r in rows)
        assert payloads == sorted(f"proc-{i}-{j}-{name}" for i in range(N_PROCS) for j in range(K))
    seqs = sorted(r[2] for rows in census["names"].values() for r in rows)
    assert len(seqs) == len(set(seqs)), "two versions claim the same commit"

    # What each writer was told it registered is exactly what the log holds.
    for i, res in enumerate(results):
        for name, version, payload, seq in res["registered"]:
            row = census["names"][name][version - 1]
            assert row[:3] == (version, payload, seq), f"proc {i}: {name}:v{version} is {row}"
            assert row[3] == res["run"]
        assert census["names"][f"own{i}"][0][4] == {"writer": str(i)}
        status, params, metrics = census["runs"][res["run"]]
        assert status == "FINISHED" and params == {"proc": i} and metrics["loss"]["count"] == K

    # The indexes the writers used agree with the fresh one.
    for cache in sorted(set(caches)):
        os.environ["MLOPS_CACHE_DIR"] = cache
        try:
            assert _census(store, cache) == census
        finally:
            os.environ.pop("MLOPS_CACHE_DIR")


# ----------------------------------------------------------------------------- (b) gate race

ROUNDS = 10


def _promoter(store, cache, which, barrier, rounds):
    """Each round: wait for the other promoter, then promote ``which`` through the gate."""
    os.environ["MLOPS_CACHE_DIR"] = cache
    reg = Registry(store, create=False)
    out = []
    for r in range(rounds):
        barrier.wait()
        try:
            reg.promote(f"race{r}:v{which}", "production", gate="val_loss<=")
            out.append("ok")
        except GateRejected:
            out.append("rejected")
    reg.close()
    return out


@pytest.mark.parametrize("layout", ["separate", "shared"])
def test_gate_race_is_compare_and_set(tmp_path, layout):
    store = str(tmp_path / "store")
    metric = {1: 0.5, 2: 0.3, 3: 0.4}
    with Registry(store, index_path=":memory:") as reg:
        for r in range(ROUNDS):
            for v in (1, 2, 3):
                reg.register(f"race{r}", f"race{r}-v{v}".encode(), metrics={"val_loss": metric[v]})
            reg.promote(f"race{r}:v1", "production")
    caches = [str(tmp_path / ("cache" if layout == "shared" else f"cache{w}")) for w in (2, 3)]
    barrier = SPAWN.Barrier(2)
    res2, res3 = run_children(_promoter, [(store, caches[0], 2, barrier, ROUNDS),
                                          (store, caches[1], 3, barrier, ROUNDS)])

    orders = {"v2 first": 0, "v3 first": 0}
    with Registry(store, index_path=":memory:") as reg:
        for r in range(ROUNDS):
            name = f"race{r}"
            assert reg.get(f"{name}@production").version == 2, f"round {r}: the worse version holds"
            assert res2[r] == "ok", f"round {r}: v2 (the best) was rejected"
            moves = []
            for seq in range(1, reg.refresh() + 1):
                for a in reg.log.read(seq)["actions"]:
                    if a["op"] == "alias" and a["name"] == name and a["alias"] == "production":
                        moves.append(a)
            holder = None
            for a in moves:  # the chain of moves: each one knew the true previous holder
                assert a["previous"] == holder, f"round {r}: stale previous in {a}"
                if "gate" in a:
                    assert a["gate"]["held"] == metric[holder], f"round {r}: gate saw a stale holder"
                    assert a["gate"]["new"] == metric[a["version"]] <= a["gate"]["held"]
                holder = a["version"]
            assert holder == 2
            if res3[r] == "ok":  # v3 moved first, then v2 passed against v3
                orders["v3 first"] += 1
                assert [(a["previous"], a["version"]) for a in moves] == [(None, 1), (1, 3), (3, 2)]
            else:  # v2 moved first; v3 was checked against v2 and rejected, leaving no commit
                orders["v2 first"] += 1
                assert [(a["previous"], a["version"]) for a in moves] == [(None, 1), (1, 2)]
            hist = [h["summary"] for h in reg.history(name)]
            assert any("(gate val_loss<=: 0.3 vs " in s for s in hist)
    print(f"gate race interleavings over {ROUNDS} rounds: {orders}")


# ----------------------------------------------------------------------------- (c) kill mid-commit

KILL_CHILD = textwrap.dedent("""
    import os, sys
    os.environ["MLOPS_CACHE_DIR"] = sys.argv[2]
    from engine.registry import Registry
    reg = Registry(sys.argv[1], create=False)
    tag = sys.argv[3]
    i = 0
    while True:
        mv = reg.register("k", f"{tag}-{i}".encode() * 50, metrics={"val_loss": 1.0 / (i + 1)})
        if i == 0:
            print("committing", flush=True)
        if i % 3 == 0:
            reg.set_alias(mv.ref, "production")
        if i % 5 == 0:
            reg.tag(mv.ref, n=str(i))
        i += 1
""")


def test_sigkill_mid_commit_leaves_a_readable_log(tmp_path):
    store = str(tmp_path / "store")
    Store(store).close()  # the store the children open with create=False
    script = tmp_path / "child.py"
    script.write_text(KILL_CHILD)
    cache = str(tmp_path / "child-cache")  # the killed writers' on-disk index, kept across rounds
    rng = random.Random(20240611)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for rnd in range(6):
        p = subprocess.Popen([sys.executable, str(script), store, cache, f"r{rnd}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert p.stdout.readline().strip() == "committing", p.stderr.read()
        time.sleep(rng.uniform(0.0, 0.5))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
        p.stderr.close()

        head = check_log_files(store)  # no partial file, contiguous numbers
        assert head > 0, "the child made no commit before it was killed"
        with Registry(store, create=False, index_path=":memory:") as reg:
            assert reg.refresh() == head
            assert [h["seq"] for h in reg.history()] == list(range(head, 0, -1))
            vs = reg.versions("k")
            assert [mv.version for mv in vs] == list(range(1, len(vs) + 1))
            for mv in vs[-3:]:
                assert reg.read_bytes(mv.ref)  # content stored before its commit
            state = (reg.artifacts(), [mv.to_dict() for mv in vs], reg.history())
        # The killed writers' on-disk index (possibly killed mid-transaction) agrees.
        os.environ["MLOPS_CACHE_DIR"] = cache
        try:
            with Registry(store, create=False) as reg:
                assert (reg.artifacts(), [mv.to_dict() for mv in reg.versions("k")],
                        reg.history()) == state
        finally:
            os.environ.pop("MLOPS_CACHE_DIR")
    _seqs, other = log_files(store)
    print(f"{head} commits, {len(other)} leftover temporaries after 6 kills")

    with Registry(store, create=False, index_path=":memory:") as reg:
        n = len(reg.versions("k"))
        mv = reg.register("k", b"after the kills")
        assert mv.version == n + 1 and mv.seq == head + 1
        assert reg.read_bytes("k@latest") == b"after the kills"
    assert check_log_files(store) == head + 1


def test_temporary_in_log_dir_is_ignored_and_garbage_commit_raises(tmp_path):
    store = str(tmp_path / "store")
    with Registry(store, index_path=":memory:") as reg:
        reg.register("m", b"one")
        reg.register("m", b"two")
    fs_root = os.path.join(store, *commit_key(3).split("/")[:-1])
    # A writer killed between writing its temporary and linking it leaves this behind.
    with open(os.path.join(fs_root, f".{os.path.basename(commit_key(3))}.0123456789ab.tmp"), "wb") as f:
        f.write(b'{"format_version": 1, "seq": 3, "actions": [{"op": "regis')
    with open(os.path.join(fs_root, ".garbage.tmp"), "wb") as f:
        f.write(os.urandom(100))
    with Registry(store, create=False, index_path=":memory:") as reg:
        assert reg.refresh() == 2
        assert [mv.version for mv in reg.versions("m")] == [1, 2]
        assert reg.register("m", b"three").seq == 3  # the number of the stale temporary
        assert reg.read_bytes("m") == b"three"

    # A commit file whose content is garbage is corruption, never a silently skipped commit.
    path = os.path.join(store, *commit_key(4).split("/"))
    for bad in (b"\x00garbage\xff", b"", b'{"format_version": 1, "seq": 4, "actions": [',
                b'{"format_version": 1, "seq": 5, "actions": []}', b"[1, 2]"):
        with open(path, "wb") as f:
            f.write(bad)
        with Registry(store, create=False, index_path=":memory:") as reg:
            with pytest.raises(RegistryCorruption, match="00000000000000000004.json"):
                reg.refresh()
    with open(path, "wb") as f:
        f.write(b'{"format_version": 99, "seq": 4, "actions": []}')
    with Registry(store, create=False, index_path=":memory:") as reg:
        with pytest.raises(RegistryFormatError, match="format_version 99"):
            reg.get("m")


# ----------------------------------------------------------------------------- (d) index is a cache


def _build_mixed(reg, tmp_path):
    with reg.start_run("prep", params={"lr": 0.1}, tags={"team": "a"}) as prep:
        prep.log_metric("acc", 0.5)
        prep.log_metric("acc", 0.75)
        base = prep.log_model("base", b"base weights", metrics={"val_loss": 0.9}, tags={"stage": "pre"})
    for i in range(5):
        with reg.start_run("train", params={"seed": i}, inputs=[base.ref]) as run:
            for step in range(3):
                run.log_metric("val_loss", 1.0 / (i + step + 2), step=step)
            run.log_param("epochs", 3)
            run.set_tag("try", i)
            mv = run.log_model("clf", f"clf weights {i}".encode(), inputs=[base.ref],
                               message=f"try {i}", params={"i": i})
        if i == 0:
            reg.promote(mv.ref, "production")
        else:
            try:
                reg.promote(mv.ref, "production", gate="val_loss<=")
            except GateRejected:
                pass
        reg.set_alias(mv.ref, "staging")
    reg.register("ckpt", {"w": pa.array([1.0]).to_numpy()}, kind="checkpoint")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.txt").write_text("a")
    (tmp_path / "dir" / "b.txt").write_text("b")
    reg.register("tree", str(tmp_path / "dir"), tags={"k": "v"}, aliases=["blue"])
    reg.register("tree", b"tree two", aliases="blue", inputs=["clf:v2", "ckpt"])
    reg.tag("clf:v3", reviewed="yes")
    reg.remove_alias("clf", "staging")
    reg.set_alias("clf:v4", "canary")
    reg.promote("clf:v1", "production", force=True)
    with pytest.raises(RuntimeError):  # a run that fails is recorded FAILED
        with reg.start_run("broken"):
            raise RuntimeError("boom")
    reg.gc(keep_last=2, grace=0)
    reg.register("clf", b"after gc", metrics={"val_loss": 0.01})


def _answers(reg) -> dict:
    runs = reg.runs()
    out = {
        "refs": {r: _mv(reg, r) for r in ("clf", "clf@latest", "clf@production", "clf@canary",
                                         "clf:v1", "clf:v2", "clf:v4", "clf:v6", "tree@blue",
                                         "base", "ckpt", "tree:v1", "clf:nope", "clf@staging",
                                         "nothere")},
        "versions": {n: [m.to_dict() for m in reg.versions(n, include_deleted=d)]
                     for n in ("clf", "base", "tree", "ckpt") for d in (False, True)},
        "artifacts": [reg.artifacts(), reg.artifacts("checkpoint")],
        "history": [reg.history(), reg.history("clf"), reg.history("tree", limit=3)],
        "search": [[m.to_dict() for m in reg.search(**kw)] for kw in (
            {}, {"name": "c*"}, {"kind": "model"}, {"tag": "stage=pre"}, {"tag": "reviewed"},
            {"metric": "val_loss<0.4"}, {"alias": "production"}, {"alias": "latest"})],
        "lineage": [reg.lineage(r, d) for r in ("clf:v5", "base", "tree:v2") for d in (None, 1)]
        + [reg.lineage("run:" + runs[1]["run_id"])],
        "runs": [runs, reg.runs("train"), reg.runs(status="failed")],
        "get_run": [reg.get_run(r["run_id"][:6]) for r in runs],
        "compare": [reg.compare("clf:v4", "clf:v5"), reg.compare("base", "tree@blue")],
        "metric_history": [reg.metric_history(runs[2]["run_id"], "val_loss").to_pylist()],
        "metric_of": [reg.metric_of(reg.get("clf:v5"), "val_loss")],
    }
    return out


def _mv(reg, ref):
    try:
        return reg.get(ref).to_dict()
    except (UnknownReference, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def test_deleting_the_index_changes_no_answer(tmp_path):
    cache = tmp_path / "cache"
    os.environ["MLOPS_CACHE_DIR"] = str(cache)
    try:
        store = str(tmp_path / "store")
        with Registry(store) as reg:
            _build_mixed(reg, tmp_path)
            before = _answers(reg)
            path = reg.index.path
        assert os.path.exists(path)

        with Registry(store) as reg:  # warm: the same index file
            assert _answers(reg) == before
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        with Registry(store) as reg:
            assert reg.index.path == path and reg.index.last_seq == 0
            assert _answers(reg) == before
        assert os.path.exists(path)
        with Registry(store, index_path=":memory:") as reg:
            assert _answers(reg) == before
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        with open(path, "wb") as f:  # an index SQLite cannot open: in-memory, same answers
            f.write(b"this is not a database" * 100)
        with pytest.warns(UserWarning, match="in-memory"):
            reg = Registry(store)
        with reg:
            assert reg.index.path == ":memory:"
            assert _answers(reg) == before
    finally:
        os.environ.pop("MLOPS_CACHE_DIR")


# ----------------------------------------------------------------------------- (e) checkpoints


def _fill(reg, n):
    """Exactly n commits: registrations, alias moves and tags."""
    i = 0
    while reg.refresh() < n:
        if i % 3 == 0 or i < 2:
            reg.register(f"m{i % 4}", f"payload {i}".encode(), metrics={"val_loss": i})
        elif i % 3 == 1:
            reg.set_alias(f"m{i % 2}:v1", f"a{i % 7}")  # a no-op (no commit) if it holds v1
        else:
            reg.tag("m1:v1", step=str(i))
        i += 1


def test_checkpoints_make_a_cold_start_read_few_commits(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "REGISTRY_CHECKPOINT_EVERY", 10)
    store = str(tmp_path / "store")
    Store(store).close()
    with Registry(store, index_path=":memory:") as reg:
        _fill(reg, 95)
        assert reg.refresh() == 95
        assert reg.log.checkpoints() == list(range(10, 91, 10))
        covered = []
        for last in reg.log.checkpoints():
            first, rows = reg.log.read_checkpoint(last)
            covered += [s for s, _ in rows]
            for s, body in rows:  # a checkpoint row is the commit file, byte for byte
                assert body.encode() == open(os.path.join(store, *commit_key(s).split("/")),
                                             "rb").read()
        assert covered == list(range(1, 91))
        before = _answers_small(reg)

    reads, cps = [], []
    real_read, real_cp = CommitLog.read, CommitLog.read_checkpoint
    monkeypatch.setattr(CommitLog, "read", lambda self, seq: reads.append(seq) or real_read(self, seq))
    monkeypatch.setattr(CommitLog, "read_checkpoint",
                        lambda self, last: cps.append(last) or real_cp(self, last))
    with Registry(store, index_path=str(tmp_path / "cold.sqlite")) as reg:
        assert reg.refresh() == 95
        assert cps == list(range(10, 91, 10))
        assert reads == [91, 92, 93, 94, 95, 96]  # the commits after the last checkpoint, then the miss
        assert _answers_small(reg) == before
    reads.clear()
    cps.clear()
    with Registry(store, index_path=str(tmp_path / "cold.sqlite")) as reg:  # warm
        assert reg.refresh() == 95
        assert cps == [] and reads == [96]
        assert _answers_small(reg) == before
    # Without the checkpoints the log alone gives the same answers.
    for last in range(10, 91, 10):
        os.rename(os.path.join(store, *logmod.checkpoint_key(last).split("/")),
                  str(tmp_path / f"cp{last}"))
    with Registry(store, index_path=":memory:") as reg:
        assert _answers_small(reg) == before
    for last in range(10, 91, 10):
        os.rename(str(tmp_path / f"cp{last}"),
                  os.path.join(store, *logmod.checkpoint_key(last).split("/")))
    monkeypatch.undo()

    # A checkpoint written by a newer format, and a corrupt one.
    key = os.path.join(store, *logmod.checkpoint_key(90).split("/"))
    good = open(key, "rb").read()
    t = pa.ipc.open_file(pa.py_buffer(good)).read_all()
    meta = dict(t.schema.metadata)
    newer = t.replace_schema_metadata({**meta, b"format_version": b"3"})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, newer.schema) as w:
        w.write_table(newer)
    cases = [(sink.getvalue().to_pybytes(), RegistryFormatError, "format_version 3"),
             (good[: len(good) // 2], RegistryCorruption, "not a readable Arrow file"),
             (b"garbage" * 20, RegistryCorruption, "not a readable Arrow file")]
    shifted = t.replace_schema_metadata({**meta, b"first": b"82"})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, shifted.schema) as w:
        w.write_table(shifted)
    cases.append((sink.getvalue().to_pybytes(), RegistryCorruption, "does not hold commits"))
    commits = t.column("commit").to_pylist()
    for i, bad, msg in ((4, "{not json", "commit 85 is not valid JSON"),
                        (4, commits[3], "does not hold commit 85"),
                        (4, '{"format_version": 7, "seq": 85, "actions": []}', "format_version 7")):
        rows = commits[:i] + [bad] + commits[i + 1:]
        tampered = pa.table({"seq": t.column("seq"), "commit": rows}, schema=t.schema)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_file(sink, tampered.schema) as w:
            w.write_table(tampered)
        cases.append((sink.getvalue().to_pybytes(),
                      RegistryFormatError if "format" in msg else RegistryCorruption, msg))
    os.makedirs(os.path.dirname(key), exist_ok=True)
    with open(os.path.join(os.path.dirname(key), f".{os.path.basename(key)}.0123456789ab.tmp"),
              "wb") as f:  # a checkpoint writer killed before publishing
        f.write(b"partial")
    with Registry(store, create=False, index_path=":memory:") as reg:
        assert reg.log.checkpoints() == list(range(10, 91, 10))
        assert _answers_small(reg) == before
    for data, exc, msg in cases:
        with open(key, "wb") as f:
            f.write(data)
        with Registry(store, create=False, index_path=":memory:") as reg:
            with pytest.raises(exc, match=msg):
                reg.get("m1")
    with open(key, "wb") as f:
        f.write(good)
    with Registry(store, create=False, index_path=":memory:") as reg:
        assert _answers_small(reg) == before


def test_checkpoint_written_by_a_writer_that_did_not_see_every_commit(tmp_path, monkeypatch):
    """Two registries on one store: checkpoints come out contiguous whichever writes them."""
    monkeypatch.setattr(config, "REGISTRY_CHECKPOINT_EVERY", 10)
    store = str(tmp_path / "store")
    Store(store).close()
    a = Registry(store, index_path=":memory:")
    b = Registry(store, create=False, index_path=":memory:")
    for i in range(45):
        (a if i % 3 else b).register("m", f"p{i}".encode())
    assert a.log.checkpoints() == [10, 20, 30, 40]
    c = Registry(store, create=False, index_path=":memory:")
    assert [mv.version for mv in c.versions("m")] == list(range(1, 46))
    for r in (a, b, c):
        r.close()
    assert os.path.isdir(os.path.join(store, *CHECKPOINT_DIR.split("/")))


def _answers_small(reg) -> dict:
    return {"artifacts": reg.artifacts(), "history": reg.history(),
            "versions": {n: [m.to_dict() for m in reg.versions(n)] for n in ("m0", "m1", "m2", "m3")},
            "get": [reg.get(r).to_dict() for r in ("m0", "m1:v1", "m1@a1", "m0@a0")],
            "search": [m.to_dict() for m in reg.search(tag="step")],
            "bodies": [json.dumps(reg.log.read(s), sort_keys=True) for s in (1, 50, 95)]}
