"""Registry usability (issue 9): content validated at registration, optimizer state dicts,
finished runs, read-only opening, runs list/compare/show, and CLI wording."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from engine.cli import main
from engine.monitor.registry_hooks import load_profile
from engine.registry import InvalidContent, Registry, RegistryError, RunFinished, validators
from engine.registry.run_query import sparkline


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def reg(tmp_path):
    r = Registry(str(tmp_path / "store"))
    yield r
    r.close()


def mlops(*args, code=0, capsys):
    capsys.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as e:  # argparse: usage errors
        rc = e.code
    out, err = capsys.readouterr()
    assert rc == code, (rc, out, err)
    return out, err


def _profile_bytes() -> bytes:
    from engine.monitor import profile

    return profile(pa.table({"x": np.arange(50.0)})).to_bytes()


def _head(reg) -> int:
    return reg.refresh()


# ---------------------------------------------------------------------- item 8: validation
def test_profile_kind_refuses_content_that_is_not_a_profile(reg, tmp_path):
    reg.register("m", b"something")  # the store exists: check nothing more is stored
    packs = sorted(os.listdir(os.path.join(reg.store.root, "packs")))
    (tmp_path / "notes.txt").write_text("not a profile")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.profile").write_bytes(_profile_bytes())
    for bad, why in ((b"PAR1 not a profile", "not an mlops-engine profile"),
                     (str(tmp_path / "notes.txt"), "not an mlops-engine profile"),
                     (str(tmp_path / "dir"), "a directory"),
                     ({"w": np.ones(3)}, "dict")):
        with pytest.raises(InvalidContent, match="profile") as e:
            reg.register("p", bad, kind="profile")
        assert why in str(e.value) and "'p'" in str(e.value)
    assert isinstance(e.value, ValueError)  # the CLI's exit 2
    assert _head(reg) == 1 and [a["name"] for a in reg.artifacts()] == ["m"]
    assert sorted(os.listdir(os.path.join(reg.store.root, "packs"))) == packs

    mv = reg.register("p", _profile_bytes(), kind="profile")  # real profile bytes are fine
    assert mv.format == "profile" and load_profile(reg, "p").n_rows == 50
    mv = reg.register("p", str(tmp_path / "dir" / "a.profile"), kind="profile")
    assert mv.format == "profile" and mv.content["file"] == "a.profile"
    assert load_profile(reg, "p:v2")["x"].count == 50


def test_bad_profile_does_not_create_the_store(tmp_path):
    reg = Registry(str(tmp_path / "new"))
    with pytest.raises(InvalidContent):
        reg.register("p", b"junk", kind="profile")
    assert not (tmp_path / "new").exists()


def test_cli_register_profile_directory_or_junk_is_exit_2(tmp_path, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.bin").write_bytes(b"x")
    (tmp_path / "junk.profile").write_bytes(b"junk")
    store = str(tmp_path / "s")
    for path in ("d", "junk.profile"):
        _, err = mlops("model", "register", "p", str(tmp_path / path), "--kind", "profile",
                       "--store", store, code=2, capsys=capsys)
        assert "cannot register 'p' as a profile" in err and "Traceback" not in err
    assert not os.path.exists(store)


def test_profile_validator_comes_from_the_entry_point(tmp_path):
    """A user who never imported engine.monitor still gets the check; a model does not load it."""
    code = f"""
import sys
from engine.registry import Registry, InvalidContent
reg = Registry({str(tmp_path / 's')!r})
reg.register("m", b"weights")
assert "engine.monitor" not in sys.modules, "registering a model imported engine.monitor"
try:
    reg.register("p", b"junk", kind="profile")
except InvalidContent as exc:
    print("refused:", exc)
"""
    env = dict(os.environ, MLOPS_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("refused:") and "not an mlops-engine profile" in r.stdout


def test_entry_point_is_declared():
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group=validators.KINDS_GROUP)}
    assert eps.get("profile") == "engine.monitor.registry_hooks:PROFILE"


def test_load_profile_moved_up_to_the_monitor(reg):
    """Registry.load_profile is a deprecated alias reaching the monitor through the kind
    hooks; engine.monitor's load_profile refuses what is not a profile."""
    from engine.monitor import profile

    reg.register("p", profile({"x": np.arange(5.0)}))
    with pytest.deprecated_call(match="engine.monitor.load_profile"):
        assert reg.load_profile("p").n_rows == 5
    reg.register("m", b"weights")
    with pytest.raises(RegistryError, match="m:v1 is a 'bytes' artifact, not a profile"):
        load_profile(reg, "m")


