"""Hostile input for every on-disk parser (issue 15).

For each format (pack index, pack index with a recomputed checksum read through the
store, manifest and a checkout of it, version record, registry commit, registry log
checkpoint, registry state snapshot, ``engine.dist`` checkpoint, monitor profile) a
valid file made by the real writer (``fuzz_corpus.build``) is mutated by Hypothesis
(``mutators.hostile_file``: byte-level damage, or a structured change written back
with its checksums recomputed, as whoever can write the store could) and read with
the real reading API. The reader must succeed or raise its layer's documented error
naming the file (``fuzz_corpus.Target.check``), and must not allocate more than the
file's size allows: Python allocations (``tracemalloc``, NumPy's included) and Arrow's
(a proxy memory pool) are measured around every read.

The default run is quick and deterministic (``derandomize``); ``make soak`` runs the
``soak`` variant with thousands of random examples per parser.
``MLOPS_FAULT_REPORT=DIR`` writes the outcome counts to ``DIR/fuzz-<target>.json``.
"""

from __future__ import annotations

import collections
import json
import os
import struct
import tracemalloc

import blake3
import fuzz_corpus
import mutators
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("MLOPS_FUZZ_EXAMPLES", "60"))
SOAK_EXAMPLES = int(os.environ.get("MLOPS_FUZZ_SOAK_EXAMPLES", "2500"))
#: What a read may allocate beyond the file's size (times ALLOC_FACTOR): the readers'
#: fixed costs (a Registry and its SQLite index, Arrow's readers, imports) stay well
#: below this; a length or count taken from a hostile file without a bound does not.
ALLOC_SLACK = 4 << 20
ALLOC_FACTOR = 8
ARROW_SLACK = 1 << 20

