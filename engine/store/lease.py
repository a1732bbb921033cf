"""Leases: writers and ``gc`` of one store never overlap.

A snapshot or a registration deduplicates against chunks that are already stored,
and names them in a version it commits at the end. ``gc`` deletes chunks that no
committed version names. Without coordination, a chunk that ``gc`` found dead could
be deduplicated against in the same moment, and the new version would name a chunk
that is gone. Two kinds of lock files in ``locks/`` prevent that:

* a **write lease** ``locks/write-<token>.json``, held by every snapshot and
  registration from before its first look at the chunk index until its version is
  committed (:func:`write_lease`);
* the **gc lock** ``locks/gc-<token>.json``, held by ``gc`` (and ``purge``) while
  it decides what is dead and deletes it (:func:`gc_lock`).

Each side first creates its own file, then looks for the other kind. So of a
writer and a ``gc`` that start together at least one sees the other: ``gc`` backs
off (it waits for the writers, or refuses having deleted nothing), a writer waits
until the gc lock is gone. Before it deletes anything, ``gc`` also writes a new
token to ``locks/gc.epoch``; a writer compares it with the token its process read
when it loaded the chunk index, and reloads the index when they differ, so that a
long-lived process (a training job registering a checkpoint every epoch) never
deduplicates against a pack that a ``gc`` in another process deleted.

No fsync is added to the write path: lock files only need to be seen by the other
processes while their writer is alive, which the file system's namespace gives
without syncing; after a crash, a lease is gone with its holder. A lease whose
holder died is *stale*: its holder's process is gone (same host), or its
heartbeat (the file's modification time, refreshed every ``HEARTBEAT`` seconds by
a daemon thread) is older than ``stale_after()`` seconds (``$MLOPS_LEASE_STALE``,
default 120). Stale lock files are ignored and removed by whoever finds them.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
import weakref
from contextlib import contextmanager

from .errors import StoreBusy
from .fs import _unlink_quiet

LOCK_DIR = "locks"
EPOCH_KEY = f"{LOCK_DIR}/gc.epoch"
HEARTBEAT = 20.0  # seconds between refreshes of a held lock file's modification time
DEFAULT_STALE = 120.0


def stale_after() -> float:
    """Seconds without a heartbeat after which a lock file counts as abandoned."""
    raw = os.environ.get("MLOPS_LEASE_STALE", "")
    try:
        v = float(raw) if raw else DEFAULT_STALE
    except ValueError:
        raise ValueError(f"MLOPS_LEASE_STALE must be a number of seconds, got {raw!r}") from None
    return max(v, 0.1)


_HOST = socket.gethostname()


class _Held:
    """A lock file this process holds: refreshed by the heartbeat thread until released."""

    def __init__(self, store, key: str):
        self.store, self.key = store, key


_held: set[_Held] = set()
_held_lock = threading.Lock()
_beat: threading.Thread | None = None
#: store -> kind -> [holders in this process, _Held or None, lock serializing acquisition]
_holds: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_holds_lock = threading.Lock()
#: store -> the gc epoch its chunk index is known to be current with
_epochs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _heartbeat() -> None:
    while True:
        time.sleep(HEARTBEAT)
        with _held_lock:
            held = list(_held)
        for h in held:
            try:
                _touch(h.store, h.key)
            except OSError:
                pass


def _touch(store, key: str) -> None:
    if store.fs.local:
        os.utime(store.fs.path(key))
    else:  # object stores: rewrite the object to renew its modification time
        store.fs.write_atomic(key, store.fs.read_bytes(key), fsync=False)


def _acquire(store, kind: str, what: str) -> _Held:
    global _beat
    token = uuid.uuid4().hex
    key = f"{LOCK_DIR}/{kind}-{token}.json"
    body = {"kind": kind, "what": what, "host": _HOST, "pid": os.getpid(),
            "started": time.time()}
    raw = json.dumps(body).encode()
    if store.fs.local:
        # written under a dot-temporary name, then renamed: a full disk or a kill never
        # leaves an empty lock file that would count as live (gc removes dot-temporaries)
        path = store.fs.path(key)
        tmp = store.fs.path(f"{LOCK_DIR}/.{kind}-{token}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileNotFoundError:
            store.fs.makedirs(LOCK_DIR, durable=False)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            try:
                store.fs.adopt(fd)  # a shared store's group may remove it when stale
                if os.write(fd, raw) != len(raw):
                    raise OSError(f"short write of lock file {tmp}")
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except BaseException:
            _unlink_quiet(tmp)
            raise
    else:
        store.fs.write_atomic(key, raw, fsync=False)
    h = _Held(store, key)
    with _held_lock:
        _held.add(h)
        if _beat is None:
            _beat = threading.Thread(target=_heartbeat, name="mlops-lease-heartbeat", daemon=True)
            _beat.start()
    return h


def _release(h: _Held) -> None:
    with _held_lock:
        _held.discard(h)
    h.store.fs.delete(h.key)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def holders(store, kind: str, *, exclude: str | None = None) -> list[dict]:
    """The live lock files of ``kind`` (``"write"`` or ``"gc"``), each as its JSON body
    plus ``key`` and ``age`` (seconds since its last heartbeat). Stale ones are removed."""
    out = []
    now = time.time()
    limit = stale_after()
    for name in store.fs.list(LOCK_DIR):
        if not (name.startswith(kind + "-") and name.endswith(".json")):
            continue
        key = f"{LOCK_DIR}/{name}"
        if key == exclude:
            continue
        age = 0.0
        try:
            age = now - store.fs.mtime(key)
            body = json.loads(store.fs.read_bytes(key))
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            continue  # released while we looked
        except (ValueError, OSError):
            body = {"what": "unreadable lock file"}
        dead = (body.get("host") == _HOST and isinstance(body.get("pid"), int)
                and not _alive(body["pid"]))
        if dead or age > limit:
            store.fs.delete(key)
            continue
        out.append({**body, "key": key, "age": age})
    return out


def describe(h: dict) -> str:
    """One holder as words: ``snapshot imagenet (host node3, pid 1234, for 12 s)``."""
    since = h.get("started")
    dur = f", for {time.time() - since:.0f} s" if isinstance(since, (int, float)) else ""
    return f"{h.get('what', '?')} (host {h.get('host', '?')}, pid {h.get('pid', '?')}{dur})"


def read_epoch(store) -> str:
    """The token ``gc`` last wrote before deleting ('' if no gc ever deleted anything)."""
    try:
        return store.fs.read_bytes(EPOCH_KEY).decode("ascii", "replace")
    except FileNotFoundError:
        return ""


def _slot(store, kind: str) -> list:
    with _holds_lock:
        return _holds.setdefault(store, {}).setdefault(kind, [0, None, threading.Lock()])


@contextmanager
def _hold(store, kind: str, what: str, until_clear):
    """Hold the lock file ``kind`` on ``store`` (one per store object and process, however
    many threads or nested calls hold it): the first holder creates it and calls
    ``until_clear(held)`` to wait for the other side, the last one removes it."""
    slot = _slot(store, kind)
    with slot[2]:  # a second thread waits here until the first has acquired
        if slot[0] == 0:
            h = _acquire(store, kind, what)
            try:
                until_clear(h)
            except BaseException:
                _release(h)
                raise
            slot[1] = h
        slot[0] += 1
    try:
        yield
    finally:
        with slot[2]:
            slot[0] -= 1
            if slot[0] == 0 and slot[1] is not None:
                _release(slot[1])
                slot[1] = None


def _wait(pause: float) -> float:
    """Sleep ``pause`` seconds; the next pause (doubling, at most half a second)."""
    time.sleep(pause)
    return min(pause * 2, 0.5)


@contextmanager
def write_lease(store, what: str, *, wait: float = 600.0):
    """Hold a write lease on ``store`` while adding content and committing a version.

    Waits (up to ``wait`` seconds, then :class:`StoreBusy`) while a ``gc`` holds the
    store, then reloads the store's chunk index if a gc deleted packs since it was
    loaded. Nested leases on one Store object are one lease.
    """
    def until_clear(h):
        deadline = time.monotonic() + wait
        pause = 0.01
        while True:
            gcs = holders(store, "gc")
            if not gcs:
                break
            if time.monotonic() >= deadline:
                raise StoreBusy(f"{what}: waited {wait:.0f} s for gc to finish on {store.root}: "
                                f"{'; '.join(describe(g) for g in gcs)}; nothing was written")
            pause = _wait(pause)
        epoch = read_epoch(store)
        if _epochs.get(store) != epoch:
            store.reload()  # a gc may have deleted packs the cached index still lists
            _epochs[store] = epoch

    with _hold(store, "write", what, until_clear):
        yield


@contextmanager
def gc_lock(store, what: str = "gc", *, wait: float = 0.0):
    """Hold ``store`` exclusively against writers and other gc runs (``gc``, ``purge``).

    Refuses with :class:`StoreBusy` (having changed nothing) while another gc runs, or
    while writers hold leases for longer than ``wait`` seconds. Then it publishes a
    new gc epoch (:func:`read_epoch`), so that every process reloads its chunk index
    before its next write. Nested on one Store object it is one lock.
    """
    def until_clear(h):
        deadline = time.monotonic() + wait
        pause = 0.01
        while True:
            others = holders(store, "gc", exclude=h.key)
            if others:
                raise StoreBusy(f"{what}: another gc is running on {store.root}: "
                                f"{'; '.join(describe(g) for g in others)}; nothing was deleted")
            writers = holders(store, "write")
            if not writers:
                break
            if time.monotonic() >= deadline:
                raise StoreBusy(
                    f"{what}: {len(writers)} writer(s) hold leases on {store.root}: "
                    f"{'; '.join(describe(w) for w in writers)}; nothing was deleted. Run it "
                    "again when they finish, or let it wait for them (--wait SECONDS)")
            pause = _wait(pause)
        store.fs.write_atomic(EPOCH_KEY, uuid.uuid4().hex.encode())
        _epochs[store] = None  # this process reloads too before its next write

    with _hold(store, "gc", what, until_clear):
        yield