def test_register_kind_hooks(reg, monkeypatch):
    """A kind's hooks object: validate at registration, claims/dumps for register(obj),
    load for reading back."""
    from engine.registry.models import default_kind

    monkeypatch.setattr(validators, "_HOOKS", {})
    monkeypatch.setattr(validators, "_VALIDATORS", {})

    class Blob:
        def __init__(self, payload):
            self.payload = payload

        def to_bytes(self):
            return b"BLOB" + self.payload

    class BlobKind:
        @staticmethod
        def validate(data):
            if not data.startswith(b"BLOB"):
                raise ValueError("expected a blob")

        @staticmethod
        def claims(obj):
            return isinstance(obj, Blob)

        @staticmethod
        def load(registry, ref):
            return Blob(registry.read_bytes(ref)[4:])

    validators.register_kind("checkpoint", BlobKind)
    validators.register_kind("checkpoint", BlobKind)  # twice: still one
    assert validators.kind_hooks("checkpoint") == [BlobKind]
    assert validators.claiming_kind(Blob(b"x")) == ("checkpoint", BlobKind)
    assert default_kind(Blob(b"x")) == "checkpoint" and default_kind(b"x") == "model"
    with pytest.raises(InvalidContent, match="expected a blob"):
        reg.register("b", b"junk", kind="checkpoint")
    reg.register("b", Blob(b"x").to_bytes(), kind="checkpoint")
    assert validators.kind_loader("checkpoint")(reg, "b").payload == b"x"
    with pytest.raises(RegistryError, match="no loader found"):
        validators.kind_loader("dataset")
    with pytest.raises(TypeError, match="validate, claims or load"):
        validators.register_kind("model", object())


def test_register_validator_hook(reg, monkeypatch):
    monkeypatch.setattr(validators, "_VALIDATORS", {})
    seen = []

    def only_onnx(data):
        seen.append(bytes(data[:4]))
        if not data.startswith(b"ONNX"):
            raise ValueError("expected an ONNX file (starting with b'ONNX')")

    validators.register_validator("model", only_onnx)
    validators.register_validator("model", only_onnx)  # twice: still one call
    with pytest.raises(InvalidContent, match="cannot register 'm' as a model.*ONNX"):
        reg.register("m", b"PK\x03\x04zip")
    assert reg.register("m", b"ONNX graph").version == 1 and seen == [b"PK\x03\x04", b"ONNX"]
    with pytest.raises(ValueError, match="kind must be one of"):
        validators.register_validator("weights", only_onnx)
    with pytest.raises(TypeError, match="callable"):
        validators.register_validator("model", "not a function")


def test_state_dict_files_are_checked_at_registration(reg, tmp_path):
    from engine.registry import tensors

    good = tmp_path / "good.safetensors"
    good.write_bytes(tensors.dumps({"w": np.arange(6, dtype=np.float32)}))
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (tmp_path / "short.safetensors").write_bytes(good.read_bytes()[:-8])  # truncated
    (tmp_path / "bad.pt").write_bytes(b"just text, not torch.save output")
    for name in ("bad.safetensors", "short.safetensors", "bad.pt"):
        with pytest.raises(InvalidContent, match=f"{name}.*not a") as e:
            reg.register("m", str(tmp_path / name), kind="checkpoint")
        assert "'m'" in str(e.value)
    assert not (tmp_path / "store").exists()  # refused before the store was even created
    reg.register("m", str(good), kind="checkpoint")
    assert np.array_equal(reg.load_state_dict("m", framework="np")["w"], np.arange(6))


