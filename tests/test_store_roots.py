"""The store's gc and verify learn what is live from root providers, never by importing
the layers above (engine.store.roots): a data-only process keeps registry content, and
gc refuses to run when a provider recorded in the store cannot be loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from engine import data
from engine.registry import Registry
from engine.store import RootProviderError, Store, collect, register_root_provider, verify_store
from engine.store import roots as store_roots
from engine.store.roots import record_provider, recorded_providers

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def _env(tmp_path) -> dict:
    return dict(os.environ, MLOPS_CACHE_DIR=str(tmp_path / "cache"))


def _files(root) -> dict[str, int]:
    """Every file of a store (path -> size), roots/ records aside."""
    out = {}
    for d, _dirs, fs in os.walk(root):
        for f in fs:
            p = os.path.relpath(os.path.join(d, f), root)
            if not p.startswith("roots"):
                out[p] = os.path.getsize(os.path.join(d, f))
    return out


@pytest.fixture
def mixed(tmp_path):
    """A store holding a dataset (two versions) and a registry model; the model's bytes are
    referenced by nothing the dataset layer knows about."""
    store = str(tmp_path / "store")
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for text in (b"first", b"second"):
        (src / "a.bin").write_bytes(text + rng.integers(0, 256, 200_000, dtype=np.uint8).tobytes())
        data.snapshot(src, name="ds", store=store)
    weights = rng.integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    with Registry(store, index_path=str(tmp_path / "index.sqlite")) as reg:
        reg.register("clf", weights)
    return store, weights


DATA_ONLY = """
import json, sys
import engine.data
before = sorted(m for m in sys.modules if m.startswith("engine.registry"))
rep = engine.data.gc(store=sys.argv[1], keep_last=1, grace=0)
print(json.dumps({"before": before, "deleted": rep.versions_deleted,
                  "packs": rep.packs_deleted + rep.packs_repacked,
                  "provider_loaded": "engine.registry.roots" in sys.modules}))
"""

CLI_DATA_GC = """
import json, sys
from engine.cli import main
before = sorted(m for m in sys.modules if m.startswith("engine.registry"))
rc = main(["data", "gc", "--store", sys.argv[1], "--keep-last", "1", "--grace", "0", "--json"])
print(json.dumps({"before": before, "rc": rc,
                  "provider_loaded": "engine.registry.roots" in sys.modules}), file=sys.stderr)
