"""The durable floor of a registration, and a counter of fsync calls (bench_registry.py).

A registration that is durable when it returns must at least write its bytes into a
new file and fsync it, write a small commit file and fsync it, and fsync the commit's
directory (which makes the commit's name durable). :func:`durable_floor` times exactly
that, in the store's own directories, so that ``register / floor`` compares the engine
with the least any durable registry could do on the same disk, in the same run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

FLOOR_COMMIT_BYTES = 600  # about a registration's commit file


def durable_floor(store: Path, data: bytes, i: int) -> float:
    """Seconds of the least a durable registration of ``data`` must do: the bytes into a
    new file + fsync, a small commit file + fsync, a directory fsync (that makes the
    commit's name durable). In the store's own directories (file creation costs differ
    between directories on the same disk here, 5 to 200 µs), then removed, untimed."""
    big = store / "tmp" / f".floor-{i}.tmp"
    log_dir = store / "registry" / "log" / "0000000000"
    small = log_dir / f".floor-{i}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    t0 = time.perf_counter()
    for path, payload in ((big, data), (small, data[:FLOOR_COMMIT_BYTES])):
        fd = os.open(path, flags, 0o644)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    dfd = os.open(log_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    sec = time.perf_counter() - t0
    big.unlink()
    small.unlink()
    return sec


class SyncCounter:
    """Counts ``os.fsync`` and ``os.fdatasync`` calls (any thread) while active."""

    def __init__(self):
        self.calls = 0
        self._saved = {}

    def __enter__(self):
        for name in ("fsync", "fdatasync"):
            real = getattr(os, name, None)
            if real is not None:
                self._saved[name] = real
                setattr(os, name, self._counting(real))
        return self

    def _counting(self, real):
        def call(fd):
            self.calls += 1
            return real(fd)
        return call

    def __exit__(self, *exc):
        for name, real in self._saved.items():
            setattr(os, name, real)