def test_registry_package_adds_no_import_of_the_monitor():
    """Layers: the registry sits below the monitor and imports none of it (Registry.load_profile
    reaches it through the kind hooks). tests/test_layers.py checks every layer."""
    import ast

    def monitor_import(node) -> bool:
        if isinstance(node, ast.Import):
            return any(a.name.startswith("engine.monitor") for a in node.names)
        return isinstance(node, ast.ImportFrom) and (
            (node.level == 2 and (node.module or "").startswith("monitor"))
            or (node.level == 0 and (node.module or "").startswith("engine.monitor")))

    root = os.path.join(os.path.dirname(__file__), "..", "engine", "registry")
    found = set()
    for f in sorted(x for x in os.listdir(root) if x.endswith(".py")):
        tree = ast.parse(open(os.path.join(root, f)).read())
        funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for node in ast.walk(tree):
            if monitor_import(node):
                inside = [fn.name for fn in funcs if fn.lineno <= node.lineno <= fn.end_lineno]
                found.add((f, inside[-1] if inside else "<module>"))
    assert found == set()


# ---------------------------------------------------------------------- item 10: optimizers
def _optimizers():
    return {
        "sgd": lambda ps: __import__("torch").optim.SGD(ps, lr=0.1),
        "sgd-momentum": lambda ps: __import__("torch").optim.SGD(ps, lr=0.1, momentum=0.9),
        "adam": lambda ps: __import__("torch").optim.Adam(ps, lr=1e-3),
        "adamw": lambda ps: __import__("torch").optim.AdamW(ps, lr=1e-3, weight_decay=0.1),
    }


def _same(a, b) -> bool:
    torch = sys.modules["torch"]
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("opt", list(_optimizers()))
def test_optimizer_state_dicts_round_trip(reg, opt):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 1))
    o = _optimizers()[opt]([{"params": model[0].parameters()},
                            {"params": model[1].parameters(), "lr": 0.01}])
    model(torch.randn(8, 4)).pow(2).sum().backward()
    o.step()  # momentum buffers and Adam moments exist only after a step
    sd = o.state_dict()
    assert len(sd["param_groups"]) == 2
    mv = reg.register("opt", sd, kind="checkpoint")
    assert mv.format == "torch"
    assert _same(sd, reg.load_state_dict("opt"))
    ckpt = {"optimizer": sd, "epoch": 3, "note": "no tensor at the top"}
    reg.register("ckpt", ckpt, kind="checkpoint")
    assert _same(ckpt, reg.load_state_dict("ckpt"))


def test_plain_sgd_before_any_step(reg):
    torch = pytest.importorskip("torch")
    sd = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1).state_dict()
    assert sd["state"] == {}
    assert _same(sd, reg.load_state_dict(reg.register("sgd", sd, kind="checkpoint")))


def test_dicts_that_are_not_state_dicts_still_refused(reg):
    for bad in ({"a": 1}, {"state": 3, "param_groups": "x"}, {"state": {}, "param_groups": [1]}):
        with pytest.raises(TypeError, match="state dict"):
            reg.register("m", bad)


# ---------------------------------------------------------------------- item 11: finished runs
def test_logging_to_a_finished_run_raises(reg, tmp_path):
    (tmp_path / "f.bin").write_bytes(b"weights")
    reg.register("base", b"base")
    with reg.start_run("train") as run:
        run.log_metric("loss", 1.0)
    head = _head(reg)
    for call in (lambda: run.log_metric("loss", 0.5), lambda: run.log_metrics({"loss": 0.5}),
                 lambda: run.log_param("lr", 0.1), lambda: run.log_params({"lr": 0.1}),
                 lambda: run.set_tag("k", "v"), lambda: run.log_input("base:v1"),
                 lambda: run.log_model("m", b"weights"), lambda: run.log_checkpoint("c", b"w"),
                 lambda: reg.register("m", str(tmp_path / "f.bin"), run=run)):
        with pytest.raises(RunFinished, match=f"run {run.id} .*FINISHED.*start a new run"):
            call()
    assert _head(reg) == head and [a["name"] for a in reg.artifacts()] == ["base"]
    assert reg.get_run(run.id)["metrics"]["loss"]["count"] == 1
    assert reg.metric_history(run.id).num_rows == 1
    assert issubclass(RunFinished, RegistryError)

    with pytest.raises(RuntimeError), reg.start_run("broken") as failed:
        raise RuntimeError("diverged")
    with pytest.raises(RunFinished, match="FAILED"):
        failed.log_metric("loss", 1.0)


