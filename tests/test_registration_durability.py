"""What one small registration syncs, in which order, and what a kill leaves behind.

A registration of a 1 MiB version makes five fsync/fdatasync calls (``_publish`` in
engine/store/pack.py and ``create_exclusive`` in engine/store/fs.py say why each):

1. the pack file (its bytes, under its temporary name),
2. the pack's index (its bytes, under its temporary name),
3. the ``packs/xx/`` directory, after both renames (the pack is now published),
4. the commit file (its bytes, before it has a name),
5. the commit log's directory, after the link (the commit is now made).

Plus one fsync of ``packs/`` when the pack's ``packs/xx/`` directory is new. The
order is what the guarantees need: every byte a commit names is durable before the
commit's name exists, and every name (index, commit) appears only after its bytes
are durable. The SQLite query index is a host-local cache and is not counted (these
tests keep it in memory).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from engine.registry import Registry
from engine.registry.log import LOG_DIR
from engine.store import Store
from engine.store import fs as fsmod
from engine.store.fs import LocalFS

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name fds")

MiB = 1 << 20


def _fd_path(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


class Trace:
    """Records syncs and name changes (any thread) while patched into ``os``."""

    def __init__(self, monkeypatch):
        self.events: list[tuple[str, str]] = []
        for name in ("fsync", "fdatasync"):
            real = getattr(os, name, None)
            if real is not None:
                monkeypatch.setattr(os, name, self._sync(name, real))
        for name in ("rename", "replace", "link"):
            monkeypatch.setattr(os, name, self._name_change(name, getattr(os, name)))

    def _sync(self, name, real):
        def call(fd):
            self.events.append((name, _fd_path(fd)))
            return real(fd)
        return call

    def _name_change(self, name, real):
        def call(src, dst, *args, **kw):
            d = kw.get("dst_dir_fd")
            self.events.append((name, os.path.join(_fd_path(d), dst) if d is not None else os.fspath(dst)))
            return real(src, dst, *args, **kw)
        return call

    def syncs(self) -> list[str]:
        return [p for op, p in self.events if op in ("fsync", "fdatasync")]

    def index(self, test) -> int:
        """Position of the first event for which ``test(op, path)`` holds."""
        for i, (op, p) in enumerate(self.events):
            if test(op, p):
                return i
        raise AssertionError(f"no such event in {self.events}")


def _random_file(tmp_path, seed: int, size: int = MiB) -> str:
    p = tmp_path / f"model-{seed}.bin"
    p.write_bytes(np.random.default_rng(seed).bytes(size))
    return str(p)


def _all_pack_dirs(root) -> None:
    """Create every ``packs/xx/`` directory, as a store that has had a few thousand packs has."""
    for i in range(256):
        os.makedirs(os.path.join(root, "packs", f"{i:02x}"), exist_ok=True)


@pytest.fixture
def reg(tmp_path):
    r = Registry(str(tmp_path / "store"), index_path=":memory:")
    r.register("m", _random_file(tmp_path, 0))  # the store, the log directories, roots records
    _all_pack_dirs(r.store.root)
    yield r
    r.close()


@pytest.mark.parametrize("what", ["file", "bytes"])
def test_a_small_registration_makes_five_syncs(reg, tmp_path, monkeypatch, what):
    obj = _random_file(tmp_path, 1) if what == "file" else np.random.default_rng(1).bytes(MiB)
    trace = Trace(monkeypatch)
    mv = reg.register("m", obj, kind="model")
    monkeypatch.undo()
    assert mv.version == 2
    root = reg.store.root
    syncs = trace.syncs()
    assert len(syncs) == 5, syncs
    pack_dir = os.path.dirname([p for op, p in trace.events if op in ("rename", "replace") and p.endswith(".pack")][0])
    log_dir = os.path.join(root, *LOG_DIR.split("/"), "0000000000")
    assert syncs[0].startswith(os.path.join(root, "tmp") + os.sep) and syncs[0].endswith(".pack.tmp")
    assert syncs[1].startswith(pack_dir + os.sep) and ".idx." in syncs[1]
    assert syncs[2] == pack_dir
    assert os.path.dirname(syncs[3]) == log_dir  # the commit's bytes (a temporary, maybe unnamed)
    assert syncs[4] == log_dir
    assert reg.read_bytes(mv.ref) == (obj if isinstance(obj, bytes) else open(obj, "rb").read())


def test_the_order_of_syncs_and_names(reg, tmp_path, monkeypatch):
    """Bytes durable before their name; every name durable before the commit that needs it."""
    trace = Trace(monkeypatch)
    reg.register("m", _random_file(tmp_path, 2), kind="model")
    monkeypatch.undo()
    ev = trace.index
    pack_synced = ev(lambda op, p: op in ("fsync", "fdatasync") and p.endswith(".pack.tmp"))
    pack_named = ev(lambda op, p: op in ("rename", "replace") and p.endswith(".pack"))
    idx_synced = ev(lambda op, p: op in ("fsync", "fdatasync") and ".idx." in p)
    idx_named = ev(lambda op, p: op == "replace" and p.endswith(".idx"))
    pack_dir = os.path.dirname(trace.events[pack_named][1])
    dir_synced = ev(lambda op, p: op == "fsync" and p == pack_dir)
    commit_named = ev(lambda op, p: op == "link" and p.endswith(".json"))
    log_dir = os.path.dirname(trace.events[commit_named][1])
    commit_synced = ev(lambda op, p: op in ("fsync", "fdatasync") and os.path.dirname(p) == log_dir)
    log_synced = ev(lambda op, p: op == "fsync" and p == log_dir)
    assert pack_synced < pack_named < idx_named  # a pack is published by its index, after it
    assert idx_synced < idx_named
    assert idx_named < dir_synced < commit_named  # both names durable before the commit
    assert commit_synced < commit_named < log_synced


def test_a_new_pack_directory_is_made_durable_in_its_parent(tmp_path, monkeypatch):
    with Registry(str(tmp_path / "store"), index_path=":memory:") as reg:
        reg.register("m", b"warm up")
        packs = os.path.join(reg.store.root, "packs")
        before = set(os.listdir(packs))
        trace = Trace(monkeypatch)
        reg.register("m", _random_file(tmp_path, 3), kind="model")
        monkeypatch.undo()
        new_dirs = set(os.listdir(packs)) - before
        syncs = trace.syncs()
        assert len(syncs) == 5 + len(new_dirs), syncs
        if new_dirs:  # nearly always: 2 of 256 directories exist
            made = trace.index(lambda op, p: op == "fsync" and p == packs)
            named = trace.index(lambda op, p: op in ("rename", "replace") and p.endswith(".pack"))
            assert made < named


def test_without_o_tmpfile_the_named_temporary_makes_the_same_syncs(reg, tmp_path, monkeypatch):
    monkeypatch.setattr(reg.store.fs, "_unnamed", False)
    trace = Trace(monkeypatch)
    mv = reg.register("m", _random_file(tmp_path, 4), kind="model")
    monkeypatch.undo()
    assert len(trace.syncs()) == 5
    # the commit is linked into place (the write lease, renamed into locks/ without a
    # sync, publishes nothing)
    assert [op for op, p in trace.events if p.endswith(".json")
            and os.sep + "locks" + os.sep not in p] == ["link"]
    log_dir = os.path.dirname([p for op, p in trace.events if op == "link"][0])
    assert [f for f in os.listdir(log_dir) if f.endswith(".tmp")] == []
    assert reg.read_bytes(mv.ref) == open(_random_file(tmp_path, 4), "rb").read()


def test_put_if_absent_through_an_unnamed_file(tmp_path, monkeypatch):
    fs = LocalFS(str(tmp_path / "s"))
    assert fs.create_exclusive("a/b/c.json", b"one")
    assert not fs.create_exclusive("a/b/c.json", b"two")
    assert fs.read_bytes("a/b/c.json") == b"one"
    assert os.listdir(tmp_path / "s" / "a" / "b") == ["c.json"]  # no temporary, named or not
    if fsmod._O_TMPFILE:
        assert fs._unnamed

    # no /proc to link through (a container without it): the named temporary, from then on
    real_link = os.link

    def no_proc(src, dst, *args, **kw):
        if str(src).startswith("/proc/"):
            raise FileNotFoundError(src)
        return real_link(src, dst, *args, **kw)

    monkeypatch.setattr(os, "link", no_proc)
    assert fs.create_exclusive("a/b/d.json", b"three")
    assert not fs._unnamed
    assert not fs.create_exclusive("a/b/d.json", b"four")
    assert fs.read_bytes("a/b/d.json") == b"three"
    assert sorted(os.listdir(tmp_path / "s" / "a" / "b")) == ["c.json", "d.json"]


def test_makedirs_durable_fsyncs_the_parent_of_every_new_directory(tmp_path, monkeypatch):
    fs = LocalFS(str(tmp_path / "s"))
    fs.makedirs("")
    trace = Trace(monkeypatch)
    fs.makedirs("x/y/z", durable=True)
    fs.makedirs("x/y/z", durable=True)  # exists: nothing to sync
    root = str(tmp_path / "s")
    assert trace.syncs() == [root, os.path.join(root, "x"), os.path.join(root, "x", "y")]


# ----------------------------------------------------------------------------- kills

KILL_CHILD = textwrap.dedent("""
    import os, sys
    import numpy as np
    os.environ["MLOPS_CACHE_DIR"] = sys.argv[2]
    from engine.registry import Registry
    reg = Registry(sys.argv[1], create=False)
    tag = sys.argv[3]
    i = 0
    while True:
        data = np.random.default_rng([int(tag), i]).bytes(256 << 10)
        reg.register("k", data, message=f"{tag}-{i}")
        if i == 0:
            print("committing", flush=True)
        i += 1
""")


def test_sigkill_mid_registration_leaves_a_readable_store(tmp_path):
    """Killed anywhere in a registration (chunking, pack publish, commit): the store and
    the log stay readable, and every committed version reads back its exact bytes."""
    store = str(tmp_path / "store")
    Store(store).close()
    script = tmp_path / "child.py"
    script.write_text(KILL_CHILD)
    rng = random.Random(20261127)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for rnd in range(5):
        p = subprocess.Popen([sys.executable, str(script), store, str(tmp_path / "cache"), str(rnd)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert p.stdout.readline().strip() == "committing", p.stderr.read()
        time.sleep(rng.uniform(0.0, 0.3))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        p.stdout.close()
        p.stderr.close()

        assert len(Store(store).index) > 0  # every published index decodes
        with Registry(store, create=False, index_path=":memory:") as reg:
            check = reg.verify()
            assert check["ok"], check["problems"]
            for mv in reg.versions("k"):
                tag, i = map(int, mv.message.split("-"))
                assert reg.read_bytes(mv.ref) == np.random.default_rng([tag, i]).bytes(256 << 10)
