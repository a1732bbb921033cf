"""The model registry on S3 (a local moto server, tests/s3/server.py): the calls of
tests/test_registry.py with an ``s3://`` store, writers in several processes racing for
commit numbers (put-if-absent as a conditional PUT), and the refusal where the server
cannot do conditional writes.

Unmarked-soak tests run in ``make test`` (about 15 s); the ``soak`` ones (more writers,
promotions racing through gates) in ``make soak``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import traceback
import uuid

import pytest

from engine import config
from engine.registry import GateRejected, Registry
from engine.registry.log import LOG_DIR, commit_key
from engine.store import Store
from engine.store.fs import open_fs
from engine.store.s3 import REFUSAL, ConditionalPut, ConditionalWriteUnsupported

from .server import IGNORES_IF_NONE_MATCH, REJECTS_IF_NONE_MATCH

pytestmark = pytest.mark.s3

SPAWN = mp.get_context("spawn")


def bucket_prefix(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len("s3://"):].partition("?")[0].partition("/")
    return bucket, prefix


def commit_numbers(s3_server, uri) -> list[int]:
    """The numbers of the commit objects under the store's registry/log/, from a listing."""
    keys = s3_server.keys(*bucket_prefix(uri))
    return sorted(int(k.rsplit("/", 1)[1][:-5]) for k in keys
                  if k.startswith(LOG_DIR + "/") and k.endswith(".json"))


# ----------------------------------------------------------------------------- fast


def test_registry_on_s3(s3_store, tmp_path, monkeypatch):
    monkeypatch.setattr(config, "REGISTRY_CHECKPOINT_EVERY", 5)  # checkpoints and state
    monkeypatch.setattr(config, "REGISTRY_STATE_EVERY", 7)  # snapshots: put-if-absent too
    reg = Registry(s3_store)
    a = reg.register("m", b"one", metrics={"val_loss": 0.5})
    b = reg.register("m", b"two", metrics={"val_loss": 0.3}, params={"lr": 0.1})
    assert (a.ref, b.ref) == ("m:v1", "m:v2")
    assert reg.read_bytes("m:v1") == b"one" and reg.read_bytes("m") == b"two"
    src = tmp_path / "ckpt"
    (src / "sub").mkdir(parents=True)
    (src / "weights.bin").write_bytes(os.urandom(200_000))
    (src / "sub" / "cfg.json").write_text('{"a": 1}')
    d = reg.register("resnet", str(src))
    assert d.format == "files" and d.files == 2
    out = reg.pull("resnet:v1", tmp_path / "out")
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (src / "weights.bin").read_bytes()
    assert open(os.path.join(out, "sub", "cfg.json")).read() == '{"a": 1}'

    reg.set_alias("m:v1", "staging")
    assert reg.get("m@staging").version == 1
    assert reg.promote("m:v1", "production", gate="val_loss<=").version == 1
    assert reg.promote("m:v2", "production", gate="val_loss<=").version == 2
    reg.register("m", b"three", metrics={"val_loss": 0.4})
    with pytest.raises(GateRejected, match=r"val_loss 0.4 is not <= 0.3"):
        reg.promote("m:v3", "production", gate="val_loss<=")
    with reg.start_run("train", params={"lr": 0.1}) as run:
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.flush()  # a metrics segment: put-if-absent
        run.log_model("runmodel", b"weights")
    assert reg.metric_history(run.id, "loss").num_rows == 5
    report = reg.verify()
    assert report["ok"], report["problems"]
    assert report["checkpoints"] >= 1 and report["states"] >= 1
    head = reg.refresh()
    assert commit_numbers_of(reg) == list(range(1, head + 1))
    reg.close()

    # another host: a fresh index, caught up from the checkpoints and the log on S3
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "other-host"))
    other = Registry(s3_store, create=False)
    assert other.refresh() == head
    assert other.get("m@production").version == 2 and other.get("m@staging").version == 1
    assert other.read_bytes("runmodel") == b"weights"
    assert [v.version for v in other.versions("m")] == [1, 2, 3]
    other.close()


def commit_numbers_of(reg) -> list[int]:
    fs = reg.store.fs
    return sorted(int(n[:-5]) for s in fs.list(LOG_DIR) for n in fs.list(f"{LOG_DIR}/{s}"))


def _writer(i, uri, cache, n, barrier):
    """Register ``n`` versions of one shared name; what this writer was told it got."""
    os.environ["MLOPS_CACHE_DIR"] = cache
    reg = Registry(uri, create=False)
    reg.refresh()  # the first S3 requests (and the conditional-write probe) before the race
    lost, create = [0], reg.log.create

    def counting_create(seq, actions, before=None):  # counts lost races; changes nothing
        body = create(seq, actions, before)
        lost[0] += body is None
        return body

    reg.log.create = counting_create
    barrier.wait()
    got = []
    for j in range(n):
        payload = f"writer-{i}-{j}"
        mv = reg.register("shared", payload.encode(), metrics={"val_loss": (i * n + j) % 7})
        got.append((mv.version, payload, mv.seq))
    reg.close()
    return {"got": got, "lost": lost[0]}


