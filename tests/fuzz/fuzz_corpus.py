"""Valid files of every on-disk format, made by the real writers, and each format's reader.

Shared by the Hypothesis tests (``test_fuzz_parsers.py``) and the atheris harness
(``atheris_parsers.py``). :func:`build` makes, in a temporary directory, a store holding
two dataset versions (a file tree with a subdirectory and a symlink), a registry of
nine commits with a log checkpoint and a state snapshot every four commits, a
``engine.dist`` checkpoint and a monitor profile. Each :class:`Target` then takes the
bytes of one kind of file, puts them where that file lives (the store's own path,
so errors name it as they would in use) and calls the public reading API on them.

The contract every target checks (:meth:`Target.check`): the reader either succeeds or
raises its layer's documented error class, whose message names the file. Anything else
(``KeyError``, ``TypeError``, ``ValueError`` from ``bytes.fromhex``, ``MemoryError``,
``struct.error``, ``OverflowError``, ``RecursionError``, ...) is a bug in the reader.
"""

from __future__ import annotations

import os
import shutil
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine import config
from engine.data import manifest as mf
from engine.data.ingest import snapshot
from engine.data.restore import checkout_manifest
from engine.data.version import read_version
from engine.dist.checkpoint import CheckpointError, check_state, dumps, loads
from engine.monitor.profile import Profile, profile
from engine.monitor.profile_base import ProfileFormatError
from engine.registry import Registry
from engine.registry import index as index_mod
from engine.registry import log as log_mod
from engine.registry.errors import RegistryError
from engine.registry.log import CommitLog, checkpoint_key, commit_key, decode, state_key
from engine.store import Store, StoreError
from engine.store.pack import decode_index, pack_key

#: errors of the store and data layers (StoreCorruption, StoreFormatError, UnknownVersion...)
STORE_ERRORS = (StoreError,)


class Finding(AssertionError):
    """A reader did something other than succeed or raise its documented error."""


@dataclass
class Target:
    """One on-disk format: a valid file of it and how to read such a file."""

    name: str
    valid: bytes
    read: Callable[[bytes], object]
    errors: tuple  # the documented error classes of this reader
    names: tuple  # an error's message must hold one of these (the file, its version)
    extra: dict = field(default_factory=dict)

    def check(self, data: bytes) -> str:
        """Read ``data``; returns ``"ok"`` or the documented error's class name, and raises
        :class:`Finding` for anything else (or for an error that does not name the file)."""
        try:
            with warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always")
                said = self.read(data)
        except self.errors as exc:
            msg = str(exc)
            if not any(n in msg for n in self.names):
                raise Finding(f"{self.name}: {type(exc).__name__} does not name the file "
                              f"(expected one of {self.names}): {msg[:300]}") from exc
            return type(exc).__name__
        except Finding:
            raise
        except BaseException as exc:  # noqa: BLE001 - exactly what the fuzzing looks for
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise Finding(f"{self.name}: {type(exc).__name__} escaped the reader: "
                          f"{str(exc)[:300]}") from exc
        if isinstance(said, str):  # a reader that reports what it met
            return said
        # a reader that skips what it cannot use (a state snapshot) says so in a warning
        return "ok, warned" if any("ignoring" in str(w.message) for w in warned) else "ok"


def _tree(root: str) -> None:
    os.makedirs(os.path.join(root, "sub", "deeper"))
    rng = np.random.default_rng(7)
    with open(os.path.join(root, "a.bin"), "wb") as f:
        f.write(rng.bytes(20_000))
    with open(os.path.join(root, "sub", "b.txt"), "w") as f:
        f.write("hello\n" * 50)
    with open(os.path.join(root, "sub", "deeper", "c.txt"), "w") as f:
        f.write("c")
    os.chmod(os.path.join(root, "sub", "b.txt"), 0o640)
    os.symlink("a.bin", os.path.join(root, "link"))


