"""`mlops monitor profile|drift`: files in, profiles out, exit codes 0/1/2."""

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest


def mlops(*args):
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    ref = pa.table({"a": rng.normal(size=3000), "b": rng.normal(size=3000),
                    "c": rng.choice(["x", "y", "z"], 3000)})
    cur = pa.table({"a": rng.normal(size=3000) + 1.0, "b": rng.normal(size=3000) + 1.0,
                    "c": rng.choice(["x", "y", "z"], 3000)})
    pq.write_table(ref, tmp_path / "ref.parquet")
    pq.write_table(cur, tmp_path / "cur.parquet")
    pacsv.write_csv(ref, tmp_path / "ref.csv")
    return tmp_path


def test_profile_then_drift(files):
    r = mlops("monitor", "profile", str(files / "ref.parquet"), "-o", str(files / "ref.profile"))
    assert r.returncode == 0, r.stderr
    assert "3000 rows, 3 columns" in r.stdout
    r = mlops("monitor", "drift", str(files / "ref.profile"), str(files / "cur.parquet"),
              "--html", str(files / "r.html"), "--json")
    assert r.returncode == 1, r.stderr  # 2 of 3 columns drifted: share 0.67 >= 0.5
    rep = json.loads(r.stdout)
    assert rep["verdict"]["drift"] and rep["verdict"]["drifted_columns"] == 2
    html = (files / "r.html").read_text()
    assert "<svg" in html and "https://" not in html


def test_no_drift_is_exit_0_and_csv_input(files):
    r = mlops("monitor", "drift", str(files / "ref.csv"), str(files / "ref.parquet"))
    assert r.returncode == 0, r.stderr
    assert "no drift" in r.stdout


@pytest.mark.parametrize("args, msg", [
    (["monitor", "drift", "/no/such.parquet", "x.parquet"], "does not exist"),
    (["monitor", "drift", "REF", "CUR", "--test", "bogus"], "unknown test"),
    (["monitor", "profile", "data.txt", "-o", "p.profile"], "expected a .parquet"),
])
def test_errors_exit_2(files, args, msg):
    args = [a.replace("REF", str(files / "ref.parquet")).replace("CUR", str(files / "cur.parquet"))
            for a in args]
    if args[-3:] == ["data.txt", "-o", "p.profile"] or "data.txt" in args:
        (files / "data.txt").write_text("x")
        args = [str(files / "data.txt") if a == "data.txt" else a for a in args]
    r = mlops(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert msg in r.stderr