def _promoter(i, uri, cache, n, barrier):
    """Register ``n`` versions and try to promote each through a gate (compare-and-set)."""
    os.environ["MLOPS_CACHE_DIR"] = cache
    reg = Registry(uri, create=False)
    reg.refresh()
    barrier.wait()
    got, moved = [], 0
    for j in range(n):
        payload = f"promoter-{i}-{j}"
        mv = reg.register("shared", payload.encode(), metrics={"val_loss": ((i + 3) * (j + 5)) % 11})
        got.append((mv.version, payload, mv.seq))
        try:
            moved += reg.promote(mv.ref, "production", gate="val_loss<=").moved
        except GateRejected:
            pass
    reg.close()
    return {"got": got, "lost": 0, "moved": moved}


def _child(q, i, target, args):
    try:
        q.put((i, "ok", target(*args)))
    except BaseException:
        q.put((i, "error", traceback.format_exc()))


def run_children(target, args_list, timeout=240):
    q = SPAWN.Queue()
    procs = [SPAWN.Process(target=_child, args=(q, i, target, a)) for i, a in enumerate(args_list)]
    for p in procs:
        p.start()
    results = {}
    deadline = time.monotonic() + timeout
    try:
        while len(results) < len(procs):
            try:
                i, status, value = q.get(timeout=max(1.0, deadline - time.monotonic()))
            except Exception:
                pytest.fail(f"children timed out: {len(results)} of {len(procs)} answered")
            results[i] = (status, value)
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    errors = [v for s, v in results.values() if s == "error"]
    assert not errors, "a child failed:\n" + "\n".join(errors)
    return [results[i][1] for i in range(len(procs))]


def check_every_commit_landed_once(s3_server, uri, results, tmp_path, name="shared"):
    total = sum(len(r["got"]) for r in results)
    os.environ["MLOPS_CACHE_DIR"] = str(tmp_path / "census")  # a fresh index
    reg = Registry(uri, create=False)
    head = reg.refresh()
    versions = reg.versions(name)
    assert [v.version for v in versions] == list(range(1, total + 1)), "gaps or duplicates"
    held = {v.version: (reg.read_bytes(v.ref).decode(), v.seq) for v in versions}
    for r in results:  # what each writer was told it registered is what the log holds
        for version, payload, seq in r["got"]:
            assert held[version] == (payload, seq)
    assert len({seq for _, seq in held.values()}) == total, "two versions claim one commit"
    assert commit_numbers(s3_server, uri) == list(range(1, head + 1))  # no gap in the log
    return reg


def test_concurrent_writers_are_gap_free_on_s3(s3_server, s3_store, tmp_path):
    Store(s3_store).close()
    procs, n = 4, 10
    barrier = SPAWN.Barrier(procs)
    results = run_children(_writer, [(i, s3_store, str(tmp_path / f"cache{i}"), n, barrier)
                                     for i in range(procs)])
    print(f"lost commit races per writer: {[r['lost'] for r in results]}")
    reg = check_every_commit_landed_once(s3_server, s3_store, results, tmp_path)
    assert reg.refresh() == procs * n
    reg.close()


def test_put_if_absent_retried_after_a_lost_response_is_still_ours(s3_store, monkeypatch):
    from botocore.exceptions import ClientError

    fs = open_fs(s3_store)
    cp = ConditionalPut(fs.fs, fs.root)
    cp.check()  # the probe, before the client's answers are rewritten
    client = cp.client()
    real = client.put_object

    def retried(exc):  # as botocore reports a 412 that answered its own retry
        exc.response["ResponseMetadata"]["RetryAttempts"] = 1
        return exc

    def lost_answer(**kw):  # the PUT lands, its answer is lost, botocore sends it again
        real(**kw)
        try:
            return real(**kw)
        except ClientError as exc:
            raise retried(exc) from None

    monkeypatch.setattr(client, "put_object", lost_answer)
    assert cp.put(fs.path("registry/log/mine.json"), b"mine") is True

    def other_won(**kw):  # a retried PUT refused because another writer's object is there
        try:
            return real(**kw)
        except ClientError as exc:
            raise retried(exc) from None

    real(Bucket=cp.bucket, Key=f"{bucket_prefix(s3_store)[1]}/registry/log/theirs.json", Body=b"t")
    monkeypatch.setattr(client, "put_object", other_won)
    assert cp.put(fs.path("registry/log/theirs.json"), b"mine") is False
    assert fs.read_bytes("registry/log/theirs.json") == b"t"