TARGETS = ["pack_index", "pack_index_signed", "manifest", "version_record", "commit",
           "commit_middle", "registry_checkpoint", "state_snapshot", "dist_checkpoint",
           "profile"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return fuzz_corpus.build(str(tmp_path_factory.mktemp("fuzz")))


@pytest.fixture(scope="module")
def targets(corpus):
    found = corpus.targets()
    for t in found.values():  # warm up: imports a reader makes on first use are not its cost
        t.check(t.valid)
    return found


def measured(target: fuzz_corpus.Target, data: bytes) -> tuple[str, int, int]:
    """``(outcome, peak Python bytes, peak Arrow bytes)`` of reading ``data``."""
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    old = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        outcome = target.check(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        pa.set_memory_pool(old)
    return outcome, peak, pool.max_memory()


def fuzz(targets, name: str, examples: int, derandomize: bool) -> collections.Counter:
    target = targets[name]
    outcomes: collections.Counter = collections.Counter()

    @settings(max_examples=examples, deadline=None, derandomize=derandomize, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=mutators.hostile_file(name, target.valid))
    def run(data):
        outcome, py_peak, arrow_peak = measured(target, data)
        assert py_peak <= ALLOC_FACTOR * len(data) + ALLOC_SLACK, \
            f"{name}: reading {len(data)} bytes allocated {py_peak} bytes (Python)"
        assert arrow_peak <= 2 * len(data) + ARROW_SLACK, \
            f"{name}: reading {len(data)} bytes allocated {arrow_peak} bytes (Arrow)"
        outcomes[outcome] += 1

    run()
    report = os.environ.get("MLOPS_FAULT_REPORT")
    if report:
        os.makedirs(report, exist_ok=True)
        with open(os.path.join(report, f"fuzz-{name}.json"), "w") as f:
            json.dump({"target": name, "examples": sum(outcomes.values()),
                       "outcomes": dict(outcomes)}, f, indent=1)
    return outcomes


@pytest.mark.parametrize("name", TARGETS)
def test_valid_file_reads(targets, name):
    """The corpus is sound: each valid file reads without error, within the bounds."""
    outcome, py_peak, arrow_peak = measured(targets[name], targets[name].valid)
    assert outcome == "ok"
    assert py_peak <= ALLOC_FACTOR * len(targets[name].valid) + ALLOC_SLACK
    assert arrow_peak <= 2 * len(targets[name].valid) + ARROW_SLACK


@pytest.mark.parametrize("name", TARGETS)
def test_parser_survives_hostile_input(targets, name):
    outcomes = fuzz(targets, name, EXAMPLES, derandomize=True)
    assert sum(outcomes.values()) >= EXAMPLES // 2
    assert any(o != "ok" for o in outcomes), outcomes  # hostile enough to be refused


@pytest.mark.soak
@pytest.mark.parametrize("name", TARGETS)
def test_parser_soak(targets, name):
    outcomes = fuzz(targets, name, SOAK_EXAMPLES, derandomize=False)
    assert sum(outcomes.values()) >= SOAK_EXAMPLES // 2


ATHERIS_RUNS = int(os.environ.get("MLOPS_ATHERIS_RUNS", "3000"))


@pytest.mark.soak
@pytest.mark.parametrize("name", TARGETS)
def test_atheris_soak(tmp_path, name):
    """``atheris_parsers.py`` for a bounded number of runs per target, in a subprocess
    (libFuzzer owns its process); skipped where atheris does not import."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (make soak installs it where its wheel does)")
    harness = os.path.join(os.path.dirname(os.path.abspath(__file__)), "atheris_parsers.py")
    r = subprocess.run([sys.executable, harness, name, f"-runs={ATHERIS_RUNS}",
                        "-rss_limit_mb=4096", "-timeout=120", f"-artifact_prefix={tmp_path}/"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-8000:]
    assert f"Done {ATHERIS_RUNS} runs" in r.stderr, r.stderr[-2000:]


# ----------------------------------------------------------------------------- found bugs
# Each case below is one the fuzzing found (or the issue named); each failed before its fix.

REGRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regressions")


def _regressions():
    for name in sorted(os.listdir(REGRESSIONS)):
        for f in sorted(os.listdir(os.path.join(REGRESSIONS, name))):
            yield pytest.param(name, os.path.join(REGRESSIONS, name, f), id=f"{name}/{f}")


@pytest.mark.parametrize("name,path", list(_regressions()))
def test_regression_files(targets, name, path):
    """Inputs that made a reader fail (``regressions/<target>/``, e.g. atheris' crash files)."""
    with open(path, "rb") as f:
        _check(targets, name, f.read())


def _check(targets, name, data) -> str:
    outcome, py_peak, arrow_peak = measured(targets[name], data)
    assert py_peak <= ALLOC_FACTOR * len(data) + ALLOC_SLACK
    assert arrow_peak <= 2 * len(data) + ARROW_SLACK, f"Arrow allocated {arrow_peak} bytes"
    return outcome


def test_version_record_with_a_non_hex_chunk_id_names_the_file(targets):
    # was: ValueError "non-hexadecimal number found in fromhex() arg at position 0"
    rec = json.loads(targets["version_record"].valid)
    rec["manifest"]["chunks"][0][0] = "zz" * 32
    assert _check(targets, "version_record", json.dumps(rec).encode()) == "StoreCorruption"


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"format_version": "1"}', b"[" * 100_000])
def test_version_record_that_is_no_object_names_the_file(targets, body):
    # was: AttributeError ('list' has no .get), TypeError (str > int), RecursionError
    assert _check(targets, "version_record", body) == "StoreCorruption"


def _resigned(body: dict) -> bytes:
    from engine.registry.log import commit_checksum, encode_body

    body["checksum"] = commit_checksum(body)
    return encode_body(body).encode()


def test_a_resigned_commit_missing_a_field_names_the_file(targets):
    # was: KeyError 'version' out of the index ("error: 'version'")
    body = json.loads(targets["commit_middle"].valid)
    body["actions"][0].pop(next(k for k in ("version", "run_id", "target", "name")
                                if k in body["actions"][0]))
    assert _check(targets, "commit_middle", _resigned(body)) == "RegistryCorruption"


def test_a_resigned_commit_with_a_non_hex_content_chunk_names_the_file(targets, corpus):
    from engine.registry.log import commit_key

    body = json.loads(corpus.read(commit_key(1)))
    body["actions"][0]["content"]["manifest"]["chunks"][0][0] = "g" * 64
    t = fuzz_corpus.Target("commit_1", b"", lambda d: corpus.read_commit(d, 1),
                           targets["commit"].errors, (commit_key(1),))
    outcome, _, _ = measured(t, _resigned(body))
    assert outcome == "RegistryCorruption"


def test_a_checkpoint_claiming_a_tebibyte_is_refused_before_allocating(targets):
    # was: Arrow allocated the claimed 2**40 bytes (max_memory 1 TiB) before failing
    data = bytearray(targets["registry_checkpoint"].valid)
    at = data.find(b"\x28\xb5\x2f\xfd")  # a zstd frame; its claimed length is before it
    struct.pack_into("<q", data, at - 8, 1 << 40)
    assert _check(targets, "registry_checkpoint", bytes(data)) == "RegistryCorruption"


def test_a_state_snapshot_with_a_trigger_and_a_good_checksum_is_skipped(targets):
    # was: loaded as the index (with its trigger), and a last_seq of 'abc' raised ValueError
    import sqlite3

    from engine.registry.log import STATE_MAGIC

    valid = targets["state_snapshot"].valid
    n = len(STATE_MAGIC)
    (hl,) = struct.unpack("<I", valid[n:n + 4])
    meta = json.loads(valid[n + 4:n + 4 + hl])
    raw = pa.decompress(valid[n + 4 + hl:], meta["raw_size"], codec="zstd", asbytes=True)
    for stmt in ("CREATE TRIGGER t AFTER INSERT ON commits BEGIN DELETE FROM versions; END",
                 "UPDATE meta SET value='abc' WHERE key='last_seq'"):
        db = sqlite3.connect(":memory:")
        db.deserialize(raw)
        db.execute(stmt)
        db.commit()
        new = db.serialize()
        db.close()
        p = pa.compress(new, codec="zstd", asbytes=True)
        h = json.dumps(dict(meta, raw_size=len(new), blake3=blake3.blake3(p).hexdigest())).encode()
        data = STATE_MAGIC + struct.pack("<I", len(h)) + h + p
        with pytest.warns(UserWarning, match="ignoring registry state snapshot"):
            targets["state_snapshot"].read(data)


@pytest.mark.parametrize("offset", [2**63 - 1, 2**63, 2**64 - 1])
def test_a_signed_index_entry_with_a_huge_offset_names_the_pack(targets, offset):
    body = bytearray(targets["pack_index_signed"].valid[:-32])
    struct.pack_into("<Q", body, 16 + 32, offset)  # the first entry's payload offset
    data = bytes(body) + blake3.blake3(bytes(body)).digest()
    assert _check(targets, "pack_index_signed", data).startswith("chunks refused")


def test_a_state_snapshot_of_a_newer_format_is_skipped_not_fatal(targets):
    # found by the soak run: RegistryFormatError out of refresh() for a cache file
    from engine.registry.log import STATE_MAGIC

    valid = targets["state_snapshot"].valid
    n = len(STATE_MAGIC)
    (hl,) = struct.unpack("<I", valid[n:n + 4])
    h = json.dumps(dict(json.loads(valid[n + 4:n + 4 + hl]), format_version=99)).encode()
    data = STATE_MAGIC + struct.pack("<I", len(h)) + h + valid[n + 4 + hl:]
    assert _check(targets, "state_snapshot", data) == "ok, warned"


def test_a_manifest_describing_a_device_is_refused_naming_it(targets):
    t = pa.ipc.open_stream(targets["manifest"].valid).read_all()
    cols = t.to_pydict()
    cols["kind"][0] = "chardev"
    data = fuzz_corpus.mf.to_bytes(pa.table(cols, schema=t.schema))
    assert _check(targets, "manifest", data) == "StoreCorruption"


def test_a_manifest_without_a_column_is_refused_naming_it(targets):
    # was: KeyError 'kind' in checkout
    t = pa.ipc.open_stream(targets["manifest"].valid).read_all().drop_columns(["kind"])
    assert _check(targets, "manifest", fuzz_corpus.mf.to_bytes(t)) == "StoreCorruption"


@pytest.mark.parametrize("change", [{"count": None}, {"m2": -1.0}, {"posinf": 10**6}])
def test_a_profile_with_a_bad_stat_names_the_file(targets, change):
    # were: KeyError 'count'; ValueError "math domain error" out of to_dict (found by the
    # soak run: a negative m2, or more infinities than values, made a negative variance)
    t = pa.ipc.open_file(pa.py_buffer(targets["profile"].valid)).read_all()
    cols = t.to_pydict()
    i = cols["kind"].index("numeric")
    stats = json.loads(cols["stats"][i])
    stats.update(change)
    stats = {k: v for k, v in stats.items() if v is not None}
    cols["stats"][i] = json.dumps(stats)
    sink = pa.BufferOutputStream()
    t2 = pa.table(cols, schema=t.schema)
    with pa.ipc.new_file(sink, t2.schema) as w:
        w.write_table(t2)
    assert _check(targets, "profile", sink.getvalue().to_pybytes()) == "ProfileFormatError"


def _tensor_file(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


@pytest.mark.parametrize("change", ["missing tensor", "float shape", "huge shape"])
def test_a_dist_checkpoint_with_a_bad_header_names_it(targets, change):
    # were: KeyError (a state referring to a tensor the file lacks), TypeError (reshape to
    # [2.0]), OverflowError (a shape past int64)
    valid = targets["dist_checkpoint"].valid
    (hl,) = struct.unpack("<Q", valid[:8])
    header, body = json.loads(valid[8:8 + hl]), valid[8 + hl:]
    name = next(k for k in header if k != "__metadata__")
    if change == "missing tensor":
        header["__metadata__"]["mlops_checkpoint"] = json.dumps(
            {"format_version": 1, "state": {"w": {"__ckpt_ndarray__": "nope"}}})
    elif change == "float shape":
        n = header[name]["shape"]
        header[name]["shape"] = [float(x) for x in n] or [1.0]
    else:
        header[name]["shape"] = [2**64]
    assert _check(targets, "dist_checkpoint", _tensor_file(header, body)) == "CheckpointError"


def test_strategies_make_hostile_files(targets):
    """The mutators change the files (a mutator that returned the input would test nothing)."""
    seen = []

    @settings(max_examples=20, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(d):
        name = d.draw(st.sampled_from(TARGETS))
        seen.append(d.draw(mutators.hostile_file(name, targets[name].valid)) !=
                    targets[name].valid)

    run()
    assert sum(seen) >= 15


@pytest.mark.parametrize("entry", [
    {"dtype": "F32", "shape": [2**64], "data_offsets": [0, 4]},
    {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]},
    {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]},
    {"dtype": "F32", "shape": [1], "data_offsets": [0, "4"]},
    {"dtype": "F32", "shape": [1], "data_offsets": [0]},
    {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]},
    {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 4]},
    [1, 2],
])
def test_a_hostile_safetensors_header_is_a_registry_corruption(entry):
    import json as _json
    import struct as _struct

    from engine.registry.errors import RegistryCorruption
    from engine.registry.tensors import loads

    header = _json.dumps({"w": entry}).encode()
    data = _struct.pack("<Q", len(header)) + header + b"\0" * 4
    with pytest.raises(RegistryCorruption, match="tensor 'w' has a bad dtype, shape or offsets"):
        loads(data, framework="np", where="clf:v1")