# ---------------------------------------------------------------------- read-only opening
def test_reads_on_a_path_without_a_store_create_nothing(tmp_path):
    path = tmp_path / "nostore"
    reg = Registry(str(path))
    for read in (reg.artifacts, lambda: reg.versions("m"), lambda: reg.get("m"), reg.runs,
                 lambda: reg.get_run("abcd"), reg.history, lambda: reg.search(),
                 lambda: reg.read_bytes("m")):
        with pytest.raises(FileNotFoundError, match=f"no store at {str(path)!r}"):
            read()
    reg.close()
    assert not path.exists() and repr(reg) == f"Registry({str(path)!r})"
    reg = Registry(str(path))
    assert reg.register("m", b"x").version == 1 and path.exists()  # writes create it
    assert [a["name"] for a in Registry(str(path)).artifacts()] == ["m"]
    with Registry(str(tmp_path / "runs")) as r2:
        with r2.start_run("t"):
            pass
        assert len(r2.runs()) == 1


# ---------------------------------------------------------------------- runs: filter, sort, compare
@pytest.fixture
def runs(reg):
    """Four finished runs: lr and val_loss, logged oldest first."""
    ids = []
    for lr, vl, acc in ((0.1, 0.40, 0.80), (0.01, 0.20, 0.95), (0.001, 0.25, 0.90),
                        (0.01, 0.35, None)):
        with reg.start_run("train", params={"lr": lr, "opt": "adam"}) as run:
            for i in range(5):
                run.log_metric("val_loss", vl + 0.1 * (4 - i))
            if acc is not None:
                run.log_metric("acc", acc)
        ids.append(run.id)
    return ids


def test_runs_newest_first_filter_sort_limit(reg, runs):
    assert [r["run_id"] for r in reg.runs()] == runs[::-1]
    assert [r["run_id"] for r in reg.runs(limit=2)] == [runs[3], runs[2]]
    assert [r["run_id"] for r in reg.runs(where="val_loss<0.3")] == [runs[2], runs[1]]
    assert [r["run_id"] for r in reg.runs(where=["val_loss<0.4", "acc>=0.9"])] == [runs[2], runs[1]]
    assert [r["run_id"] for r in reg.runs(where="lr==0.01")] == [runs[3], runs[1]]  # a param
    assert [r["run_id"] for r in reg.runs(where="opt==adam")] == runs[::-1]
    assert [r["run_id"] for r in reg.runs(sort="val_loss")] == [runs[1], runs[2], runs[3], runs[0]]
    assert [r["run_id"] for r in reg.runs(sort="-val_loss", limit=1)] == [runs[0]]
    assert [r["run_id"] for r in reg.runs(sort="acc")][-1] == runs[3]  # no acc: last
    assert [r["run_id"] for r in reg.runs(sort="-acc")][-1] == runs[3]
    for bad in ("val_loss<", "val_loss<<0.3", "<0.3", "lr<adam", "val_loss~0.3", 3):
        with pytest.raises(ValueError, match="where .*expected .*'val_loss<0.3'"):
            reg.runs(where=bad)
    with pytest.raises(ValueError, match="limit must be an integer >= 1"):
        reg.runs(limit=0)
    with pytest.raises(ValueError, match="sort must be"):
        reg.runs(sort="")


def test_compare_runs_and_metric_summary(reg, runs):
    c = reg.compare_runs([runs[0], runs[1][:6], runs[3]])
    assert [r["run_id"] for r in c["runs"]] == [runs[0], runs[1], runs[3]]
    assert c["params"] == {"lr": [0.1, 0.01, 0.01], "opt": ["adam", "adam", "adam"]}
    assert c["metrics"]["val_loss"] == pytest.approx([0.40, 0.20, 0.35])
    assert c["metrics"]["acc"] == [0.80, 0.95, None]
    assert c["different"] == ["param lr", "metric acc", "metric val_loss"]
    with pytest.raises(ValueError, match="at least two runs"):
        reg.compare_runs([runs[0]])

    s = reg.metric_summary(runs[0], "val_loss")
    assert s["count"] == 5 and s["first"] == pytest.approx(0.8) and s["last"] == pytest.approx(0.4)
    assert s["min"] == pytest.approx(0.4) and s["max"] == pytest.approx(0.8)
    assert (s["first_step"], s["last_step"]) == (0, 4)
    assert len(s["sparkline"]) == 5 and s["sparkline"][0] == "█" and s["sparkline"][-1] == "▁"
    from engine.registry import UnknownReference

    with pytest.raises(UnknownReference, match="no metric 'nope' .*it has: acc, val_loss"):
        reg.metric_summary(runs[0], "nope")