def _profile_bytes() -> bytes:
    rng = np.random.default_rng(3)
    p = profile({"x": rng.normal(size=300), "c": ["red", "green", "blue"] * 100,
                 "t": [f"some free text {i}" for i in range(300)],
                 "odd": [{"a": i} for i in range(300)]},
                sample_size=50, bins=5, trigram_buckets=16, top_k=5)
    return p.to_bytes()


def _checkpoint_bytes() -> bytes:
    import random

    import torch

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    random.seed(1)
    np.random.seed(1)  # noqa: NPY002 - the global generator is what a checkpoint captures
    from engine.dist.checkpoint import capture_rng

    state = {"step": 5, "world_size": 1, "model": model.state_dict(),
             "optimizer": opt.state_dict(), "scheduler": None,
             "loader": {"epoch": 1, "position": (3, 4), "order": np.arange(6)},
             "rng": [capture_rng()], "extra": {1: "int key", (1, "a"): np.float32(2.5)}}
    return dumps(state)


class Corpus:
    """The files of :func:`build` and a :class:`Target` per format."""

    def __init__(self, root: str):
        self.root = root
        self.store = os.path.join(root, "store")
        self.scratch = os.path.join(root, "scratch")
        os.makedirs(self.scratch, exist_ok=True)
        self._n = 0
        st = Store(self.store)
        # the pack whose index lists the most chunks
        self.pack_id = max(st.pack_ids(), key=lambda p: len(st.read_index(p)))
        self.idx_key = pack_key(self.pack_id, "idx")
        self.record_key = st.record_key("dataset", "ds", 1)
        v = read_version(st, "ds", 1)
        self.manifest = st.get_blob(v.record["manifest"])
        st.close()
        log = CommitLog(Store(self.store, create=False).fs)
        self.commits = log.last_file()
        cps, states = log.compactions()
        self.checkpoint_last, self.state_seq = cps[-1], states[-1]
        self.checkpoint = os.path.join(root, "checkpoint.safetensors")
        self.profile = os.path.join(root, "ref.profile")

    # ------------------------------------------------------------------ helpers
    def path(self, key: str) -> str:
        return os.path.join(self.store, *key.split("/"))

    def read(self, key: str) -> bytes:
        with open(self.path(key), "rb") as f:
            return f.read()

    def _swap(self, key: str, data: bytes):
        """A context: ``key`` holds ``data`` inside it, its own bytes again after."""
        corpus = self

        class Swap:
            def __enter__(self):
                self.old = corpus.read(key)
                with open(corpus.path(key), "wb") as f:
                    f.write(data)

            def __exit__(self, *exc):
                with open(corpus.path(key), "wb") as f:
                    f.write(self.old)

        return Swap()

    def fresh_dir(self) -> str:
        self._n += 1
        d = os.path.join(self.scratch, f"d{self._n}")
        shutil.rmtree(d, ignore_errors=True)
        return d

    # ------------------------------------------------------------------ readers
    def read_index(self, data: bytes) -> None:
        decode_index(data, self.idx_key)

    def read_index_in_store(self, data: bytes) -> None:
        """The index through the store: every chunk the valid index lists is read back."""
        ids = [bytes(e["id"]) for e in decode_index(self.read(self.idx_key), self.idx_key)]
        with self._swap(self.idx_key, data):
            st = Store(self.store, create=False)
            refused = set()
            try:
                for cid in ids:
                    try:
                        st.read_chunk(cid)
                    except StoreError as exc:
                        if self.pack_id not in str(exc) and cid.hex() not in str(exc):
                            raise Finding(f"pack index: an error names neither the pack nor "
                                          f"the chunk: {exc}") from exc
                        refused.add(type(exc).__name__)
            finally:
                st.close()
        return f"chunks refused: {', '.join(sorted(refused))}" if refused else "ok"

    def read_manifest(self, data: bytes) -> None:
        """A manifest, then a checkout of it: nothing may be written outside dest, and no
        file there may be other than a regular file, a directory or a symlink."""
        man = mf.from_bytes(data, "manifest of ds:v1")
        mf.version_id(man)
        dest = self.fresh_dir()
        before = sorted(os.listdir(self.scratch))
        st = Store(self.store, create=False)
        try:
            checkout_manifest(st, man, "ds:v1", dest)
        finally:
            st.close()
            after = sorted(os.listdir(self.scratch))
            if [n for n in after if n not in before and n != os.path.basename(dest)]:
                raise Finding(f"checkout wrote outside dest: {after}")
            for dp, dirs, files in os.walk(dest):
                for n in dirs + files:
                    mode = os.lstat(os.path.join(dp, n)).st_mode
                    if not (os.path.isdir(os.path.join(dp, n)) or (mode & 0o170000) in
                            (0o100000, 0o120000)):
                        raise Finding(f"checkout made {os.path.join(dp, n)} of mode {oct(mode)}")
                    if (mode & 0o170000) == 0o100000 and mode & 0o6000:
                        raise Finding(f"checkout made a set-user/group-ID file {n}")

    def read_record(self, data: bytes) -> None:
        with self._swap(self.record_key, data):
            st = Store(self.store, create=False)
            try:
                v = read_version(st, "ds", 1)
                v.to_dict()
                mf.version_id(v.manifest())
            finally:
                st.close()

    def _registry_answers(self, reg: Registry) -> None:
        for art in reg.artifacts():
            name = art["name"] if isinstance(art, dict) else art
            for mv in reg.versions(name):
                mv.to_dict()
        reg.history()
        reg.runs()

    def read_commit(self, data: bytes, seq: int) -> None:
        key = commit_key(seq)
        # CommitLog.read gives a commit that fails to parse two more tries, 50 and 100 ms
        # later (a writer without hard links may still be writing it): not here
        clock, log_mod.time = log_mod.time, types.SimpleNamespace(sleep=lambda s: None)
        try:
            with self._swap(key, data):
                reg = Registry(self.store, create=False, index_path=":memory:")
                try:
                    reg.refresh()
                    self._registry_answers(reg)
                    reg.read_bytes("blob:v1")
                finally:
                    reg.close()
        finally:
            log_mod.time = clock

    def read_checkpoint(self, data: bytes) -> None:
        key = checkpoint_key(self.checkpoint_last)
        with self._swap(key, data):
            log = CommitLog(Store(self.store, create=False).fs)
            where = f"registry checkpoint {log.fs.path(key)}, commit"
            first, rows = log.read_checkpoint(self.checkpoint_last)
            for s, c in rows:
                decode(c, s, f"{where} {s}")

    def read_state(self, data: bytes) -> None:
        key = state_key(self.state_seq)
        gap = index_mod.STATE_MIN_GAP
        index_mod.STATE_MIN_GAP = 0
        try:
            with self._swap(key, data):
                CommitLog(Store(self.store, create=False).fs).read_state(self.state_seq)
        except RegistryError:
            pass  # what the index does with it: skip it with a warning (checked below)
        with self._swap(key, data):
            reg = Registry(self.store, create=False, index_path=":memory:")
            try:
                reg.refresh()
                self._registry_answers(reg)
            finally:
                reg.close()
                index_mod.STATE_MIN_GAP = gap

    def read_dist_checkpoint(self, data: bytes) -> None:
        check_state(loads(data, "ckpt:v1"), "ckpt:v1")

    def read_profile(self, data: bytes) -> None:
        with open(self.profile, "wb") as f:
            f.write(data)
        p = Profile.load(self.profile)
        p.to_dict()

    # ------------------------------------------------------------------ targets
    def targets(self) -> dict[str, Target]:
        store_names = (self.idx_key, self.pack_id)
        reg_errors = (RegistryError, *STORE_ERRORS)
        last = self.commits
        out = {
            "pack_index": Target("pack_index", self.read(self.idx_key), self.read_index,
                                 STORE_ERRORS, store_names),
            "pack_index_signed": Target("pack_index_signed", self.read(self.idx_key),
                                        self.read_index_in_store, STORE_ERRORS, store_names),
            "manifest": Target("manifest", self.manifest, self.read_manifest,
                               (*STORE_ERRORS, ValueError), ("ds:v1", "refusing", "chunk")),
            "version_record": Target("version_record", self.read(self.record_key),
                                     self.read_record, STORE_ERRORS,
                                     (self.record_key, "ds:v1", "chunk", "blob")),
            "commit": Target("commit", self.read(commit_key(last)),
                             lambda d: self.read_commit(d, last), reg_errors,
                             (commit_key(last), f"registry commit {last}", "blob:v1", "chunk"),
                             {"seq": last}),
            "commit_middle": Target("commit_middle", self.read(commit_key(last - 2)),
                                    lambda d: self.read_commit(d, last - 2), reg_errors,
                                    (commit_key(last - 2), f"registry commit {last - 2}",
                                     f"registry commit {last - 1}", "blob:v1", "chunk"),
                                    {"seq": last - 2}),
            "registry_checkpoint": Target("registry_checkpoint",
                                          self.read(checkpoint_key(self.checkpoint_last)),
                                          self.read_checkpoint, reg_errors,
                                          (checkpoint_key(self.checkpoint_last),)),
            "state_snapshot": Target("state_snapshot", self.read(state_key(self.state_seq)),
                                     self.read_state, reg_errors,
                                     (state_key(self.state_seq),
                                      f"registry commit {self.state_seq + 1}")),
            "dist_checkpoint": Target("dist_checkpoint", _read(self.checkpoint),
                                      self.read_dist_checkpoint, (CheckpointError,),
                                      ("ckpt:v1",)),
            "profile": Target("profile", _read(self.profile), self.read_profile,
                              (ProfileFormatError,), (self.profile,)),
        }
        return out


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def build(root: str) -> Corpus:
    """Make the store, registry, checkpoint and profile under ``root``; their Corpus."""
    os.makedirs(root, exist_ok=True)
    tree = os.path.join(root, "tree")
    _tree(tree)
    store = os.path.join(root, "store")
    snapshot(tree, "ds", store=store, progress=False)
    with open(os.path.join(tree, "sub", "deeper", "c.txt"), "w") as f:
        f.write("changed")
    snapshot(tree, "ds", store=store, progress=False)
    saved = config.REGISTRY_CHECKPOINT_EVERY, config.REGISTRY_STATE_EVERY
    config.REGISTRY_CHECKPOINT_EVERY = config.REGISTRY_STATE_EVERY = 4
    try:
        reg = Registry(store, index_path=":memory:")
        reg.register("blob", b"payload " * 100, metrics={"loss": 0.5}, params={"lr": 0.1},
                     tags={"team": "a"})                                           # 1
        reg.register("blob", b"payload 2", metrics={"loss": 0.25})                 # 2
        reg.promote("blob:v2", "prod", gate="loss<=")                              # 3
        with reg.start_run("train", params={"epochs": 2}, inputs=["blob:v1"]) as run:  # 4
            run.log_metric("loss", 0.1)
            run.log_model("model", {"w": np.arange(6, dtype=np.float32)})          # 5
        reg.tag("blob:v1", note="first")                                           # 7
        reg.register("tree", tree)                                                 # 8
        reg.tag("run:" + run.id, done="yes")                                       # 9
        reg.close()
    finally:
        config.REGISTRY_CHECKPOINT_EVERY, config.REGISTRY_STATE_EVERY = saved
    with open(os.path.join(root, "checkpoint.safetensors"), "wb") as f:
        f.write(_checkpoint_bytes())
    with open(os.path.join(root, "ref.profile"), "wb") as f:
        f.write(_profile_bytes())
    return Corpus(root)

