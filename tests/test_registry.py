"""The registry API: registering every kind of content, references, aliases, promotion gates,
runs and metrics, lineage, compare, search, gc and bad input."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from engine import config
from engine.data import snapshot
from engine.monitor.registry_hooks import load_profile
from engine.registry import (
    GateCheck,
    GateError,
    GateRejected,
    MalformedReference,
    Registry,
    RegistryCorruption,
    RegistryFormatError,
    UnknownReference,
    parse_ref,
)
from engine.registry.log import commit_key
from engine.store import AmbiguousReference


@pytest.fixture
def reg(tmp_path):
    r = Registry(str(tmp_path / "store"))
    yield r
    r.close()


def rand(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def store_bytes_on_disk(root) -> int:
    total = 0
    for d, _, fs in os.walk(root):
        for f in fs:
            total += os.path.getsize(os.path.join(d, f))
    return total


# ---------------------------------------------------------------------- content
def test_register_bytes_numbers_and_reads_back(reg):
    a = reg.register("m", b"one")
    b = reg.register("m", b"two", metrics={"acc": 0.9}, params={"lr": 0.1}, tags={"team": "x"},
                     message="second")
    assert (a.version, b.version) == (1, 2)
    assert b.ref == "m:v2" and b.kind == "model" and b.format == "bytes"
    assert reg.read_bytes("m:v1") == b"one" and reg.read_bytes("m") == b"two"
    got = reg.get("m:v2")
    assert got.metrics == {"acc": 0.9} and got.params == {"lr": 0.1} and got.tags == {"team": "x"}
    assert got.message == "second" and got.aliases == ["latest"]
    assert [v.version for v in reg.versions("m")] == [1, 2]


def test_register_file_and_directory_pull_byte_exact(reg, tmp_path):
    src = tmp_path / "ckpt"
    (src / "sub").mkdir(parents=True)
    (src / "weights.bin").write_bytes(rand(300_000, 1))
    (src / "sub" / "cfg.json").write_text('{"a": 1}')
    mv = reg.register("resnet", str(src))
    assert mv.format == "files" and mv.files == 2 and mv.size == 300_000 + 8
    out = reg.pull("resnet:v1", tmp_path / "out")
    assert out == str(tmp_path / "out")
    assert (tmp_path / "out" / "weights.bin").read_bytes() == (src / "weights.bin").read_bytes()
    assert (tmp_path / "out" / "sub" / "cfg.json").read_text() == '{"a": 1}'
    one = reg.register("single", str(src / "weights.bin"))
    path = reg.pull("single", tmp_path / "out2")
    assert path == str(tmp_path / "out2" / "weights.bin")
    assert open(path, "rb").read() == (src / "weights.bin").read_bytes()
    assert reg.read_bytes(one.ref) == (src / "weights.bin").read_bytes()


def test_same_content_same_id_and_stored_once(reg, tmp_path):
    f = tmp_path / "model.bin"
    f.write_bytes(rand(1 << 20, 2))
    a = reg.register("dup", str(f))
    before = store_bytes_on_disk(reg.store.root)
    b = reg.register("dup", str(f))
    grown = store_bytes_on_disk(reg.store.root) - before
    assert a.id == b.id and (a.version, b.version) == (1, 2)
    assert grown < 8192, f"the repeated 1 MiB file added {grown} bytes"
    c = reg.register("dup2", f.read_bytes(), filename="model.bin")
    assert c.id == a.id  # the same bytes under the same name give the same content id


def test_numpy_state_dict_roundtrip_and_safetensors_layout(reg):
    sd = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2], np.int64),
          "flag": np.array(True), "half": np.ones((2, 2), np.float16)}
    mv = reg.register("np-model", sd)
    assert mv.format == "safetensors"
    back = reg.load_state_dict("np-model", framework="np")
    assert set(back) == set(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype and np.array_equal(back[k], sd[k])
    st = pytest.importorskip("safetensors.numpy")
    other = st.load(reg.read_bytes("np-model"))
    for k in sd:
        assert np.array_equal(other[k], sd[k])


def test_torch_state_dicts_and_checkpoint_dedup(reg):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256))
    model[2].bias.data = model[2].bias.data.to(torch.bfloat16).float()
    v1 = reg.register("net", model, kind="checkpoint")
    before = store_bytes_on_disk(reg.store.root)
    with torch.no_grad():
        model[2].bias += 1  # one small tensor changes
    v2 = reg.register("net", model.state_dict(), kind="checkpoint")
    grown = store_bytes_on_disk(reg.store.root) - before
    assert v1.format == v2.format == "safetensors" and v1.id != v2.id
    assert grown < v2.size / 4, f"a checkpoint changing one bias grew the store by {grown} bytes"
    sd = reg.load_state_dict("net:v2")
    for k, t in model.state_dict().items():
        assert torch.equal(sd[k], t), k
    bf = {"x": torch.randn(5, 3).to(torch.bfloat16), "s": torch.tensor(3.5)}
    reg.register("bf", bf)
    back = reg.load_state_dict("bf")
    assert back["x"].dtype == torch.bfloat16 and torch.equal(back["x"], bf["x"])
    assert back["s"].shape == () and float(back["s"]) == 3.5
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 256)).sum().backward()
    opt.step()
    o = reg.register("opt", opt.state_dict(), kind="checkpoint")
    assert o.format == "torch"
    osd = reg.load_state_dict("opt")
    assert torch.equal(osd["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_profile_artifact_linked_to_dataset(reg, tmp_path):
    import pyarrow as pa

    from engine.monitor import profile

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.bin").write_bytes(b"data")
    ds = snapshot(str(tmp_path / "d"), "train-data", store=reg.store)
    p = profile(pa.table({"x": np.arange(100.0)}))
    mv = reg.register("train-profile", p, inputs=[ds.ref])
    assert mv.kind == "profile" and mv.format == "profile"
    assert load_profile(reg, "train-profile")["x"].count == 100
    assert reg.lineage("train-profile")["up"] == [("data:train-data:v1", "train-profile:v1")]
    dv = reg.register("train-data", ds)  # a dataset version as a registry artifact
    assert dv.kind == "dataset" and dv.id == ds.id
    dv2 = reg.register("train-data", "train-data:v1", kind="dataset")
    assert dv2.id == ds.id and dv2.version == 2
    assert reg.pull("train-data", tmp_path / "co") == str(tmp_path / "co")
    assert (tmp_path / "co" / "x.bin").read_bytes() == b"data"


# ---------------------------------------------------------------------- references
def test_parse_ref_forms_and_malformed():
    assert parse_ref("m").name == "m" and parse_ref("m").alias is None
    assert parse_ref("m@prod").alias == "prod"
    assert parse_ref("m:v12").version == 12
    assert parse_ref("m:abcd12").id_prefix == "abcd12"
    for bad in ["", "m:", "m@", "m:v0", "m:xyz", "m:ABCD", "m@1x", "-m", "m:v1:v2", "m@a@b", 3, None]:
        with pytest.raises(MalformedReference):
            parse_ref(bad)


def test_resolution_by_alias_version_and_id_prefix(reg):
    a = reg.register("m", b"alpha")
    reg.register("m", b"beta")
    assert reg.get(f"m:{a.id[:6]}").version == 1
    assert reg.get("m@latest").version == 2
    reg.set_alias("m:v1", "staging")
    assert reg.get("m@staging").version == 1
    assert reg.get("m:v1").aliases == ["staging"]
    reg.remove_alias("m", "staging")
    with pytest.raises(UnknownReference, match="no alias 'staging'"):
        reg.get("m@staging")
    with pytest.raises(UnknownReference, match="versions v1..v2"):
        reg.get("m:v9")
    with pytest.raises(UnknownReference, match="did you mean m"):
        reg.get("mm")
    with pytest.raises(UnknownReference, match="no version of 'm' has an id"):
        reg.get("m:0000000")


def test_ambiguous_id_prefix(reg):
    ids = {}
    i = 0
    while True:  # two contents whose ids share the first 4 hex digits
        mv = reg.register("amb", f"payload {i}".encode())
        if mv.id[:4] in ids:
            break
        ids[mv.id[:4]] = mv
        i += 1
    with pytest.raises(AmbiguousReference):
        reg.get(f"amb:{mv.id[:4]}")
    assert reg.get(f"amb:{mv.id[:16]}").version == mv.version


def test_alias_bad_input(reg):
    reg.register("m", b"x")
    with pytest.raises(ValueError, match="maintained automatically"):
        reg.set_alias("m:v1", "latest")
    with pytest.raises(ValueError, match="alias must start with a letter"):
        reg.set_alias("m:v1", "1prod")
    with pytest.raises(UnknownReference):
        reg.set_alias("m:v7", "prod")  # alias on a nonexistent version
    with pytest.raises(UnknownReference):
        reg.remove_alias("m", "prod")
    assert len(reg.history()) == 1  # nothing was committed by the failures


# ---------------------------------------------------------------------- gates
def test_promotion_gate_pass_reject_force(reg):
    reg.register("m", b"1", metrics={"val_loss": 0.5})
    reg.register("m", b"2", metrics={"val_loss": 0.3})
    reg.register("m", b"3", metrics={"val_loss": 0.4})
    assert reg.promote("m:v1", "production", gate="val_loss<=").version == 1  # no holder yet
    assert reg.promote("m:v2", "production", gate="val_loss<=").version == 2
    n = len(reg.history())
    with pytest.raises(GateRejected, match=r"val_loss 0.4 is not <= 0.3"):
        reg.promote("m:v3", "production", gate="val_loss<=")
    assert reg.get("m@production").version == 2 and len(reg.history()) == n
    assert reg.promote("m:v3", "production", gate="val_loss<=", force=True).version == 3
    top = reg.history(limit=1)[0]["summary"]
    assert "production of m: v2 -> v3" in top and "FORCED" in top and "0.4 vs 0.3" in top
    with pytest.raises(GateRejected):
        reg.promote("m:v1", "production", gate="val_loss<")
    assert reg.promote("m:v1", "production", gate="val_loss>").version == 1
    # promoting the holder again is a no-op
    n = len(reg.history())
    reg.promote("m:v1", "production", gate="val_loss<=")
    assert len(reg.history()) == n


def test_promote_returns_what_the_commit_recorded(reg):
    """promote() and set_alias() return a Promotion: the holder before, the gate's values and
    its outcome, as compared in the commit; a ModelVersion's other attributes still read."""
    reg.register("m", b"1", metrics={"val_loss": 0.5})
    reg.register("m", b"2", metrics={"val_loss": 0.3})
    reg.register("m", b"3", metrics={"val_loss": 0.4})
    reg.register("m", b"4")
    p = reg.promote("m:v1", "production", gate="val_loss<=")
    assert (p.ref, p.previous, p.moved, p.forced, p.outcome) == ("m:v1", None, True, False, "no holder")
    assert p.message == "m@production: unset -> v1 (gate val_loss<=: no holder to compare with)"
    assert p.model.ref == "m:v1" and "production" in p.model.aliases
    p = reg.promote("m:v2", "production", gate="val_loss<=")
    assert p.outcome == "passed" and p.gate == GateCheck("val_loss", "<=", 0.3, 0.5, True)
    assert p.message == "m@production: v1 -> v2 (gate val_loss<=: 0.3 vs 0.5)"
    p = reg.promote("m:v3", "production", gate="val_loss<=", force=True)
    assert (p.outcome, p.forced, p.gate.passed, p.previous) == ("forced", True, False, 2)
    assert p.message == "m@production: v2 -> v3 (gate val_loss<=: 0.4 vs 0.3, FAILED) (FORCED)"
    assert p.to_dict() == {"ref": "m:v3", "name": "m", "alias": "production", "version": 3,
                           "previous": 2, "moved": True, "forced": True,
                           "gate": {"metric": "val_loss", "op": "<=", "new": 0.4, "held": 0.3,
                                    "passed": False}}
    p = reg.promote("m:v3", "production", gate="val_loss<=")
    assert (p.moved, p.outcome, p.previous, p.gate) == (False, "unchanged", 3, None)
    assert p.message == "m:v3 already holds m@production; nothing to do"
    reg.set_alias("m:v4", "production")  # a holder without the metric: only force moves it
    p = reg.promote("m:v2", "production", gate="val_loss<=", force=True)
    assert (p.outcome, p.gate.held, p.gate.passed) == ("forced", None, True)
    assert p.message == "m@production: v4 -> v2 (gate val_loss<=: the holder v4 has no val_loss) (FORCED)"
    p = reg.set_alias("m:v1", "staging")
    assert (p.outcome, p.previous, p.gate, p.message) == ("moved", None, None, "m@staging: unset -> v1")
    with pytest.deprecated_call(match="Promotion.id"):
        assert p.id == reg.get("m:v1").id  # what promote() returned before: a ModelVersion