def test_conditional_request_conflict_is_retried(s3_store, monkeypatch):
    from botocore.exceptions import ClientError

    fs = open_fs(s3_store)
    cp = ConditionalPut(fs.fs, fs.root)
    cp.check()  # the probe, before the client's answers are rewritten
    client, calls = cp.client(), []
    real = client.put_object

    def conflict_twice(**kw):
        calls.append(kw["Key"])
        if len(calls) <= 2:
            raise ClientError({"Error": {"Code": "ConditionalRequestConflict", "Message": "busy"},
                               "ResponseMetadata": {"HTTPStatusCode": 409}}, "PutObject")
        return real(**kw)

    monkeypatch.setattr(client, "put_object", conflict_twice)
    assert cp.put(fs.path("k.json"), b"x") is True and len(calls) == 3
    assert cp.put(fs.path("k.json"), b"y") is False  # after the retries: taken, not ours
    assert fs.read_bytes("k.json") == b"x"


@pytest.mark.parametrize("kind, why", [(IGNORES_IF_NONE_MATCH, "ignores the header"),
                                       (REJECTS_IF_NONE_MATCH, "rejects a PUT with If-None-Match")])
def test_a_server_without_conditional_writes_is_refused(s3_server, kind, why, tmp_path):
    bucket = s3_server.bucket(f"{kind}{uuid.uuid4().hex[:12]}")
    uri = s3_server.uri(bucket, "store")
    with pytest.raises(ConditionalWriteUnsupported) as err:
        Store(uri)
    assert str(err.value).startswith(REFUSAL) and why in str(err.value)
    with pytest.raises(ConditionalWriteUnsupported, match="registry commits need them"):
        Registry(uri).register("m", b"weights")
    assert s3_server.keys(bucket, "store") == []  # no store, no commit, no probe left
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    import engine.data as D

    with pytest.raises(ConditionalWriteUnsupported):
        D.snapshot(src, "ds", store=uri)


def test_without_boto3_put_if_absent_is_refused(s3_store, monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 raises ImportError
    with pytest.raises(ConditionalWriteUnsupported, match=r"pip install 'mlops-engine\[s3\]'"):
        Store(s3_store)
    with pytest.raises(ConditionalWriteUnsupported, match="^" + REFUSAL.replace("(", r"\(")
                       .replace(")", r"\)")):
        open_fs(s3_store).create_exclusive("registry/log/x.json", b"x")


def test_other_pyarrow_file_systems_refuse_put_if_absent():
    fs = open_fs("mock:///store")
    with pytest.raises(ConditionalWriteUnsupported, match="'mock' file system"):
        fs.create_exclusive(commit_key(1), b"{}")
    assert not fs.exists(commit_key(1))


# ----------------------------------------------------------------------------- soak


@pytest.mark.soak
def test_many_concurrent_writers_are_gap_free_on_s3(s3_server, s3_store, tmp_path, monkeypatch):
    monkeypatch.setattr(config, "REGISTRY_CHECKPOINT_EVERY", 50)
    Store(s3_store).close()
    procs, n = 8, 25
    barrier = SPAWN.Barrier(procs)
    # writers 0-3 share one host-local index, 4-7 each have their own
    results = run_children(_writer, [(i, s3_store, str(tmp_path / ("cache-shared" if i < 4 else f"cache{i}")),
                                      n, barrier) for i in range(procs)], timeout=600)
    print(f"lost commit races per writer: {[r['lost'] for r in results]}")
    reg = check_every_commit_landed_once(s3_server, s3_store, results, tmp_path)
    assert reg.verify()["ok"]
    reg.close()


@pytest.mark.soak
def test_promotions_racing_through_gates_are_compare_and_set_on_s3(s3_server, s3_store, tmp_path):
    Store(s3_store).close()
    procs, n = 6, 8
    barrier = SPAWN.Barrier(procs)
    results = run_children(_promoter, [(i, s3_store, str(tmp_path / f"cache{i}"), n, barrier)
                                       for i in range(procs)], timeout=600)
    reg = check_every_commit_landed_once(s3_server, s3_store, results, tmp_path)
    moves = []  # every move of production, in commit order
    for seq in range(1, reg.refresh() + 1):
        moves += [a for a in reg.log.read(seq)["actions"]
                  if a["op"] == "alias" and a["alias"] == "production"]
    assert len(moves) == sum(r["moved"] for r in results) >= 1
    for before, after in zip([None] + moves, moves):
        # each gate compared with the true holder: the one the move before it set
        assert after["previous"] == (None if before is None else before["version"])
        if after.get("gate") and after["gate"]["held"] is not None:
            assert after["gate"]["new"] <= after["gate"]["held"]
    assert reg.get("shared@production").version == moves[-1]["version"]
    reg.close()
