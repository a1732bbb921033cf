"""Index snapshots (``registry/checkpoints/<seq>.state``): a host without an index starts
from the newest snapshot and replays only later commits, with the same answers; an
unusable snapshot is skipped with a warning, never trusted."""

from __future__ import annotations

import os
import warnings

import pytest

from engine import config
from engine.registry import Registry
from engine.registry import index as index_mod
from engine.registry.log import CommitLog, state_key


def answers(reg: Registry) -> dict:
    return {"head": reg.refresh(),
            "get": [reg.get(r).to_dict() for r in ("m", "m:v3", "m@prod", "n")],
            "versions": [v.to_dict() for v in reg.versions("m")],
            "artifacts": reg.artifacts(), "history": reg.history(),
            "runs": reg.runs(), "lineage": reg.lineage("n")}


@pytest.fixture
def built(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "REGISTRY_CHECKPOINT_EVERY", 10)
    monkeypatch.setattr(config, "REGISTRY_STATE_EVERY", 20)
    monkeypatch.setattr(index_mod, "STATE_MIN_GAP", 0)
    root = str(tmp_path / "s")
    reg = Registry(root, index_path=":memory:")
    for i in range(25):
        reg.register("m", f"payload {i}".encode(), metrics={"loss": 1.0 / (i + 1)})
    reg.promote("m:v3", "prod")
    with reg.start_run("train", inputs=["m:v2"]) as run:
        run.log_metric("x", 1.0)
        run.log_model("n", b"out")
    for i in range(15):
        reg.register("n", f"more {i}".encode())
    want = answers(reg)
    reg.close()
    return root, want


def test_snapshots_are_written_and_used(built, monkeypatch):
    root, want = built
    log = CommitLog(Registry(root, create=False, index_path=":memory:").store.fs)
    assert log.states() == [20, 40]
    reads = []
    orig = CommitLog.read
    monkeypatch.setattr(CommitLog, "read", lambda self, seq: reads.append(seq) or orig(self, seq))
    cold = Registry(root, create=False, index_path=":memory:")
    assert answers(cold) == want
    assert set(reads) == set(range(41, want["head"] + 2))  # only the commits after snapshot 40


def test_answers_same_without_snapshots(built):
    root, want = built
    for seq in (20, 40):
        os.remove(os.path.join(root, *state_key(seq).split("/")))
    assert answers(Registry(root, create=False, index_path=":memory:")) == want


def test_corrupt_or_foreign_snapshot_is_skipped(built, monkeypatch):
    root, want = built
    path = os.path.join(root, *state_key(40).split("/"))
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 0xFF
    os.chmod(path, 0o644)
    open(path, "wb").write(bytes(data))
    with pytest.warns(UserWarning, match="state snapshot 40"):
        assert answers(Registry(root, create=False, index_path=":memory:")) == want
    monkeypatch.setattr(index_mod, "INDEX_VERSION", 99)  # written by another index version
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        os.remove(path)
        assert answers(Registry(root, create=False, index_path=":memory:"))["head"] == want["head"]


def test_checkpoint_after_snapshot_rereads_dropped_bodies(built, monkeypatch):
    root, want = built
    reg = Registry(root, create=False, index_path=":memory:")  # starts from snapshot 40
    assert reg.refresh() == want["head"]
    while reg.refresh() < 60:
        reg.register("n", os.urandom(8))
    log = CommitLog(reg.store.fs)
    assert log.checkpoints()[-1] == 60 and 60 in log.states()
    first, rows = log.read_checkpoint(60)
    assert first == 51 and all(log.read(s) is not None for s, _ in rows)


def _rewrite_meta(path, **changes):
    """Rewrite the JSON metadata of a state snapshot (it lies outside the checksum)."""
    import json
    import struct

    from engine.registry.log import STATE_MAGIC

    data = open(path, "rb").read()
    n = len(STATE_MAGIC)
    (hl,) = struct.unpack("<I", data[n:n + 4])
    meta = dict(json.loads(data[n + 4:n + 4 + hl]), **changes)
    h = json.dumps(meta, sort_keys=True).encode()
    os.chmod(path, 0o644)
    open(path, "wb").write(STATE_MAGIC + struct.pack("<I", len(h)) + h + data[n + 4 + hl:])


@pytest.mark.parametrize("change", [{"raw_size": 1 << 40}, {"raw_size": 5}, {"raw_size": -1},
                                    {"raw_size": "big"}, "header-length"])
def test_a_crafted_snapshot_header_is_skipped_not_trusted(built, change):
    # issue 15, defect 7: raw_size 2^40 (outside the checksum) used to be a MemoryError
    root, want = built
    path = os.path.join(root, *state_key(40).split("/"))
    if change == "header-length":
        import struct

        from engine.registry.log import STATE_MAGIC

        data = bytearray(open(path, "rb").read())
        data[len(STATE_MAGIC):len(STATE_MAGIC) + 4] = struct.pack("<I", 0xFFFFFFFF)
        os.chmod(path, 0o644)
        open(path, "wb").write(bytes(data))
    else:
        _rewrite_meta(path, **change)
    with pytest.warns(UserWarning, match="state snapshot 40"):
        assert answers(Registry(root, create=False, index_path=":memory:")) == want