def test_lineage_node_resolves_every_kind_of_reference(reg, tmp_path):
    src = tmp_path / "d"
    src.mkdir()
    (src / "f.txt").write_text("x")
    snapshot(src, name="ds", store=reg.store)
    with reg.start_run("train") as run:
        mv = run.log_model("m", b"w")
    assert reg.lineage_node(mv) == reg.lineage_node("m@latest") == "m:v1"
    assert reg.lineage_node("data:ds@latest") == reg.lineage_node("ds") == "data:ds:v1"
    assert reg.lineage_node("run:" + run.id[:6]) == "run:" + run.id
    with pytest.raises(UnknownReference, match="neither a registry artifact nor a dataset"):
        reg.lineage_node("nope:v1")
    with pytest.raises(ValueError, match="is a run, not a version"):
        reg.register("n", b"x", inputs=["run:" + run.id])
    assert reg.lineage("data:ds")["root"] == "data:ds:v1"


def test_gate_errors(reg):
    reg.register("m", b"1", metrics={"val_loss": 0.5})
    reg.register("m", b"2")
    reg.register("m", b"3", metrics={"val_loss": 0.1})
    reg.set_alias("m:v2", "production")
    with pytest.raises(GateError, match="has no metric 'val_loss'"):
        reg.promote("m:v2", "staging", gate="val_loss<=")
    with pytest.raises(GateError, match="holder .* m:v2, has no metric"):
        reg.promote("m:v3", "production", gate="val_loss<=")
    assert reg.promote("m:v3", "production", gate="val_loss<=", force=True).version == 3
    for bad in ["val_loss", "<=", "val_loss=<", "val loss<=", 3]:
        with pytest.raises(GateError, match="gate must look like"):
            reg.promote("m:v1", "production", gate=bad)