def test_sparkline():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3.0, 3.0, 3.0]) == "▄▄▄"
    assert sparkline([]) == ""
    assert sparkline([0.0, float("nan"), 1.0]) == "▁ █"
    line = sparkline(list(range(1000)), width=20)
    assert len(line) == 20 and line[0] == "▁" and line[-1] == "█"
    assert list(line) == sorted(line)


# ---------------------------------------------------------------------- CLI
def test_cli_runs_list_sort_filter_limit(reg, runs, capsys):
    store = ["--store", reg.store.root]
    rs = json.loads(mlops("runs", "list", "--json", *store, capsys=capsys)[0])
    assert [r["run_id"] for r in rs] == runs[::-1]
    rs = json.loads(mlops("runs", "list", "--filter", "val_loss<0.3", "--sort", "val_loss",
                          "--json", *store, capsys=capsys)[0])
    assert [r["run_id"] for r in rs] == [runs[1], runs[2]]
    out, _ = mlops("runs", "list", "--sort", "val_loss", "--desc", "--limit", "2", *store,
                   capsys=capsys)
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["RUN", "NAME", "STATUS", "val_loss"] and len(lines) == 3
    assert lines[1].split()[:4] == [runs[0], "train", "FINISHED", "0.4"]
    for bad in ("val_loss", "val_loss<abc", "=0.3"):
        _, err = mlops("runs", "list", "--filter", bad, *store, code=2, capsys=capsys)
        assert "--filter" in err and "'val_loss<0.3'" in err and "Traceback" not in err
    _, err = mlops("runs", "list", "--limit", "0", *store, code=2, capsys=capsys)
    assert "--limit must be >= 1" in err


def test_cli_runs_compare(reg, runs, capsys):
    store = ["--store", reg.store.root]
    out, _ = mlops("runs", "compare", runs[0][:8], runs[1][:8], *store, capsys=capsys)
    rows = {" ".join(line.split()[:2]): line.split() for line in out.splitlines()}
    assert rows["param lr"][2:] == ["0.1", "0.01", "*"]
    assert rows["metric val_loss"][2:] == ["0.4", "0.2", "*"]
    assert rows["param opt"][2:] == ["adam", "adam"]
    c = json.loads(mlops("runs", "compare", runs[0], runs[1], "--json", *store, capsys=capsys)[0])
    assert c["params"]["lr"] == [0.1, 0.01] and "param lr" in c["different"]
    _, err = mlops("runs", "compare", runs[0], *store, code=2, capsys=capsys)
    assert "at least two runs" in err


def test_cli_runs_show_metric_summary(reg, runs, capsys):
    store = ["--store", reg.store.root]
    out, _ = mlops("runs", "show", runs[0], "--metric", "val_loss", *store, capsys=capsys)
    assert "5 points" in out and "first 0.8" in out and "last 0.4" in out and "min 0.4" in out
    assert "max 0.8" in out and "STEP" not in out
    spark = reg.metric_summary(runs[0], "val_loss")["sparkline"]
    assert out.rstrip().endswith(spark)
    out, _ = mlops("runs", "show", runs[0], "--metric", "val_loss", "--all", *store, capsys=capsys)
    assert out.splitlines()[1].split() == ["STEP", "VALUE"] and len(out.splitlines()) == 7
    d = json.loads(mlops("runs", "show", runs[0], "--metric", "val_loss", "--json", *store,
                         capsys=capsys)[0])
    assert d["summary"]["count"] == 5 and d["summary"]["sparkline"] == spark and "series" not in d
    d = json.loads(mlops("runs", "show", runs[0], "--metric", "val_loss", "--all", "--json",
                         *store, capsys=capsys)[0])
    assert d["series"]["step"] == [0, 1, 2, 3, 4]
    out, _ = mlops("runs", "show", runs[3], "--metric", "acc", *store, code=2, capsys=capsys)


