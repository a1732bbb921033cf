"""The mlops command: help, exit codes, output."""

import json
import subprocess
import sys

import pytest

from engine.cli import main
from engine.store.pipeline import chunk_file, file_id

from conftest import random_bytes


def run(*args):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True)


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ("chunk", "backends", "demo"):
        assert cmd in r.stdout


@pytest.mark.parametrize("cmd", ["chunk", "backends", "demo"])
def test_subcommand_help(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0 and "usage: mlops " + cmd in r.stdout


def test_no_command_prints_help_and_exits_2():
    r = run()
    assert r.returncode == 2 and "COMMAND" in r.stdout


def test_version():
    r = run("--version")
    assert r.returncode == 0 and "mlops-engine" in r.stdout


def test_chunk_json(tmp_path, capsys):
    p = tmp_path / "f.bin"
    p.write_bytes(random_bytes(500_000, 1))
    assert main(["chunk", str(p), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    expect = chunk_file(p)
    assert out["chunks"] == expect.num_rows
    assert out["file_id"] == file_id(expect).hex()
    assert [c["length"] for c in out["chunk_list"]] == expect.column("length").to_pylist()
    assert out["size"] == 500_000


def test_chunk_sizes_and_backend(tmp_path, capsys):
    p = tmp_path / "f.bin"
    p.write_bytes(random_bytes(50_000, 2))
    assert main(["chunk", str(p), "--avg-size", "1KiB", "--min-size", "256", "--backend", "reference"]) == 0
    assert "chunks" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, msg",
    [
        (["chunk", "/nonexistent/file"], "does not exist"),
        (["chunk", "/"], "is a directory"),
        (["chunk", "setup.py", "--avg-size", "1000"], "power of two"),
        (["chunk", "setup.py", "--avg-size", "lots"], "expected a size"),
        (["chunk", "setup.py", "--backend", "gpu"], "invalid choice"),
    ],
)
def test_errors_exit_2(args, msg):
    r = run(*args)
    assert r.returncode == 2
    assert msg in r.stderr


def test_backends_json():
    r = run("backends", "--json")
    assert r.returncode == 0
    rows = {row["kernel"]: row for row in json.loads(r.stdout)}
    assert rows["cdc_scan"]["selected"] in rows["cdc_scan"]["usable"]


def test_backends_says_why_a_backend_is_unusable():
    from engine.kernels import cuda_runtime

    if cuda_runtime.gpu_available():
        pytest.skip("a GPU is present: the cuda backend is usable")
    r = run("backends")
    assert r.returncode == 0
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("cuda: "))
    assert "pip install 'mlops-engine[gpu" in line and line.count("pip install") == 1
