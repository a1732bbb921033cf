"""How the mlops command fails: closed pipes, usage errors, JSON errors, I/O errors.

A closed pipe ends a command quietly with 141 (128 + SIGPIPE, what a shell reports for
`yes | head`); errors under --json are one JSON object on stderr; "the store is
unchanged" is said only by commands that have a store.
"""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import engine.store.pipeline
from engine.cli import main

from conftest import random_bytes

EXIT_PIPE = 141  # 128 + SIGPIPE


def mlops(*args, stdout=subprocess.PIPE, cwd=None):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, cwd=cwd)


def closed_pipe_run(*args):
    """Run mlops with stdout a pipe nobody reads: every write to it fails with EPIPE."""
    r, w = os.pipe()
    os.close(r)
    try:
        return mlops(*args, stdout=w)
    finally:
        os.close(w)


@pytest.fixture
def big_file(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(random_bytes(4_000_000, 7))
    return p


@pytest.fixture
def store(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.bin").write_bytes(np.random.default_rng(i).bytes(20_000))
    root = tmp_path / "store"
    assert mlops("data", "snapshot", src, "-n", "ds", "--store", root).returncode == 0
    return root


# ----------------------------------------------------------------------------- closed pipes


def test_chunk_json_into_head_exits_quietly_like_a_unix_tool(big_file):
    # 4 MB in ~1 KiB chunks: ~4000 chunk records, far more than a pipe buffer holds
    cmd = (f"{sys.executable} -m engine.cli chunk {big_file} --avg-size 1KiB --json | head -2; "
           "echo status=${PIPESTATUS[0]}")
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    lines = r.stdout.splitlines()
    assert lines[0] == "{" and lines[1].startswith(' "file"'), r.stdout[:200]
    assert lines[-1] == f"status={EXIT_PIPE}"
    assert r.stderr == "", r.stderr


@pytest.mark.parametrize("args", [["chunk", "{big}", "--json"], ["chunk", "{big}"],
                                  ["backends"], ["backends", "--json"]])
def test_closed_pipe_without_a_store(args, big_file):
    r = closed_pipe_run(*[a.format(big=big_file) for a in args])
    assert r.returncode == EXIT_PIPE
    assert r.stderr == "", r.stderr  # no traceback, no "Exception ignored", no store


@pytest.mark.parametrize("args", [["data", "log", "ds"], ["data", "verify", "--json"],
                                  ["data", "list"]])
def test_closed_pipe_with_a_store(args, store):
    r = closed_pipe_run(*args, "--store", store)
    assert r.returncode == EXIT_PIPE
    assert r.stderr == "", r.stderr


def test_broken_pipe_in_process(monkeypatch, capsys, big_file):
    class Closed:
        def write(self, s):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["chunk", str(big_file)]) == EXIT_PIPE
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------- I/O errors


def test_io_error_of_chunk_never_mentions_a_store(monkeypatch, capsys, big_file):
    def eio(*a, **k):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(engine.store.pipeline, "chunk_file", eio)
    assert main(["chunk", str(big_file)]) == 3
    err = capsys.readouterr().err
    assert "I/O error" in err and "store" not in err, err


def test_io_error_of_a_store_command_says_what_was_recorded(monkeypatch, capsys, store):
    import engine.data

    def eio(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(engine.data, "gc", eio)
    assert main(["data", "gc", "--store", str(store)]) == 3
    err = capsys.readouterr().err
    assert "I/O error" in err and "no version or commit was recorded" in err, err
    assert "mlops data gc" in err  # where the space a failed write used goes back
    # a command that only reads the store says nothing about what was recorded
    monkeypatch.setattr(engine.data, "verify", eio)
    assert main(["data", "verify", "--store", str(store)]) == 3
    err = capsys.readouterr().err
    assert "I/O error" in err and "recorded" not in err, err


# ----------------------------------------------------------------------------- demo --dir


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_demo_dir_that_is_a_file_is_a_usage_error(tmp_path, json_flag):
    f = tmp_path / "a-file"
    f.write_text("x")
    r = mlops("demo", "--fast", "--dir", f, *json_flag)
    assert r.returncode == 2, r.stderr
    assert "--dir" in r.stderr and str(f) in r.stderr and "I/O error" not in r.stderr
    assert f.read_text() == "x"


def test_demo_dir_below_a_file_is_a_usage_error(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    r = mlops("demo", "--fast", "--dir", f / "sub")
    assert r.returncode == 2 and "--dir" in r.stderr, r.stderr


# ----------------------------------------------------------------------------- JSON errors


def json_error(r):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # one object, nothing else
    return json.loads(lines[0])


@pytest.mark.parametrize("args, code, command, words", [
    (["data", "verify", "--store", "{tmp}/none"], 2, "data verify", "no store at"),
    (["data", "log", "nothing", "--store", "{store}"], 2, "data log", "no dataset named 'nothing'"),
    (["data", "verify", "--sample", "lots", "--store", "{store}"], 2, "data verify", "--sample"),
    (["data", "status", "ds", "{tmp}/nowhere", "--store", "{store}"], 2, "data status",
     "does not exist"),
    (["chunk", "/no/such/file"], 2, "chunk", "does not exist"),
    (["chunk", "setup.py", "--avg-size", "1000"], 2, "chunk", "power of two"),
])
def test_errors_under_json_are_a_json_object_on_stderr(args, code, command, words, tmp_path, store):
    args = [a.format(tmp=tmp_path, store=store) for a in args]
    r = mlops(*args, "--json", cwd=os.path.dirname(os.path.dirname(__file__)))
    assert r.returncode == code, r.stderr
    assert r.stdout == ""
    err = json_error(r)
    assert err["exit_code"] == code and err["command"] == command, err
    assert words in err["error"], err


def test_store_damage_under_json(store):
    cfg = json.loads((store / "config.json").read_text())
    (store / "config.json").write_text(json.dumps(cfg | {"format_version": 99}))
    r = mlops("data", "log", "ds", "--store", store, "--json")
    err = json_error(r)
    assert r.returncode == 3 and err["exit_code"] == 3 and "newer" in err["error"], err


def test_errors_without_json_stay_text(tmp_path):
    r = mlops("data", "verify", "--store", tmp_path / "none")
    assert r.returncode == 2 and r.stderr.startswith("mlops data verify: error: no store at")


@pytest.mark.parametrize("args", [["demo", "--help"], ["chunk", "--help"], ["backends", "--help"]])
def test_every_top_level_command_has_json(args):
    r = mlops(*args)
    assert r.returncode == 0 and "--json" in r.stdout


def test_backends_json_is_plain_json():
    r = mlops("backends", "--json")
    assert r.returncode == 0 and isinstance(json.loads(r.stdout), list)


# ----------------------------------------------------------------------------- chunk output


def test_chunk_of_a_tiny_file_prints_no_rate_and_a_human_size(tmp_path):
    p = tmp_path / "small.txt"
    p.write_bytes(b"x" * 5000)
    r = mlops("chunk", p)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert "4.9 KiB" in out and "in 1 chunk," in out and "5000" not in out, out
    assert "iB/s" not in out, out  # a rate over a few microseconds says nothing


def test_chunk_of_a_larger_file_prints_a_rate(big_file):
    r = mlops("chunk", big_file)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert "3.8 MiB in " in out and " chunks," in out and "iB/s" in out, out


def test_chunk_times_only_the_chunking(monkeypatch, capsys, big_file):
    """The clock starts after the chunker backend is loaded (the first load imports and,
    for Numba, compiles it): the reported seconds are those of chunk_file alone."""
    import engine.cli.chunk as cli

    calls = []
    real = engine.store.pipeline.chunk_file
    monkeypatch.setattr(engine.store.pipeline, "warm_up", lambda params, backend: calls.append("warm"),
                        raising=False)
    monkeypatch.setattr(engine.store.pipeline, "chunk_file",
                        lambda *a, **k: calls.append("chunk") or real(*a, **k))
    monkeypatch.setattr(cli.time, "perf_counter", lambda: calls.append("clock") or 2.0 * len(calls))
    assert main(["chunk", str(big_file), "--json"]) == 0
    assert calls == ["warm", "clock", "chunk", "clock"]
    assert json.loads(capsys.readouterr().out)["seconds"] == 4.0