@pytest.mark.parametrize("cmd", [["model", s] for s in ("register", "list", "show", "alias",
                                                        "promote", "compare", "pull", "verify",
                                                        "lineage")]
                         + [["runs", "list"], ["runs", "show"], ["runs", "compare"], ["log"]])
def test_every_registry_command_has_json(cmd, capsys):
    with pytest.raises(SystemExit):
        main([*cmd, "--help"])
    assert "--json" in capsys.readouterr().out


# ---------------------------------------------------------------------- item 14: wording
def test_cli_sizes_and_counts_read_as_words(tmp_path, capsys):
    (tmp_path / "big.bin").write_bytes(np.random.default_rng(0).bytes(3 << 20))
    store = ["--store", str(tmp_path / "store")]
    out, _ = mlops("model", "register", "big", str(tmp_path / "big.bin"), *store, capsys=capsys)
    assert "3.0 MiB" in out and str(3 << 20) not in out and "1 file," in out
    out, _ = mlops("model", "show", "big", *store, capsys=capsys)
    assert "3.0 MiB in 1 file" in out and str(3 << 20) not in out
    out, _ = mlops("model", "verify", *store, capsys=capsys)
    assert out.startswith("1 commit, 0 checkpoints, 0 index snapshots, 1 live version: OK")
    _, err = mlops("model", "show", "big:v4", *store, code=2, capsys=capsys)
    assert "'big' has one version, v1" in err
    _, err = mlops("model", "show", "zzz", *store, code=2, capsys=capsys)
    assert err.rstrip().endswith("; it has 1 artifact")


def test_gate_without_a_holder_reads_plainly(reg, capsys):
    reg.register("m", b"1", metrics={"val_loss": 0.21})
    reg.promote("m:v1", "production", gate="val_loss<=")
    s = reg.history(limit=1)[0]["summary"]
    assert s == "alias production of m: none -> v1 (gate val_loss<=: 0.21, no holder to compare with)"
    reg.register("m", b"2")  # no val_loss: the gate cannot be evaluated, forced
    reg.register("m", b"3", metrics={"val_loss": 0.3})
    reg.promote("m:v2", "production", force=True)
    reg.promote("m:v3", "production", gate="val_loss<=", force=True)
    s = reg.history(limit=1)[0]["summary"]
    assert "None" not in s and "the holder v2 has no val_loss" in s and s.endswith("(FORCED)")


def test_load_state_dict_rejects_unknown_framework(reg):
    reg.register("m", {"w": np.ones(2)})
    with pytest.raises(ValueError, match="framework must be one of None, 'pt', 'np'; got 'jax'"):
        reg.load_state_dict("m", framework="jax")


def test_messages_a_cli_user_sees_name_the_cli_command(reg, tmp_path, capsys):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"a")
    (tmp_path / "d" / "b").write_bytes(b"b")
    reg.register("tree", str(tmp_path / "d"))
    with pytest.raises(RegistryError, match=r"holds 2 entries, not one file.*mlops model pull"):
        reg.read_bytes("tree")


def test_register_dir_progress_counts_the_whole_tree(reg, tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    for i in range(6):
        (d / f"f{i}").write_bytes(np.random.default_rng(i).bytes((i + 1) << 16))
        os.utime(d / f"f{i}", (1e9, 1e9))  # old: the stat cache vouches for them next time
    total = sum((i + 1) << 16 for i in range(6))
    reg.register("m", str(d), progress=False)
    (d / "f0").write_bytes(b"changed")
    capsys.readouterr()
    reg.register("m", str(d), progress=True)
    final = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert "6 files" in final, final
    total = total - (1 << 16) + len(b"changed")
    from engine.progress import human_bytes

    assert f"{human_bytes(total)}/{human_bytes(total)}" in final, final
