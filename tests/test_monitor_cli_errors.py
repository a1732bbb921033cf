"""`mlops monitor profile|drift`: errors that name the real problem, --json, --columns/--types,
progress bars on a terminal, the exit code of an untestable verdict.

Every command runs in a fresh interpreter (``python -m engine.cli``) in an empty working
directory with no ``MLOPS_HOME``, so that "no store" is what a new user would see.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def mlops(*args, cwd, stderr_tty=False):
    env = {k: v for k, v in os.environ.items() if k != "MLOPS_HOME"}
    argv = [sys.executable, "-m", "engine.cli", *map(str, args)]
    if not stderr_tty:
        return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env)
    # stderr on a pseudo-terminal: what a user at a terminal sees (progress bars)
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = p.stdout.read().decode()
    p.wait()
    os.close(master)
    return subprocess.CompletedProcess(argv, p.returncode, out, b"".join(chunks).decode())


def listing(d) -> list[str]:
    return sorted(os.listdir(d))


@pytest.fixture
def work(tmp_path):
    """``tmp/work`` (the working directory, holding ref.parquet and cur.parquet)."""
    rng = np.random.default_rng(0)
    w = tmp_path / "work"
    w.mkdir()
    pq.write_table(pa.table({"a": rng.normal(size=500), "b": rng.normal(size=500),
                             "c": rng.choice(["x", "y", "z"], 500)}), w / "ref.parquet")
    pq.write_table(pa.table({"a": rng.normal(size=500) + 1, "b": rng.normal(size=500),
                             "c": rng.choice(["x", "y", "z"], 500)}), w / "cur.parquet")
    return w


@pytest.fixture
def store(tmp_path, work):
    """A store holding a table version ``users:v1`` and a registry model ``resnet@production``."""
    import engine.data as data
    from engine.registry import Registry

    st = str(tmp_path / "store")
    data.snapshot(pq.read_table(work / "ref.parquet"), name="users", store=st)
    with Registry(st) as reg:
        reg.register("resnet", b"weights", kind="model")
        reg.set_alias("resnet:v1", "production")
    return st


# ----------------------------------------------------------------- item 5: missing files

@pytest.mark.parametrize("args, missing", [
    (["monitor", "profile", "data/today.parquet", "-o", "p.profile"], "data/today.parquet"),
    (["monitor", "profile", "today.parquet", "-o", "p.profile"], "today.parquet"),
    (["monitor", "drift", "today.parquet", "cur.parquet"], "today.parquet"),
    (["monitor", "drift", "ref.parquet", "data/today.csv"], "data/today.csv"),
    (["monitor", "drift", "old/ref.profile", "cur.parquet"], "old/ref.profile"),
    (["monitor", "profile", "cur.parquet", "--edges-from", "ref.profile", "-o", "p.profile"],
     "ref.profile"),
])
def test_missing_file_says_the_file_does_not_exist(work, args, missing):
    r = mlops(*args, cwd=work)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"{missing!r} does not exist" in r.stderr
    assert "store" not in r.stderr and "dataset" not in r.stderr
    assert listing(work) == ["cur.parquet", "ref.parquet"]


@pytest.mark.parametrize("spec", ["today", "users:v3", "users@latest"])
def test_reference_without_store_says_both(work, spec):
    r = mlops("monitor", "drift", spec, "cur.parquet", cwd=work)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"no file {spec!r}, and no store at" in r.stderr
    assert listing(work) == ["cur.parquet", "ref.parquet"]  # no store was created


@pytest.mark.parametrize("spec", ["today", "other@latest", "other:v1", "other@production"])
def test_unknown_reference_in_a_store_says_both(work, store, spec):
    r = mlops("monitor", "drift", spec, "cur.parquet", "--store", store, cwd=work)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert (f"no file {spec!r}, and no table version or registry profile named {spec!r} "
            f"in the store at {store}") in r.stderr
    assert "@latest" not in r.stderr.replace(spec, "")


def test_known_table_version_still_works_and_bad_version_is_named(work, store):
    r = mlops("monitor", "drift", "users@latest", "cur.parquet", "--store", store, cwd=work)
    assert r.returncode in (0, 1), r.stderr
    r = mlops("monitor", "drift", "users:v9", "cur.parquet", "--store", store, cwd=work)
    assert r.returncode == 2 and "no version users:v9 (versions: v1..v1)" in r.stderr, r.stderr


def test_registered_profile_is_an_input(work, store):
    r = mlops("monitor", "profile", "users@latest", "--register", "users-ref", "--store", store,
              cwd=work)
    assert r.returncode == 0, r.stderr
    r = mlops("monitor", "drift", "users-ref@latest", "ref.parquet", "--store", store, cwd=work)
    assert r.returncode == 0, r.stderr


def test_profile_of_a_profile_is_refused(work):
    assert mlops("monitor", "profile", "ref.parquet", "-o", "ref.profile", cwd=work).returncode == 0
    r = mlops("monitor", "profile", "ref.profile", "-o", "again.profile", cwd=work)
    assert r.returncode == 2
    assert "'ref.profile' is a profile" in r.stderr
    assert not (work / "again.profile").exists()


def test_edges_from_a_table_is_refused(work):
    r = mlops("monitor", "profile", "cur.parquet", "--edges-from", "ref.parquet", "-o", "p.profile",
              cwd=work)
    assert r.returncode == 2 and "expected a reference profile" in r.stderr, r.stderr


def test_directory_input_is_named(work):
    (work / "data").mkdir()
    r = mlops("monitor", "profile", "data", "-o", "p.profile", cwd=work)
    assert r.returncode == 2 and "'data' is a directory" in r.stderr, r.stderr


def test_load_input_is_public_api(work, store):
    from engine.monitor.inputs import load_input
    from engine.monitor.profile import Profile, profile

    assert load_input(str(work / "ref.parquet")).num_rows == 500
    assert load_input("users:v1", store=store).num_rows == 500
    profile(load_input("users:v1", store=store)).save(work / "x.profile")
    assert isinstance(load_input(str(work / "x.profile")), Profile)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_input(str(work / "nope.parquet"), store=store)


# ------------------------------------------- item 9: a model is not a profile or a table

@pytest.mark.parametrize("spec", ["resnet@production", "resnet", "resnet:v1", "resnet@staging"])
def test_model_reference_says_it_is_a_model(work, store, spec):
    r = mlops("monitor", "drift", spec, "cur.parquet", "--store", store, cwd=work)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert f"{spec!r} is a model in the registry, not a profile or a table version" in r.stderr
    assert "@latest" not in r.stderr


# --------------------------------------- item 12: profile -o that cannot be written

def _unwritable(tmp_path):
    """A directory this process cannot create files in, even as root (sysfs)."""
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        return str(d)
    if not os.path.isdir("/sys"):
        pytest.skip("needs /sys (running as root, permissions do not apply elsewhere)")
    return "/sys"


@pytest.mark.parametrize("case", ["directory", "no parent", "parent is a file", "unwritable"])
def test_profile_output_that_cannot_be_written(work, tmp_path, case):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path / "afile").write_text("x")
    dest = {"directory": str(out_dir),
            "no parent": str(tmp_path / "nope" / "ref.profile"),
            "parent is a file": str(tmp_path / "afile" / "ref.profile"),
            "unwritable": os.path.join(_unwritable(tmp_path), "ref.profile")}[case]
    before = listing(tmp_path)
    watched = [d for d in (os.path.dirname(dest), dest) if os.path.isdir(d)]
    inside = {d: listing(d) for d in watched}
    r = mlops("monitor", "profile", "ref.parquet", "-o", dest, cwd=work)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert repr(dest) in r.stderr and "tmp" not in r.stderr.replace(str(tmp_path), ""), r.stderr
    assert listing(work) == ["cur.parquet", "ref.parquet"]
    assert listing(tmp_path) == before
    assert {d: listing(d) for d in watched} == inside


# ------------------------------------------------------------------- --json on profile

def test_profile_json(work, store):
    r = mlops("monitor", "profile", "users@latest", "-o", "u.profile", "--register", "u",
              "--store", store, "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["rows"] == 500
    assert out["columns"] == {"a": "numeric", "b": "numeric", "c": "categorical"}
    assert out["output"] == "u.profile" and out["registered"] == "u:v1"
    assert out["data"] == "users@latest"
    assert (out["source"], out["ref"]) == ("table version", "users:v1")
    r = mlops("monitor", "profile", "ref.parquet", "-o", "r.profile", "--json", cwd=work)
    out = json.loads(r.stdout)
    assert out["registered"] is None and out["source"] == "file"


# -------------------------------------------------------------------- --columns / --types

def test_drift_columns_and_types(work):
    rng = np.random.default_rng(1)
    pq.write_table(pa.table({"a": [1, 2, 3] * 100, "b": rng.normal(size=300)}), work / "r.parquet")
    pq.write_table(pa.table({"a": [1, 2, 3] * 100, "b": rng.normal(size=300) + 5}),
                   work / "c.parquet")
    r = mlops("monitor", "drift", "r.parquet", "c.parquet", "--columns", "a",
              "--types", "a=categorical", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    tests = json.loads(r.stdout)["tests"]
    assert {t["column"] for t in tests} == {"a"}
    assert {t["type"] for t in tests} == {"categorical"}
    r = mlops("monitor", "drift", "r.parquet", "c.parquet", "--columns", "a,b", "--columns", "a",
              "--json", cwd=work)
    assert r.returncode == 2 and "--columns" in r.stderr and "'a'" in r.stderr, r.stderr
    r = mlops("monitor", "drift", "r.parquet", "c.parquet", "--columns", "b", cwd=work)
    assert r.returncode == 1, r.stderr


@pytest.mark.parametrize("args, msg", [
    (["--types", "a"], "--types: expected COLUMN=KIND"),
    (["--types", "=numeric"], "--types: expected COLUMN=KIND"),
    (["--types", "a=float"], "kind must be one of numeric, categorical, text, got 'float'"),
    (["--types", "a=numeric", "--types", "a=text"], "--types: column 'a' is given twice"),
    (["--columns", "a,,b"], "--columns: empty column name in 'a,,b'"),
    (["--columns", "nope"], "'nope'"),
    (["--types", "nope=numeric"], "'nope'"),
])
def test_drift_columns_and_types_errors(work, args, msg):
    r = mlops("monitor", "drift", "ref.parquet", "cur.parquet", *args, cwd=work)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert msg in r.stderr


def test_profile_types(work):
    r = mlops("monitor", "profile", "ref.parquet", "-o", "p.profile", "--types", "c=text",
              "--columns", "a,c", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["columns"] == {"a": "numeric", "c": "text"}


# ------------------------------------------------------------------- help and exit codes

def test_drift_help_lists_every_test_and_exit_4(work):
    from engine.monitor.drift import KNOWN_TESTS

    r = mlops("monitor", "drift", "--help", cwd=work)
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    for t in KNOWN_TESTS:
        assert t in text, t
    assert "4: untestable" in text


def test_untestable_exit_4(work):
    empty = pa.table({"a": pa.array([], pa.float64()), "b": pa.array([], pa.float64()),
                      "c": pa.array([], pa.string())})
    pq.write_table(empty, work / "empty.parquet")
    r = mlops("monitor", "drift", "ref.parquet", "empty.parquet", cwd=work)
    assert r.returncode == 4, (r.stdout, r.stderr)
    assert r.stdout.startswith("UNTESTABLE: nothing could be compared")
    r = mlops("monitor", "drift", "ref.parquet", "empty.parquet", "--json", cwd=work)
    assert r.returncode == 4 and json.loads(r.stdout)["verdict"]["status"] == "untestable"


# ------------------------------------------------------------------------ progress bars

@pytest.mark.parametrize("args", [["monitor", "profile", "ref.parquet", "-o", "p.profile"],
                                  ["monitor", "drift", "ref.parquet", "cur.parquet"]])
def test_progress_bar_on_a_terminal_only(work, args):
    r = mlops(*args, cwd=work, stderr_tty=True)
    assert r.returncode in (0, 1), r.stderr
    assert re.search(r"\b(\d+)/\1 columns", r.stderr), r.stderr
    r = mlops(*args, cwd=work)
    assert r.returncode in (0, 1) and "columns" not in r.stderr, r.stderr
    r = mlops(*args, "--json", cwd=work, stderr_tty=True)
    assert "columns/s" not in r.stderr and json.loads(r.stdout)