"""


def _pull_equal(store, tmp_path, weights) -> None:
    with Registry(store, index_path=str(tmp_path / "index2.sqlite")) as reg:
        assert reg.read_bytes("clf:v1") == weights
        assert reg.verify()["ok"]
    assert data.verify(store=store).ok


def test_data_gc_in_a_data_only_process_keeps_registry_content(mixed, tmp_path):
    store, weights = mixed
    r = subprocess.run([sys.executable, "-c", DATA_ONLY, store], capture_output=True, text=True,
                       env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["before"] == [], "the harness imported the registry itself"
    assert out["deleted"] == ["ds:v1"] and out["packs"] >= 1  # it did collect
    assert out["provider_loaded"], "gc did not load the registry's provider (entry point)"
    _pull_equal(store, tmp_path, weights)


def test_mlops_data_gc_in_a_fresh_interpreter_keeps_registry_content(mixed, tmp_path):
    store, weights = mixed
    r = subprocess.run([sys.executable, "-c", CLI_DATA_GC, store], capture_output=True,
                       text=True, env=_env(tmp_path))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stderr.strip().splitlines()[-1])
    assert info["before"] == [], "importing the CLI imported engine.registry"
    assert info["rc"] == 0 and info["provider_loaded"]
    assert json.loads(r.stdout)["versions_deleted"] == ["ds:v1"]
    _pull_equal(store, tmp_path, weights)


def test_providers_are_recorded_in_the_store(mixed):
    store, _ = mixed
    found = recorded_providers(Store(store, create=False))
    rec = found["registry"]
    assert not rec.get("implied"), "the registry did not record itself before writing"
    assert rec["entry_point"] == "engine.registry.roots:live_roots"
    assert rec["group"] == "mlops_engine.roots" and rec["distribution"] == "mlops-engine"
    assert rec["format_version"] == 1
    assert "data" in found  # recorded, or implied by datasets/ (stores before records)


def test_gc_refuses_when_a_recorded_provider_cannot_be_loaded(mixed, tmp_path, monkeypatch):
    store, weights = mixed
    st = Store(store, create=False)
    record_provider(st, "ghost", entry_point="ghost_pkg.roots:live_roots",
                    distribution="ghost-pkg")
    before = _files(store)
    with pytest.raises(RootProviderError, match="'ghost'.*ghost-pkg.*mlops_engine.roots") as e:
        data.gc(store=store, keep_last=1, grace=0)
    assert "nothing was deleted" in str(e.value)
    with pytest.raises(RootProviderError, match="ghost"):
        collect(st, grace=0)
    with Registry(store, index_path=str(tmp_path / "i.sqlite")) as reg:
        with pytest.raises(RootProviderError, match="ghost"):
            reg.gc(keep_last=1, grace=0)
    assert _files(store) == before  # not one version record, pack or temporary removed

    from engine.cli import main

    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["data", "gc", "--store", store, "--grace", "0"]) != 0
    assert _files(store) == before

    # verify goes on, and says what it could not ask
    rep = data.verify(store=store)
    assert [p["provider"] for p in rep.problems if p["problem"] == "root provider unavailable"] \
        == ["ghost"]

    # once the provider can be loaded (here: registered at run time), gc runs
    kept: list[bytes] = []
    monkeypatch.setitem(store_roots._REGISTERED, "ghost", lambda s: [("ghost:1", kept)])
    assert data.gc(store=store, keep_last=1, grace=0).versions_deleted == ["ds:v1"]
    _pull_equal(store, tmp_path, weights)


def test_a_runtime_provider_keeps_its_chunks(tmp_path, monkeypatch):
    """A third-party layer's chunks survive gc exactly as long as its provider names them."""
    st = Store(str(tmp_path / "s"))
    w = st.writer()
    blob = st.put_blob(b"plugin state " * 5000, w)
    w.close()
    st.absorb(w)
    ids = [bytes.fromhex(c) for c, _ in blob["chunks"]]
    live = {"on": True}
    monkeypatch.setitem(store_roots._REGISTERED, "plugin", None)  # restored after the test
    register_root_provider("plugin", lambda s: [("plugin:state", ids)] if live["on"] else [])
    record_provider(st, "plugin", entry_point="plugin.roots:live", distribution="plugin")
    assert collect(st, grace=0).packs_deleted == 0
    assert st.get_blob(blob) == b"plugin state " * 5000
    chk = verify_store(st)
    assert chk.problems == [] and chk.chunks_checked == len(ids)
    live["on"] = False
    assert collect(st, grace=0).packs_deleted == 1


def test_old_stores_without_records_imply_the_builtin_providers(tmp_path):
    """The golden stores were written before roots/ existed: gc still keeps registry content."""
    store = str(tmp_path / "reg")
    shutil.copytree(os.path.join(GOLDEN, "registry_v1"), store)
    assert not os.path.exists(os.path.join(store, "roots"))
    st = Store(store, create=False)
    found = recorded_providers(st)
    assert found["registry"]["implied"]
    with Registry(store, index_path=str(tmp_path / "i.sqlite")) as reg:
        want = {mv.ref: reg.read_bytes(mv) for mv in reg.search() if mv.files == 1}
    data.gc(store=store, grace=0)
    with Registry(store, index_path=str(tmp_path / "i2.sqlite")) as reg:
        assert {ref: reg.read_bytes(ref) for ref in want} == want and want
        assert reg.verify()["ok"]
    assert not os.path.exists(os.path.join(store, "roots"))  # gc adds no record


def test_provider_names_are_checked():
    with pytest.raises(ValueError, match="provider name"):
        register_root_provider("not a name", lambda s: [])
    with pytest.raises(TypeError, match="callable"):
        register_root_provider("fine", "not callable")
