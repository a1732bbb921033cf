"""`mlops model|runs|log`: the registry CLI — output, --json, exit codes, --help."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from engine.cli import main
from engine.data import snapshot
from engine.monitor import profile
from engine.monitor.registry_hooks import load_profile
from engine.registry import Registry
from engine.registry.log import commit_key

MODEL_SUBCOMMANDS = ["register", "list", "show", "alias", "promote", "compare", "pull", "verify",
                     "lineage"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(tmp_path, capsys):
    """cli(*args, code=0) runs `mlops *args --store S` in process; returns (stdout, stderr)."""
    store = str(tmp_path / "s")

    def run(*args, code=0, store_opt=True):
        capsys.readouterr()
        try:
            rc = main([*args, *(["--store", store] if store_opt else [])])
        except SystemExit as e:  # argparse: usage errors
            rc = e.code
        out, err = capsys.readouterr()
        assert rc == code, (rc, out, err)
        return out, err

    run.store = store
    return run


def js(cli, *args, code=0):
    out, _ = cli(*args, "--json", code=code)
    return json.loads(out)


def _write_files(d):
    (d / "m1.bin").write_bytes(b"weights one")
    (d / "m2.bin").write_bytes(b"weights two")
    (d / "m3").mkdir()
    (d / "m3" / "model.bin").write_bytes(b"weights three")
    (d / "m3" / "config.json").write_text('{"layers": 2}')
    return d


@pytest.fixture
def files(tmp_path):
    return _write_files(tmp_path)


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """Stores built once per module and copied into each test (keeps the file fast).

    ``registered``: clf:v1 (val_loss 0.30, from ds:v1), clf:v2 (0.35, from clf:v1),
    clf:v3 (0.25, a directory, alias staging). ``with_run``: that plus a finished run
    "train" (Slurm job 4242, input ds:v1, output big:v1 made from clf:v3) and a failed one.
    """
    base = tmp_path_factory.mktemp("templates")
    files = _write_files(base)
    store = str(base / "registered")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_CACHE_DIR", str(base / "cache"))
        mp.delenv("SLURM_JOB_ID", raising=False)
        (base / "data").mkdir()
        (base / "data" / "x.csv").write_text("a,b\n1,2\n")
        snapshot(str(base / "data"), "ds", store=store, progress=False)
        for args in (
            ["m1.bin", "--metric", "val_loss=0.30", "--param", "lr=0.1", "--param", "layers=[1, 2]",
             "--param", "opt=adam", "--tag", "team=vision", "--input", "ds:v1", "-m", "first"],
            ["m2.bin", "--metric", "val_loss=0.35", "--param", "lr=0.01", "--input", "clf:v1"],
            ["m3", "--metric", "val_loss=0.25", "--alias", "staging"],
        ):
            assert main(["model", "register", "clf", str(files / args[0]), *args[1:],
                         "--store", store]) == 0
        run_store = str(base / "with_run")
        shutil.copytree(store, run_store)
        mp.setenv("SLURM_JOB_ID", "4242")
        with Registry(run_store) as reg:
            with reg.start_run("train", params={"lr": 0.1}, inputs=["ds:v1"]) as run:
                for i in range(4):
                    run.log_metric("loss", 1.0 / (i + 1))
                run.set_tag("gpu", "h100")
                run.log_model("big", b"big weights", metrics={"val_loss": 0.1}, inputs=["clf:v3"])
            with pytest.raises(RuntimeError), reg.start_run("train", params={"lr": 1.0}):
                raise RuntimeError("diverged")
    return {"registered": store, "with_run": run_store, "run_id": run.id}


@pytest.fixture
def registered(cli, templates):
    shutil.copytree(templates["registered"], cli.store)
    return cli


@pytest.fixture
def with_run(cli, templates):
    shutil.copytree(templates["with_run"], cli.store)
    cli.run_id = templates["run_id"]
    return cli


# ---------------------------------------------------------------------- help
@pytest.mark.parametrize("args", [["model", s] for s in MODEL_SUBCOMMANDS]
                         + [["runs", "list"], ["runs", "show"], ["runs", "compare"], ["log"]])
def test_help(args, capsys):
    with pytest.raises(SystemExit) as e:
        main([*args, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert f"usage: mlops {' '.join(args)}" in out and "--store" in out and "--json" in out
    assert "examples:" in out and f"mlops {' '.join(args)} " in out.split("examples:")[1]


@pytest.mark.parametrize("cmd", ["model", "runs"])
def test_group_without_subcommand_prints_help(cmd, capsys):
    assert main([cmd]) == 2 and "SUBCOMMAND" in capsys.readouterr().out


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(c in out for c in ("model", "runs", "log"))


# ---------------------------------------------------------------------- model
def test_register_json_and_param_parsing(cli, files):
    v = js(cli, "model", "register", "clf", str(files / "m1.bin"), "--metric", "val_loss=0.3",
           "--param", "lr=1e-3", "--param", "layers=[1, 2]", "--param", "opt=adam",
           "--param", "flag=true", "--tag", "team=vision", "--alias", "staging", "-m", "note")
    assert v["ref"] == "clf:v1" and v["kind"] == "model" and v["files"] == 1 and v["size"] == 11
    assert v["metrics"] == {"val_loss": 0.3} and v["tags"] == {"team": "vision"}
    assert v["params"] == {"lr": 0.001, "layers": [1, 2], "opt": "adam", "flag": True}
    assert v["aliases"] == ["staging", "latest"] and v["message"] == "note"
    out, _ = cli("model", "register", "clf", str(files / "m2.bin"))
    assert out.startswith("clf:v2 registered: model, 1 file, 11 B, id ")


def test_register_kinds_and_dataset_reference(cli, files):
    snapshot(str(files / "m3"), "ds", store=cli.store, progress=False)
    v = js(cli, "model", "register", "ds-reg", "ds:v1", "--kind", "dataset")
    assert v["kind"] == "dataset" and v["format"] == "dataset" and v["files"] == 2
    c = js(cli, "model", "register", "ckpt", str(files / "m3"), "--kind", "checkpoint")
    assert c["kind"] == "checkpoint" and c["format"] == "files" and c["files"] == 2
    rows = js(cli, "model", "list", "--kind", "checkpoint")
    assert [r["name"] for r in rows] == ["ckpt"]
    prof = profile(pa.table({"x": np.arange(200.0)}))
    prof.save(files / "ref.profile")
    p = js(cli, "model", "register", "ref", str(files / "ref.profile"), "--kind", "profile")
    assert p["kind"] == "profile" and p["format"] == "profile"
    with Registry(cli.store) as reg:  # stored as a profile, not an opaque file
        assert load_profile(reg, "ref").n_rows == 200
    _, err = cli("model", "register", "ref", str(files / "m1.bin"), "--kind", "profile", code=2)
    assert "not an mlops-engine profile" in err


def test_list(registered):
    rows = js(registered, "model", "list")
    assert rows == [{"name": "clf", "kind": "model", "versions": 3, "latest": 3,
                     "aliases": {"staging": 3}}]
    out, _ = registered("model", "list")
    assert out.splitlines()[0].split() == ["NAME", "KIND", "VERSIONS", "LATEST", "ALIASES"]
    assert out.splitlines()[1].split() == ["clf", "model", "3", "v3", "staging=v3"]
    assert js(registered, "model", "list", "--kind", "profile") == []


def test_show(registered):
    d = js(registered, "model", "show", "clf:v1")
    assert d["ref"] == "clf:v1" and d["metrics"] == {"val_loss": 0.3} and d["message"] == "first"
    assert d["params"] == {"lr": 0.1, "layers": [1, 2], "opt": "adam"} and d["tags"] == {"team": "vision"}
    assert d["inputs"] == ["data:ds:v1"] and d["used_by"] == ["clf:v2"] and d["run"] is None
    assert len(d["id"]) == 64 and d["user"] and d["host"] and d["created"] and d["content"]["manifest"]
    latest = js(registered, "model", "show", "clf")
    assert latest["ref"] == "clf:v3" and latest["aliases"] == ["staging", "latest"]
    assert js(registered, "model", "show", "clf@staging")["version"] == 3
    assert js(registered, "model", "show", "clf:" + d["id"][:8])["ref"] == "clf:v1"
    out, _ = registered("model", "show", "clf:v1")
    assert out.startswith("clf:v1\n") and "inputs       data:ds:v1" in out and "val_loss=0.3" in out


def test_show_all(registered):
    vs = js(registered, "model", "show", "clf", "--all")
    assert [v["ref"] for v in vs] == ["clf:v1", "clf:v2", "clf:v3"]
    out, _ = registered("model", "show", "clf", "--all")
    assert len(out.splitlines()) == 4 and "staging, latest" in out.splitlines()[3]
    _, err = registered("model", "show", "clf:v1", "--all", code=2)
    assert "takes an artifact NAME" in err


def test_alias_set_and_delete(registered):
    r = js(registered, "model", "alias", "clf:v1", "prod")
    assert r == {"name": "clf", "alias": "prod", "version": 1, "previous": None, "ref": "clf:v1"}
    out, _ = registered("model", "alias", "clf:v2", "prod")
    assert out.strip() == "clf@prod -> v2 (was v1)"
    assert js(registered, "model", "show", "clf@prod")["version"] == 2
    r = js(registered, "model", "alias", "clf", "prod", "--delete")
    assert r == {"name": "clf", "alias": "prod", "version": None, "previous": 2}
    _, err = registered("model", "show", "clf@prod", code=2)
    assert "has no alias 'prod'" in err
    _, err = registered("model", "alias", "clf", "prod", "--delete", code=2)
    assert "has no alias 'prod'" in err
    _, err = registered("model", "alias", "clf:v9", "prod", code=2)
    assert "has versions v1..v3" in err
    _, err = registered("model", "alias", "clf:v1", "latest", code=2)
    assert "maintained automatically" in err


def test_promote_gate_rejected_then_forced_and_log(registered):
    r = js(registered, "model", "promote", "clf:v1", "production")
    assert r["moved"] and r["previous"] is None and r["version"] == 1 and not r["forced"]
    out, err = registered("model", "promote", "clf:v2", "production", "--gate", "val_loss<=", code=1)
    assert "rejected" in err and "val_loss 0.35 is not <= 0.3" in err and "--force" in err
    assert out == ""
    assert js(registered, "model", "show", "clf@production")["version"] == 1  # not moved
    out, _ = registered("model", "promote", "clf:v2", "production", "--gate", "val_loss<=", "--force")
    assert out.strip() == "clf@production: v1 -> v2 (gate val_loss<=: 0.35 vs 0.3, FAILED) (FORCED)"
    r = js(registered, "model", "promote", "clf:v3", "production", "--gate", "val_loss<=")
    assert r["moved"] and r["previous"] == 2 and r["gate"] == {
        "metric": "val_loss", "op": "<=", "new": 0.25, "held": 0.35, "passed": True}
    r = js(registered, "model", "promote", "clf:v3", "production")
    assert not r["moved"]

    log = js(registered, "log", "clf")
    summaries = [h["summary"] for h in log]
    assert [h["seq"] for h in log] == sorted((h["seq"] for h in log), reverse=True)
    assert summaries[0] == "alias production of clf: v2 -> v3 (gate val_loss<=: 0.25 vs 0.35)"
    assert summaries[1] == "alias production of clf: v1 -> v2 (gate val_loss<=: 0.35 vs 0.3) (FORCED)"
    assert all(h["user"] and h["host"] and h["time"] for h in log)
    out, _ = registered("log", "--limit", "2")
    lines = out.splitlines()
    assert len(lines) == 2 and "(FORCED)" in lines[1] and "@" in lines[1]


def test_promote_when_the_holder_lacks_the_metric(registered, files):
    registered("model", "promote", "clf:v1", "production")
    registered("model", "register", "clf", str(files / "m2.bin"), "--metric", "acc=0.9")
    _, err = registered("model", "promote", "clf:v4", "production", "--gate", "acc>=", code=2)
    assert "clf:v1, has no metric 'acc'; pass --force" in err
    out, _ = registered("model", "promote", "clf:v4", "production", "--gate", "acc>=", "--force")
    assert out.strip() == "clf@production: v1 -> v4 (gate acc>=: the holder v1 has no acc) (FORCED)"


def test_log_name_is_not_a_pattern(cli, files):
    cli("model", "register", "my_model", str(files / "m1.bin"))
    cli("model", "register", "myXmodel", str(files / "m2.bin"))
    assert [h["summary"][:20] for h in js(cli, "log", "my_model")] == ["register my_model:v1"]


@pytest.mark.parametrize("gate, msg", [("acc<=", "has no metric 'acc'"),
                                       ("val_loss", "gate must look like"),
                                       ("val_loss==", "gate must look like")])
def test_promote_gate_errors_exit_2(registered, gate, msg):
    registered("model", "promote", "clf:v1", "production")
    _, err = registered("model", "promote", "clf:v2", "production", "--gate", gate, code=2)
    assert msg in err and err.startswith("mlops model promote: error:")


def test_compare(registered):
    c = js(registered, "model", "compare", "clf:v1", "clf:v2")
    assert c["a"] == "clf:v1" and c["b"] == "clf:v2" and not c["same_content"]
    assert c["params"] == {"layers": [[1, 2], None], "lr": [0.1, 0.01], "opt": ["adam", None]}
    assert c["metrics"] == {"val_loss": [0.3, 0.35]}
    assert c["inputs"] == {"a": ["data:ds:v1"], "b": ["clf:v1", "data:ds:v1"]}
    assert set(c["different"]) == {"id", "param layers", "param lr", "param opt", "metric val_loss",
                                   "inputs"}
    out, _ = registered("model", "compare", "clf:v1", "clf:v2")
    rows = {ln.split()[0] + " " + ln.split()[1]: ln for ln in out.splitlines()[1:-1]}
    assert rows["metric val_loss"].split() == ["metric", "val_loss", "0.3", "0.35", "*"]
    assert rows["run -"].split() == ["run", "-", "-"]  # equal: not marked
    same = js(registered, "model", "compare", "clf:v3", "clf@staging")
    assert same["same_content"] and same["different"] == []


def test_pull(registered, tmp_path):
    r = js(registered, "model", "pull", "clf:v1", str(tmp_path / "out"))
    assert r["path"] == str(tmp_path / "out" / "m1.bin") and r["ref"] == "clf:v1"
    assert (tmp_path / "out" / "m1.bin").read_bytes() == b"weights one"
    out, _ = registered("model", "pull", "clf@staging", str(tmp_path / "out3"))
    assert out.strip() == str(tmp_path / "out3")
    assert (tmp_path / "out3" / "model.bin").read_bytes() == b"weights three"


# ---------------------------------------------------------------------- runs and lineage
def test_runs_list(with_run):
    rs = js(with_run, "runs", "list")  # newest first
    assert [r["status"] for r in rs] == ["FAILED", "FINISHED"] and rs[1]["run_id"] == with_run.run_id
    assert rs[1]["slurm_job_id"] == "4242" and rs[1]["world_size"] == 1
    assert [r["status"] for r in js(with_run, "runs", "list", "--status", "failed")] == ["FAILED"]
    assert js(with_run, "runs", "list", "--name", "nothing") == []
    out, _ = with_run("runs", "list")
    assert out.splitlines()[0].split()[:3] == ["RUN", "NAME", "STATUS"] and len(out.splitlines()) == 3


def test_runs_show(with_run):
    rid = with_run.run_id
    r = js(with_run, "runs", "show", rid[:6])
    assert r["run_id"] == rid and r["name"] == "train" and r["status"] == "FINISHED"
    assert r["params"] == {"lr": 0.1} and r["slurm_job_id"] == "4242"
    assert r["tags"] == {"gpu": "h100", "slurm.job_id": "4242", "slurm.attempt": "1"}
    assert r["metrics"]["loss"]["count"] == 4 and r["metrics"]["loss"]["last"] == 0.25
    assert r["inputs"] == ["data:ds:v1"] and r["outputs"] == ["big:v1"]
    assert "git_commit" in r and "git_dirty" in r and r["host"] and r["user"]
    out, _ = with_run("runs", "show", rid)
    assert "slurm job   4242" in out and "outputs     big:v1" in out and "loss" in out
    s = js(with_run, "runs", "show", rid, "--metric", "loss", "--all")["series"]
    assert s["step"] == [0, 1, 2, 3] and s["value"] == [1.0, 0.5, 1 / 3, 0.25]
    out, _ = with_run("runs", "show", rid, "--metric", "loss", "--all")
    assert out.splitlines()[1].split() == ["STEP", "VALUE"] and out.splitlines()[-1].split() == ["3", "0.25"]
    out, _ = with_run("runs", "show", rid, "--metric", "loss")  # a summary
    assert "4 points" in out and "first 1  last 0.25  min 0.25  max 1" in out
    _, err = with_run("runs", "show", rid, "--metric", "acc", code=2)
    assert "no metric 'acc' (it has: loss)" in err
    _, err = with_run("runs", "show", "ffffffff", code=2)
    assert "no run with id 'ffffffff'" in err


def test_model_show_with_run(with_run):
    d = js(with_run, "model", "show", "big")
    assert d["run"]["run_id"] == with_run.run_id and d["run"]["metrics"] == {"loss": 0.25}
    assert set(d["inputs"]) == {"clf:v3", "run:" + with_run.run_id}


def test_lineage(with_run):
    rid = with_run.run_id
    lin = js(with_run, "model", "lineage", "big:v1")
    assert lin["root"] == "big:v1" and lin["down"] == []
    assert {tuple(e) for e in lin["up"]} == {("clf:v3", "big:v1"), ("run:" + rid, "big:v1"),
                                            ("data:ds:v1", "run:" + rid)}
    assert lin["runs"]["run:" + rid] == {"name": "train", "status": "FINISHED"}
    out, _ = with_run("model", "lineage", "big:v1")
    assert out.splitlines()[0] == "big:v1" and "came from:" in out and "led to: nothing recorded" in out
    assert f"    <- run:{rid} (train, FINISHED)\n      <- data:ds:v1" in out

    down = js(with_run, "model", "lineage", "data:ds")  # a dataset reference, resolved
    assert down["root"] == "data:ds:v1" and down["up"] == []
    assert {tuple(e) for e in down["down"]} >= {("data:ds:v1", "clf:v1"), ("clf:v1", "clf:v2"),
                                                ("data:ds:v1", "run:" + rid), ("run:" + rid, "big:v1")}
    out, _ = with_run("model", "lineage", "data:ds:v1", "--depth", "1")
    assert "-> clf:v1" in out and "clf:v2" not in out
    r = js(with_run, "model", "lineage", "run:" + rid[:6])
    assert r["root"] == "run:" + rid and r["down"] == [["run:" + rid, "big:v1"]]


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("args, msg", [
    (["model", "show", "nope"], "no artifact named 'nope'"),
    (["model", "show", "clg"], "did you mean clf"),
    (["model", "show", "clf:v7"], "has versions v1..v3"),
    (["model", "show", "clf@prod"], "has no alias 'prod'"),
    (["model", "show", "clf:zz"], "malformed reference 'clf:zz'"),
    (["model", "show", "bad name"], "malformed reference"),
    (["model", "compare", "clf:v1", "nope:v1"], "no artifact named 'nope'"),
    (["model", "pull", "clf:v9", "out"], "has versions v1..v3"),
    (["model", "lineage", "clf:v9"], "has versions v1..v3"),
    (["model", "lineage", "data:nope:v1"], "nope"),
    (["model", "lineage", "run:abcdef"], "no run with id"),
    (["model", "lineage", "clf", "--depth", "0"], "--depth must be >= 1"),
    (["model", "register", "clf", "missing.bin"], "no such file or directory"),
    (["model", "register", "clf", "m1.bin", "--metric", "val_loss=low"], "must be a number"),
    (["model", "register", "clf", "m1.bin", "--param", "lr"], "expected KEY=VALUE"),
    (["model", "register", "clf", "m1.bin", "--input", "nope:v1"], "neither a registry artifact"),
    (["model", "register", "clf", "m1.bin", "--kind", "checkpoint"], "is a model artifact"),
    (["model", "register", "bad name", "m1.bin"], "name must be"),
    (["model", "register", "x", "nope:v3", "--kind", "dataset"], "nope"),
    (["model", "list", "--kind", "weights"], "invalid choice"),
    (["runs", "show", "abc"], "4+ characters"),
    (["log", "nope"], "no artifact named 'nope'"),
    (["log", "--limit", "0"], "--limit must be >= 1"),
])
def test_errors_exit_2(registered, files, args, msg):
    args = [str(files / a) if a in ("m1.bin", "missing.bin") else a for a in args]
    _, err = registered(*args, code=2)
    assert msg in err, err


def test_read_commands_do_not_create_a_store(cli, tmp_path):
    for args in (["model", "list"], ["model", "show", "clf"], ["runs", "list"], ["log"]):
        _, err = cli(*args, code=2)
        assert "no store at" in err and "mlops model register" in err
    assert not (tmp_path / "s").exists()
    _, err = cli("model", "list", code=2, store_opt=False)  # the default ./.mlops
    assert "no store at" in err and not (tmp_path / ".mlops").exists()
    _, err = cli("model", "register", "clf", str(tmp_path / "missing"), code=2)
    assert not (tmp_path / "s").exists()  # a bad path does not create it either
    _, err = cli("model", "register", "ds", "imagenet:v3", "--kind", "dataset", code=2)
    assert "no store at" in err and not (tmp_path / "s").exists()


def test_empty_registry(cli, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    cli("data", "snapshot", str(tmp_path / "f"), "--name", "d")  # a store with data, no registry
    assert js(cli, "model", "list") == [] and js(cli, "log") == [] and js(cli, "runs", "list") == []
    out, _ = cli("model", "list")
    assert "no artifacts" in out


# ---------------------------------------------------------------------- damaged registry: exit 3
def _commit_file(store, seq):
    return Path(store) / commit_key(seq)


def test_corrupted_commit_is_exit_3(registered, tmp_path, monkeypatch):
    _commit_file(registered.store, 2).write_bytes(b"\x00garbage{")
    # the index of this host already holds commit 2: a fresh cache re-reads the log
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "fresh-cache"))
    for args in (["model", "list"], ["model", "show", "clf"], ["log"]):
        _, err = registered(*args, code=3)
        assert "store error" in err and "not valid JSON" in err and "00000000000000000002.json" in err


def test_garbage_next_commit_is_exit_3(registered):
    _commit_file(registered.store, 4).write_text("not json")
    _, err = registered("model", "promote", "clf:v1", "production", code=3)
    assert "not valid JSON" in err


def test_newer_commit_format_is_exit_3(registered, tmp_path, monkeypatch):
    f = _commit_file(registered.store, 3)
    body = json.loads(f.read_text())
    body["format_version"] = 3
    f.write_text(json.dumps(body))
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "fresh-cache"))
    _, err = registered("model", "list", code=3)
    assert "format_version 3, newer than this mlops-engine supports" in err


# ---------------------------------------------------------------------- as a process
def test_as_a_process(registered, tmp_path):
    env = {**os.environ, "MLOPS_CACHE_DIR": str(tmp_path / "cache"), "MLOPS_HOME": registered.store}

    def mlops(*args):
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                              text=True, env=env)

    assert main(["model", "promote", "clf:v1", "production", "--store", registered.store]) == 0
    r = mlops("model", "promote", "clf:v2", "production", "--gate", "val_loss<")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("mlops model promote: rejected: clf:v2 not promoted to 'production'")
    r = mlops("log", "clf", "--json", "--limit", "1")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["summary"] == "alias production of clf: none -> v1"


def test_model_verify(tmp_path, monkeypatch, capsys):
    from engine.cli import main

    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "cache"))
    store = str(tmp_path / "s")
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights" * 1000)
    assert main(["model", "register", "m", str(f), "--store", store]) == 0
    assert main(["model", "verify", "--store", store]) == 0
    assert "1 commit, 0 checkpoints, 0 index snapshots, 1 live version: OK" in capsys.readouterr().out
    assert main(["model", "verify", "--quick", "--store", store]) == 0
    assert ": OK" in capsys.readouterr().out
    from engine.registry.log import commit_key

    path = tmp_path / "s" / commit_key(1)
    path.chmod(0o644)
    path.write_text("garbage")
    assert main(["model", "verify", "--store", store, "--json"]) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["problems"][0]["problem"] == "commit unreadable"