def test_gate_uses_run_metrics(reg):
    with reg.start_run("train") as run:
        for step in range(5):
            run.log_metric("val_loss", 1.0 - 0.1 * step, step=step)
        a = run.log_model("m", b"a")
    with reg.start_run("train") as run:
        run.log_metric("val_loss", 0.2)
        b = run.log_model("m", b"b")
    reg.promote(a.ref, "prod")
    assert reg.metric_of(reg.get(a.ref), "val_loss") == pytest.approx(0.6)
    assert reg.promote(b.ref, "prod", gate="val_loss<=").version == 2


# ---------------------------------------------------------------------- runs
def test_run_records_params_metrics_env_and_lineage(reg, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run(git + ["add", "."], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    (repo / "train.py").write_text("print(2)\n")  # dirty
    monkeypatch.chdir(repo)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("PMI_SIZE", "8")
    monkeypatch.setenv("PMI_RANK", "0")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"1")
    ds = snapshot(str(tmp_path / "d"), "imagenet", store=reg.store)
    base = reg.register("base", b"pretrained")
    with reg.start_run("finetune", params={"lr": 0.01, "layers": [1, 2]}, inputs=[ds.ref]) as run:
        run.log_input("base@latest")
        run.log_param("batch", 64)
        run.set_tag("stage", "dev")
        for i in range(20_000):
            run.log_metric("loss", 1.0 / (i + 1))
        run.log_metrics({"acc": 0.5, "f1": 0.4}, step=3)
        out = run.log_model("ft", b"weights")
    r = reg.get_run(run.id[:6])
    assert r["status"] == "FINISHED" and r["params"] == {"lr": 0.01, "layers": [1, 2], "batch": 64}
    assert r["tags"] == {"stage": "dev", "slurm.job_id": "4242", "slurm.attempt": "1"}
    assert r["git_commit"] == head and r["git_dirty"] is True
    assert r["world_size"] == 8 and r["slurm_job_id"] == "4242"
    assert r["metrics"]["loss"] == {"last": 1 / 20_000, "step": 19_999, "min": 1 / 20_000,
                                    "max": 1.0, "count": 20_000}
    assert r["inputs"] == ["base:v1", "data:imagenet:v1"] and r["outputs"] == ["ft:v1"]
    h = reg.metric_history(run.id, "loss")
    assert h.num_rows == 20_000 and h.column("step").to_pylist() == list(range(20_000))
    assert reg.metric_history(run.id).num_rows == 20_002
    lin = reg.lineage(out.ref)
    assert set(lin["up"]) == {("run:" + run.id, "ft:v1"), ("data:imagenet:v1", "run:" + run.id),
                              ("base:v1", "run:" + run.id)}
    down = reg.lineage("data:imagenet:v1")["down"]
    assert ("run:" + run.id, "ft:v1") in down
    assert reg.lineage(base.ref, depth=1)["down"] == [("base:v1", "run:" + run.id)]
    # an output that exists already (a retrain signal's dataset): edge run -> it
    with reg.start_run("signal", inputs=["ft:v1"]) as sig:
        assert sig.log_output(ds.ref) == "data:imagenet:v1"
    s = reg.get_run(sig.id)
    assert s["inputs"] == ["ft:v1"] and s["outputs"] == ["data:imagenet:v1"]
    assert ("run:" + sig.id, "data:imagenet:v1") in reg.lineage("ft:v1")["down"]
    assert f"run {sig.id} output data:imagenet:v1" in [h["summary"] for h in reg.history(limit=3)]


def test_run_status_on_failure_and_interrupt(reg):
    with pytest.raises(RuntimeError):
        with reg.start_run("bad") as run:
            run.log_metric("x", 1)
            raise RuntimeError("boom")
    assert reg.get_run(run.id)["status"] == "FAILED"
    assert reg.metric_history(run.id).num_rows == 1  # flushed on the way out
    with pytest.raises(KeyboardInterrupt):
        with reg.start_run("stopped") as run2:
            raise KeyboardInterrupt
    assert reg.get_run(run2.id)["status"] == "KILLED"
    assert [r["name"] for r in reg.runs(status="failed")] == ["bad"]


def test_run_bad_input(reg):
    with reg.start_run("r") as run:
        with pytest.raises(TypeError, match="must be a number"):
            run.log_metric("x", "high")
        with pytest.raises(TypeError, match="step must be an integer"):
            run.log_metric("x", 1.0, step=1.5)
        with pytest.raises(ValueError, match="metric key"):
            run.log_metric("", 1.0)
        with pytest.raises(TypeError, match="JSON-like"):
            run.log_param("p", object())
        with pytest.raises(UnknownReference, match="neither a registry artifact nor a dataset"):
            run.log_input("nothing:v1")
        with pytest.raises(UnknownReference, match="neither a registry artifact nor a dataset"):
            run.log_output("nothing:v1")
    with pytest.raises(ValueError, match="run name"):
        reg.start_run("bad name")
    with pytest.raises(UnknownReference):
        reg.get_run("ffffffff")


# ---------------------------------------------------------------------- views
def test_compare_and_search(reg):
    with reg.start_run("t", params={"lr": 0.1, "bs": 32}) as run:
        a = run.log_model("m", b"a", metrics={"val_loss": 0.5}, tags={"arch": "resnet"})
    with reg.start_run("t", params={"lr": 0.01, "bs": 32}) as run:
        b = run.log_model("m", b"b", metrics={"val_loss": 0.3}, tags={"arch": "vit"})
    reg.register("other", b"o", kind="checkpoint", metrics={"val_loss": 0.1})
    c = reg.compare(a.ref, b.ref)
    assert c["params"]["lr"] == (0.1, 0.01) and c["params"]["bs"] == (32, 32)
    assert c["metrics"]["val_loss"] == (0.5, 0.3) and not c["same_content"]
    assert [m.ref for m in reg.search(metric="val_loss<0.4")] == ["m:v2", "other:v1"]
    assert [m.ref for m in reg.search("m*", metric="val_loss<0.4")] == ["m:v2"]
    assert [m.ref for m in reg.search(tag="arch=resnet")] == ["m:v1"]
    assert [m.ref for m in reg.search(tag="arch")] == ["m:v1", "m:v2"]
    assert [m.ref for m in reg.search(kind="checkpoint")] == ["other:v1"]
    reg.set_alias(b.ref, "production")
    assert [m.ref for m in reg.search(alias="production")] == ["m:v2"]
    reg.tag(a.ref, reviewed="yes")
    assert reg.get(a.ref).tags == {"arch": "resnet", "reviewed": "yes"}
    with pytest.raises(ValueError, match="metric filter"):
        reg.search(metric="val_loss")
    with pytest.raises(ValueError, match="kind must be"):
        reg.search(kind="weights")


def test_history_is_the_audit_trail(reg, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    reg.register("m", b"1", metrics={"l": 1.0})
    reg.register("m", b"2", metrics={"l": 0.5})
    reg.promote("m:v1", "production")
    reg.promote("m:v2", "production", gate="l<=")
    reg.register("n", b"x")
    h = reg.history("m")
    assert [e["seq"] for e in h] == [4, 3, 2, 1]
    assert h[0]["summary"] == "alias production of m: v1 -> v2 (gate l<=: 0.5 vs 1.0)"
    assert h[0]["slurm_job_id"] == "777" and h[0]["user"] and h[0]["host"]
    assert len(reg.history(limit=2)) == 2


# ---------------------------------------------------------------------- gc
def test_gc_keeps_last_and_aliased_and_frees_chunks(reg, tmp_path):
    for i in range(5):
        reg.register("m", rand(200_000, 10 + i))
    reg.set_alias("m:v2", "production")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(rand(100_000, 99))
    snapshot(str(tmp_path / "d"), "ds", store=reg.store)
    before = store_bytes_on_disk(reg.store.root)
    rep = reg.gc(keep_last=2, grace=0)
    assert rep["versions_deleted"] == ["m:v3", "m:v1"] or sorted(rep["versions_deleted"]) == ["m:v1", "m:v3"]
    assert [v.version for v in reg.versions("m")] == [2, 4, 5]
    assert store_bytes_on_disk(reg.store.root) < before - 300_000
    for v in (2, 4, 5):
        assert reg.read_bytes(f"m:v{v}") == rand(200_000, 10 + v - 1)
    with pytest.raises(UnknownReference, match="was deleted"):
        reg.get("m:v1")
    assert reg.register("m", b"next").version == 6  # numbers are never reused
    from engine.data import checkout

    checkout("ds:v1", tmp_path / "co", store=reg.store)
    assert (tmp_path / "co" / "f").read_bytes() == rand(100_000, 99)


def test_dataset_gc_keeps_registry_chunks(reg):
    from engine.data import gc as data_gc
    from engine.data import verify

    reg.register("m", rand(500_000, 5))
    data_gc(store=reg.store, grace=0)
    assert reg.read_bytes("m") == rand(500_000, 5)
    assert verify(store=reg.store).ok


# ---------------------------------------------------------------------- bad input and formats
def test_register_bad_input(reg, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        reg.register("m", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="kind must be one of"):
        reg.register("m", b"x", kind="weights")
    with pytest.raises(ValueError, match="name must be"):
        reg.register("bad name", b"x")
    with pytest.raises(TypeError, match="must be a number"):
        reg.register("m", b"x", metrics={"acc": "high"})
    with pytest.raises(TypeError, match="register\\(\\) takes"):
        reg.register("m", 3.5)
    with pytest.raises(TypeError, match="state dict"):
        reg.register("m", {"a": 1})
    reg.register("m", b"x")
    with pytest.raises(ValueError, match="is a model artifact"):
        reg.register("m", b"y", kind="checkpoint")
    with pytest.raises(UnknownReference):
        reg.register("m", b"y", inputs=["ghost:v1"])
    from engine.store import UnknownVersion

    with pytest.raises(UnknownVersion):
        reg.register("d", "nodata:v1", kind="dataset")
    assert len(reg.history()) == 1


def test_reader_does_not_create_store(tmp_path):
    with pytest.raises(FileNotFoundError):
        Registry(str(tmp_path / "nope"), create=False)
    assert not (tmp_path / "nope").exists()


def _rewrite_commit(reg, seq, fn):
    path = os.path.join(reg.store.root, *commit_key(seq).split("/"))
    body = json.loads(open(path, "rb").read())
    os.chmod(path, 0o644)
    with open(path, "w") as f:
        f.write(fn(body))


def test_newer_or_corrupt_commit_is_a_clear_error(tmp_path):
    r = Registry(str(tmp_path / "s"), index_path=":memory:")
    r.register("m", b"1")
    r.register("m", b"2")
    _rewrite_commit(r, 2, lambda b: json.dumps(b | {"format_version": 99}))
    fresh = Registry(str(tmp_path / "s"), index_path=":memory:")
    with pytest.raises(RegistryFormatError, match="format_version 99, newer"):
        fresh.get("m")
    _rewrite_commit(r, 2, lambda b: '{"truncated')
    with pytest.raises(RegistryCorruption, match="not valid JSON"):
        Registry(str(tmp_path / "s"), index_path=":memory:").get("m")


def test_unknown_action_is_kept_in_the_audit_trail_only(tmp_path):
    r = Registry(str(tmp_path / "s"), index_path=":memory:")
    r.register("m", b"1")
    r.commit(lambda: [{"op": "future_thing", "name": "m"}])
    assert r.get("m").version == 1
    assert r.history(limit=1)[0]["summary"] == "future_thing"


def test_monitor_cli_registers_and_uses_registry_profiles(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from engine.cli import main

    rng = np.random.default_rng(0)
    store = str(tmp_path / "st")
    snapshot(pa.table({"a": rng.normal(size=2000)}), "feat", store=store)
    pq.write_table(pa.table({"a": rng.normal(size=2000) + 1}), tmp_path / "cur.parquet")
    pq.write_table(pa.table({"a": rng.normal(size=2000)}), tmp_path / "same.parquet")
    assert main(["monitor", "profile", "feat:v1", "--register", "feat-profile", "--store", store]) == 0
    assert "registry feat-profile:v1" in capsys.readouterr().out
    with Registry(store) as reg:
        assert reg.lineage("feat-profile")["up"] == [("data:feat:v1", "feat-profile:v1")]
    assert main(["monitor", "drift", "feat-profile@latest", str(tmp_path / "cur.parquet"),
                 "--store", store]) == 1
    assert main(["monitor", "drift", "feat-profile", str(tmp_path / "same.parquet"),
                 "--store", store]) == 0
    assert main(["monitor", "profile", "feat:v1", "--store", store]) == 2  # neither -o nor --register


def test_force_is_logged_only_when_it_overrides(reg):
    reg.register("m", b"1", metrics={"l": 0.5})
    reg.register("m", b"2", metrics={"l": 0.4})
    reg.register("m", b"3", metrics={"l": 0.9})
    reg.set_alias("m:v1", "prod")
    reg.promote("m:v2", "prod", gate="l<=", force=True)  # passes on its own
    assert "FORCED" not in reg.history(limit=1)[0]["summary"]
    reg.promote("m:v3", "prod", gate="l<=", force=True)  # fails: overridden
    assert reg.history(limit=1)[0]["summary"].endswith("(FORCED)")


def test_state_dict_and_profile_files_registered_by_path(reg, tmp_path):
    import pyarrow as pa

    from engine.monitor import profile
    from engine.registry import tensors

    sd = {"w": np.arange(4, dtype=np.float64)}
    (tmp_path / "m.safetensors").write_bytes(tensors.dumps(sd))
    reg.register("m", str(tmp_path / "m.safetensors"))
    assert np.array_equal(reg.load_state_dict("m", framework="np")["w"], sd["w"])
    profile(pa.table({"x": [1.0, 2.0]})).save(str(tmp_path / "p.profile"))
    reg.register("p", str(tmp_path / "p.profile"), kind="profile")
    assert load_profile(reg, "p")["x"].count == 2
    reg.register("raw", b"not a state dict")
    from engine.registry import RegistryError

    with pytest.raises(RegistryError, match="not a state dict"):
        reg.load_state_dict("raw")


def test_run_tags_are_not_filed_under_an_artifact(reg):
    reg.register("run", b"an artifact unluckily named run")
    with reg.start_run("t") as run:
        pass
    reg.tag("run:" + run.id, owner="me")
    reg.tag("run:v1", stage="x")
    assert [e["summary"] for e in reg.history("run")] == [
        'tag run:v1 {"stage": "x"}', "register run:v1 (model, " + reg.get("run").id[:12] + ")"]
    assert reg.get_run(run.id)["tags"] == {"owner": "me"} and reg.get("run").tags == {"stage": "x"}


def test_verify_finds_damage_a_warm_index_hides(reg, monkeypatch):
    monkeypatch.setattr(config, "REGISTRY_CHECKPOINT_EVERY", 3)
    for i in range(4):
        reg.register("m", rand(100_000, 40 + i))
    rep = reg.verify()
    assert rep["ok"] and rep["commits"] == 4 and rep["checkpoints"] == 1 and rep["versions"] == 4
    _rewrite_commit(reg, 2, lambda b: json.dumps(b | {"user": "mallory"}, sort_keys=True,
                                                   separators=(",", ":")))
    assert reg.get("m:v2").user != "mallory"  # the warm index does not notice
    rep = reg.verify()
    assert not rep["ok"]
    # format 2: the commit's own checksum catches the change (its number is named)
    (p,) = [p for p in rep["problems"] if p.get("seq") == 2]
    assert p["problem"] == "commit unreadable" and "fails its checksum" in p["detail"]
    from engine.store.pack import pack_key

    for pid in reg.store.pack_ids():  # lose the packs: content checks fail
        os.remove(os.path.join(reg.store.root, *pack_key(pid, "idx").split("/")))
    probs = {p["problem"] for p in reg.verify()["problems"]}
    assert "content unreadable" in probs or "chunks missing" in probs


def test_verify_rehashes_content_and_quick_only_checks_presence(reg):
    # issue 15, defect 3: a flipped byte in a pack made `model pull` fail while verify said OK
    from engine.store.pack import CODEC_RAW, pack_key

    a = reg.register("m", rand(300_000, 7))
    b = reg.register("n", rand(300_000, 8))
    assert reg.verify()["ok"]
    man_ids = reg.store.get_blob(json.loads(reg.index.query(
        "SELECT content FROM versions WHERE name='m'")[0][0])["manifest"])
    from engine.data import manifest as mf

    ids = [ch["id"] for chunks in mf.from_bytes(man_ids, "m").column("chunks").to_pylist()
           for ch in chunks or []]
    cid = next(c for c in ids if reg.store.locate(c).codec == CODEC_RAW)
    ref = reg.store.locate(cid)
    path = os.path.join(reg.store.root, *pack_key(ref.pack_id, "pack").split("/"))
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(ref.offset + ref.stored // 2)
        byte = f.read(1)
        f.seek(ref.offset + ref.stored // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    rep = reg.verify()
    assert not rep["ok"]
    (p,) = rep["problems"]
    assert p["problem"] == "chunks corrupted" and p["version"] == a.ref and p["corrupted"] == 1
    assert cid.hex() in p["detail"]
    assert reg.verify(rehash=False)["ok"]  # --quick: present, so not seen
    assert b.ref not in str(rep["problems"])
