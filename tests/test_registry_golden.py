"""The golden registry ``tests/golden/registry_v1`` (format_version 1) reads with the same
answers, from its checkpoint and from its commit files; the commit layout is frozen."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from engine.registry import Registry
from engine.registry.log import CommitLog, commit_key

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "registry_v1")


@pytest.fixture
def golden(tmp_path):
    dst = tmp_path / "registry_v1"
    shutil.copytree(GOLDEN, dst)
    return str(dst)


def check_answers(reg: Registry) -> None:
    assert reg.refresh() == 7
    prod = reg.get("clf@production")
    assert prod.ref == "clf:v2" and prod.format == "safetensors" and prod.tags == {"arch": "mlp"}
    assert np.array_equal(reg.load_state_dict("clf@production", framework="np")["w"],
                          np.arange(6, dtype=np.float32).reshape(2, 3))
    v1 = reg.get("clf:v1")
    assert reg.read_bytes(v1.ref) == b"golden weights v1" and v1.content["file"] == "w.bin"
    assert v1.metrics == {"val_loss": 0.5} and v1.run_id
    run = reg.get_run(v1.run_id)
    assert run["params"] == {"lr": 0.1, "epochs": 3} and run["status"] == "FINISHED"
    assert run["metrics"]["loss"]["count"] == 3 and run["outputs"] == ["clf:v1"]
    assert reg.metric_history(v1.run_id, "loss").column("value").to_pylist() == [1.0, 0.5, 1 / 3]
    assert [e["summary"] for e in reg.history("clf")][:2] == [
        "alias production of clf: v1 -> v2 (gate val_loss<=: 0.25 vs 0.5)",
        "alias production of clf: none -> v1"]
    assert reg.lineage("notes")["up"] == [("clf:v1", "notes:v1"), ("run:" + v1.run_id, "clf:v1")]
    assert [a["name"] for a in reg.artifacts()] == ["clf", "notes"]


def test_golden_registry_reads_from_checkpoint_and_log(golden):
    with Registry(golden, create=False, index_path=":memory:") as reg:
        check_answers(reg)


def test_golden_registry_reads_without_checkpoint(golden):
    shutil.rmtree(os.path.join(golden, "registry", "checkpoints"))
    with Registry(golden, create=False, index_path=":memory:") as reg:
        check_answers(reg)


def test_golden_checkpoint_matches_commit_files(golden):
    log = CommitLog(Registry(golden, create=False, index_path=":memory:").store.fs)
    assert log.checkpoints() == [4]
    first, rows = log.read_checkpoint(4)
    assert first == 1 and [s for s, _ in rows] == [1, 2, 3, 4]
    for seq, text in rows:
        assert json.loads(text) == log.read(seq)


def test_commit_layout_is_frozen(golden, tmp_path):
    """A commit written today has the golden commit's keys (the format does not drift)."""
    with open(os.path.join(golden, *commit_key(7).split("/")), "rb") as f:
        old = json.loads(f.read())
    reg = Registry(str(tmp_path / "s"), index_path=":memory:")
    reg.register("clf", b"w")
    reg.register("notes", b"a note", kind="checkpoint", inputs=["clf:v1"])
    new = reg.log.read(2)
    assert sorted(old) == ["actions", "format_version", "host", "pid", "seq", "slurm_job_id",
                           "time", "user"]
    # format 2 adds the commit's checksum and the link to the commit before it
    assert sorted(new) == sorted([*old, "checksum", "prev"])
    assert sorted(new["actions"][0]) == sorted(old["actions"][0])
    assert (new["format_version"], old["format_version"]) == (2, 1)


GOLDEN_V2 = os.path.join(os.path.dirname(__file__), "golden", "registry_v2")


def test_golden_v2_registry_reads_and_its_chain_holds(tmp_path):
    """The same registry written with commit format 2 (checksum and hash chain)."""
    dst = tmp_path / "registry_v2"
    shutil.copytree(GOLDEN_V2, dst)
    reg = Registry(str(dst), create=False, index_path=":memory:")
    check_answers(reg)
    rep = reg.verify()
    assert rep["ok"] and rep["commits"] == 7 and rep["unchecked_commits"] == 0
    log = CommitLog(reg.store.fs)
    bodies = [log.read(s) for s in range(1, 8)]
    assert {b["format_version"] for b in bodies} == {2} and bodies[0]["prev"] is None
    assert all(b["prev"] == a["checksum"] for a, b in zip(bodies, bodies[1:]))
