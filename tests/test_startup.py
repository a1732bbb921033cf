"""What each ``mlops`` command imports at start: no pandas unless the user hands it pandas.

``pyarrow.array``, ``pyarrow.table`` and ``Table.from_pydict``/``from_pylist`` on Python
lists or NumPy arrays, ``pyarrow.scalar``, ``Array.to_numpy`` and ``pq.read_table``
(through ``pyarrow.dataset``) import pandas when it is installed: about 0.4 s added to a
command that never sees a DataFrame (issue 11). The engine builds Arrow data through
``engine.store.arrow_build`` instead. Each command here runs as ``python -m engine.cli
...`` in a fresh interpreter, through a driver that runs the module with ``runpy`` and
then writes ``sorted(sys.modules)`` to a file. Timings are in ``bench/bench_startup.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pandas") is None,
                                reason="pandas is not installed: nothing could import it")

# Runs `python -m engine.cli ARGS` in this process, then records what it imported.
DRIVER = """
import json, runpy, sys
record = sys.argv[1]
sys.argv = ["mlops", *sys.argv[2:]]
code = 0
try:
    runpy.run_module("engine.cli", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
with open(record, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""

# Modules a command must not import at start, beyond pandas (their cost on the CI machine):
# the data and registry commands need no drift kernels (numba ~110 ms, and scipy ~65 ms
# through numba), no Arrow compute (~17 ms) and no Parquet; data commands no registry.
HEAVY = ("numba", "scipy", "pyarrow.compute", "pyarrow.parquet", "pyarrow.dataset",
         "engine.monitor")
DATA_ONLY = HEAVY + ("engine.registry",)

# (id, command line, exit codes that count as success, modules it must not import)
COMMANDS = [
    ("snapshot", ["data", "snapshot", "{tree}", "--name", "ds"], (0,), DATA_ONLY),
    ("re-snapshot", ["data", "snapshot", "{tree}", "--name", "ds"], (0,), DATA_ONLY),
    ("checkout", ["data", "checkout", "ds:v1", "{out}"], (0,), DATA_ONLY),
    ("status", ["data", "status", "ds", "{tree}"], (0,), DATA_ONLY),
    ("data log", ["data", "log", "ds"], (0,), DATA_ONLY),
    ("register", ["model", "register", "clf", "{model}"], (0,), HEAVY),
    ("model list", ["model", "list"], (0,), HEAVY),
    ("model pull", ["model", "pull", "clf:v1", "{pulled}"], (0,), HEAVY),
    ("drift arrow", ["monitor", "drift", "{ref_arrow}", "{cur_arrow}"], (0, 1), ()),
    ("profile parquet", ["monitor", "profile", "{ref_parquet}", "-o", "{profile}"], (0,), ()),
    ("drift profile", ["monitor", "drift", "{profile}", "{cur_arrow}", "--test", "ks",
                       "--test", "mmd", "--test", "psi"], (0, 1), ()),
]


def _table(seed: int, shift: float) -> pa.Table:
    rng = np.random.default_rng(seed)
    n = 2000
    return pa.table({
        "x": rng.normal(shift, 1.0, n),
        "k": rng.integers(0, 5, n),
        "c": [str(v) for v in rng.choice(["red", "green", "blue"], n)],
        "t": [f"free text {i} über alles" for i in rng.integers(0, 10_000, n)],
    })


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every command of COMMANDS, in order, each in a fresh interpreter: id -> record."""
    d = tmp_path_factory.mktemp("startup")
    tree = d / "tree"
    for i in range(50):
        sub = tree / f"d{i % 5}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}.txt").write_bytes(os.urandom(100 + 37 * i))
    os.symlink("d0/f0.txt", tree / "link")
    (d / "model").mkdir()
    (d / "model" / "weights.bin").write_bytes(os.urandom(50_000))
    feather.write_feather(_table(0, 0.0), d / "ref.arrow")
    feather.write_feather(_table(1, 0.3), d / "cur.arrow")
    pq.write_table(_table(0, 0.0), d / "ref.parquet")
    paths = {"tree": tree, "out": d / "out", "model": d / "model", "pulled": d / "pulled",
             "ref_arrow": d / "ref.arrow", "cur_arrow": d / "cur.arrow",
             "ref_parquet": d / "ref.parquet", "profile": d / "ref.profile"}
    env = dict(os.environ, MLOPS_HOME=str(d / "store"), MLOPS_CACHE_DIR=str(d / "cache"))
    out = {}
    for name, argv, _, _ in COMMANDS:
        record = d / f"{name.replace(' ', '_')}.json"
        args = [a.format(**{k: str(v) for k, v in paths.items()}) for a in argv]
        r = subprocess.run([sys.executable, "-c", DRIVER, str(record), *args],
                           capture_output=True, text=True, env=env, cwd=d)
        assert record.exists(), f"{name}: the driver failed:\n{r.stdout}\n{r.stderr}"
        out[name] = json.loads(record.read_text()) | {"output": r.stdout + r.stderr}
    return out


@pytest.mark.parametrize("name,ok,banned", [(c[0], c[2], c[3]) for c in COMMANDS],
                         ids=[c[0] for c in COMMANDS])
def test_command_imports_no_pandas(runs, name, ok, banned):
    rec = runs[name]
    assert rec["code"] in ok, f"{name} exited {rec['code']}:\n{rec['output']}"
    if name == "re-snapshot":
        assert "unchanged" in rec["output"], rec["output"]
    mods = set(rec["modules"])
    assert "engine.cli.app" in mods, "the driver did not record the command's imports"
    assert "pandas" not in mods, f"`mlops {name}` imported pandas"
    loaded = sorted(m for m in banned if m in mods)
    assert not loaded, f"`mlops {name}` imported {loaded} at start"



# ---------------------------------------------------------------------------
# engine.store.arrow_build builds what pyarrow.array builds, buffer for buffer
# ---------------------------------------------------------------------------

CHUNK = pa.struct([("id", pa.binary(32)), ("length", pa.uint32())])
SAME_AS_PYARROW = [
    (pa.int64(), [1, None, -3]),
    (pa.uint64(), [0, 2**64 - 1]),
    (pa.uint32(), [5, 6]),
    (pa.int8(), []),
    (pa.float64(), [1.0, None, float("nan"), -0.0]),
    (pa.bool_(), [True, None, False, True] * 5),
    (pa.timestamp("ns"), [1, None]),
    (pa.string(), ["a", None, "héllo", ""]),
    (pa.large_string(), ["x", "yz"]),
    (pa.binary(), [b"a", None, b""]),
    (pa.binary(32), [b"x" * 32, None, b"y" * 32]),
    (pa.list_(CHUNK), [[(b"a" * 32, 1), (b"b" * 32, 2)], None, []]),
    (pa.list_(CHUNK), [[{"id": b"a" * 32, "length": 1}]]),
    (pa.large_list(pa.float64()), [[1.0], None, [2.0, 3.0]]),
    (pa.struct([("a", pa.int8()), ("b", pa.list_(pa.string()))]),
     [{"a": 1, "b": ["x"]}, None, {"a": None, "b": None}, {"b": ["y"]}]),
    (pa.int64(), [2.0, 3]),  # what pyarrow also takes
    (pa.float64(), [True, 1]),
    (pa.string(), [b"bytes", "str"]),
    (pa.binary(), ["str", bytearray(b"b")]),
]


def _ipc(arr) -> bytes:
    t = pa.table({"c": arr})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("typ,values", SAME_AS_PYARROW, ids=[str(t) for t, _ in SAME_AS_PYARROW])
def test_array_from_list_is_pyarrow_array(typ, values):
    from engine.store.arrow_build import array_from_list

    ours = array_from_list(values, typ)
    ours.validate(full=True)
    assert _ipc(ours) == _ipc(pa.array(values, type=typ))


@pytest.mark.parametrize("typ,values,error", [
    (pa.uint64(), [-1], TypeError), (pa.int8(), [300], TypeError),
    (pa.int64(), ["1"], TypeError), (pa.int64(), [True], TypeError),
    (pa.float64(), ["1.5"], TypeError), (pa.binary(32), [b"short"], ValueError),
    (pa.string(), [b"\xff"], ValueError), (pa.string(), [1], TypeError),
    (pa.struct([("a", pa.int8())]), [1], ValueError),
])
def test_array_from_list_refuses_what_pyarrow_refuses(typ, values, error):
    from engine.store.arrow_build import array_from_list

    with pytest.raises(error, match="values"):
        array_from_list(values, typ)
    with pytest.raises((pa.ArrowException, TypeError, ValueError, OverflowError)):
        pa.array(values, type=typ)


def test_array_from_list_refuses_a_lossy_float_and_unsupported_types():
    from engine.store.arrow_build import array_from_list

    with pytest.raises(TypeError, match="1.5"):  # pyarrow.array truncates it to 1
        array_from_list([1.5], pa.int64())
    with pytest.raises(TypeError, match="not supported"):
        array_from_list(["a"], pa.dictionary(pa.int8(), pa.string()))


@pytest.mark.parametrize("arr", [
    pa.array([1, 2, 3], pa.int32()), pa.array([1, None, 3], pa.int64()),
    pa.array([1.5, None], pa.float32()), pa.array([True, False, True]),
    pa.array([True, None, False]), pa.array(list(range(20)), pa.uint16()).slice(3, 9),
    pa.array([None, 1.0, None, 2.0] * 3).slice(5), pa.array([False, True] * 9).slice(3, 11),
    pa.chunked_array([[1, 2], [3]], pa.int64()), pa.chunked_array([], pa.float64()),
], ids=lambda a: str(a.type))
def test_numpy_from_array_is_to_numpy(arr):
    from engine.store.arrow_build import numpy_from_array

    ours, ref = numpy_from_array(arr), arr.to_numpy(zero_copy_only=False)
    assert ours.dtype == ref.dtype
    np.testing.assert_array_equal(ours, ref)


def test_table_from_columns_checks_the_schema():
    from engine.store.arrow_build import table_from_columns

    s = pa.schema([("a", pa.int64()), ("b", pa.string())])
    with pytest.raises(ValueError, match=r"\['b'\]"):
        table_from_columns({"a": [1]}, s)
    with pytest.raises(ValueError, match="not in the schema"):
        table_from_columns({"a": [1], "b": ["x"], "c": [2]}, s)
    with pytest.raises(TypeError, match="column 'a' has type double"):
        table_from_columns({"a": pa.array([1.0]), "b": ["x"]}, s)


def test_manifest_bytes_as_before():
    """The manifest built from buffers is byte-identical to the ``from_pydict`` one."""
    from engine.data import manifest as mf

    rng = np.random.default_rng(7)
    entries = [{"path": f"d/{i}", "kind": "file", "mode": 0o644, "size": int(rng.integers(1 << 20)),
                "mtime_ns": int(rng.integers(1 << 62)), "file_id": rng.bytes(32), "target": None,
                "chunks": [(rng.bytes(32), int(rng.integers(1 << 16)))
                           for _ in range(int(rng.integers(0, 4)))]} for i in range(50)]
    entries.append({"path": "l", "kind": "symlink", "mode": 0o777, "size": 0, "mtime_ns": 1,
                    "file_id": None, "target": "d/0", "chunks": None})
    ordered = sorted(entries, key=lambda e: e["path"].encode())
    cols = {n: [e[n] for e in ordered] for n in mf.SCHEMA.names}
    cols["chunks"] = [None if c is None else [{"id": i, "length": n} for i, n in c]
                      for c in cols["chunks"]]
    assert mf.to_bytes(mf.build(entries)) == mf.to_bytes(pa.Table.from_pydict(cols, mf.SCHEMA))
