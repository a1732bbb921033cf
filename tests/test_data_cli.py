"""`mlops data ...`: output, --json, exit codes, --help."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

SUBCOMMANDS = ["snapshot", "checkout", "diff", "log", "verify", "gc"]


def mlops(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ})


@pytest.fixture
def tree(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.bin").write_bytes(np.random.default_rng(0).bytes(300_000))
    (d / "b.txt").write_text("hello\n")
    return d


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help(sub):
    r = mlops("data", sub, "--help")
    assert r.returncode == 0 and f"usage: mlops data {sub}" in r.stdout and "--store" in r.stdout


def test_data_without_subcommand_prints_help():
    r = mlops("data")
    assert r.returncode == 2 and "snapshot" in r.stdout


def test_full_cycle_json(tree, tmp_path):
    store = str(tmp_path / "s")
    r = mlops("data", "snapshot", str(tree), "--name", "ds", "-m", "one", "--store", store, "--json")
    assert r.returncode == 0, r.stderr
    v1 = json.loads(r.stdout)
    assert v1["ref"] == "ds:v1" and v1["files"] == 2 and not v1["unchanged"] and v1["message"] == "one"
    r = mlops("data", "snapshot", str(tree), "--name", "ds", "--store", store, "--json")
    assert json.loads(r.stdout)["unchanged"] is True
    (tree / "b.txt").write_text("changed\n")
    (tree / "c.txt").write_text("new\n")
    assert mlops("data", "snapshot", str(tree), "-n", "ds", "--store", store).returncode == 0

    log = json.loads(mlops("data", "log", "ds", "--store", store, "--json").stdout)
    assert [v["ref"] for v in log] == ["ds:v2", "ds:v1"] and log[1]["id"] == v1["id"]

    d = json.loads(mlops("data", "diff", "ds:v1", "ds:v2", "--store", store, "--json").stdout)
    assert [e["path"] for e in d["added"]] == ["c.txt"] and [e["path"] for e in d["modified"]] == ["b.txt"]
    assert mlops("data", "diff", "ds:v1", "ds:v2", "--store", store, "--exit-code").returncode == 1
    assert mlops("data", "diff", "ds:v2", "ds@latest", "--store", store, "--exit-code").returncode == 0

    out = tmp_path / "out"
    r = mlops("data", "checkout", v1["id"][:12], str(out), "--store", store, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ref"] == "ds:v1"
    assert (out / "b.txt").read_text() == "hello\n" and not (out / "c.txt").exists()
    r = mlops("data", "checkout", "ds", str(tmp_path / "sub"), "--path", "c.txt", "--store", store)
    assert r.returncode == 0 and os.listdir(tmp_path / "sub") == ["c.txt"]

    v = json.loads(mlops("data", "verify", "--store", store, "--json").stdout)
    assert v["ok"] and v["versions"] == 2
    g = mlops("data", "gc", "--keep-last", "1", "--grace", "0", "--store", store, "--json")
    assert json.loads(g.stdout)["versions_deleted"] == ["ds:v1"]


def test_default_store_is_dot_mlops(tree):
    r = mlops("data", "snapshot", ".", "--name", "here", cwd=tree)
    assert r.returncode == 0, r.stderr
    assert (tree / ".mlops" / "config.json").exists()
    r = mlops("data", "snapshot", ".", "--name", "here", "--json", cwd=tree)
    assert json.loads(r.stdout)["unchanged"]  # the store inside the tree is not snapshotted


def test_mlops_home(tree, tmp_path):
    env_store = tmp_path / "home-store"
    r = subprocess.run([sys.executable, "-m", "engine.cli", "data", "snapshot", str(tree), "-n", "h"],
                       capture_output=True, text=True, env={**os.environ, "MLOPS_HOME": str(env_store)})
    assert r.returncode == 0 and (env_store / "config.json").exists()


@pytest.mark.parametrize("args, code, msg", [
    (["data", "snapshot", "/no/such/dir", "-n", "x"], 2, "source does not exist"),
    (["data", "snapshot", ".", "-n", "bad name"], 2, "name must be"),
    (["data", "snapshot", "."], 2, "--name"),
    (["data", "checkout", "ds:v9", "out"], 2, "no version ds:v9"),
    (["data", "checkout", "ds:zz", "out"], 2, "malformed version reference"),
    (["data", "log", "nothing"], 2, "no dataset named 'nothing'"),
    (["data", "verify", "--sample", "3"], 2, "sample must be"),
    (["data", "gc", "--keep-last", "0"], 2, "keep_last"),
])
def test_errors(tree, tmp_path, args, code, msg):
    store = str(tmp_path / "s")
    assert mlops("data", "snapshot", str(tree), "-n", "ds", "--store", store).returncode == 0
    r = mlops(*args, "--store", store, cwd=tree)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert msg in r.stderr


def test_newer_store_format_is_exit_3(tree, tmp_path):
    store = tmp_path / "s"
    assert mlops("data", "snapshot", str(tree), "-n", "ds", "--store", str(store)).returncode == 0
    cfg = json.loads((store / "config.json").read_text())
    cfg["format_version"] = 99  # 2 is an encrypted store's
    (store / "config.json").write_text(json.dumps(cfg))
    r = mlops("data", "log", "ds", "--store", str(store))
    assert r.returncode == 3 and "newer than this mlops-engine supports" in r.stderr
