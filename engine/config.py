"""Tunables with their defaults. Tests patch these; environment variables override some."""

from __future__ import annotations

import os

#: Content-defined chunking: target (average) chunk size, a power of two.
CHUNK_AVG_SIZE = 64 * 1024
#: Minimum and maximum chunk sizes (None: avg/8 and avg*2).
CHUNK_MIN_SIZE: int | None = None
CHUNK_MAX_SIZE: int | None = None
#: Bytes read from a file per block while chunking.
READ_BLOCK_SIZE = 16 << 20


def store_root() -> str:
    """Default store location: ``$MLOPS_HOME`` or ``./.mlops``."""
    return os.environ.get("MLOPS_HOME") or os.path.join(os.getcwd(), ".mlops")


#: Chunk sizes for manifests and other metadata blobs stored in the store. Small
#: chunks keep the growth of a manifest after a few edits to a few KiB.
META_CHUNK_AVG_SIZE = 4096
META_CHUNK_MIN_SIZE = 1024
META_CHUNK_MAX_SIZE = 16384


def cache_dir() -> str:
    """Host-local cache directory (stat caches): ``$MLOPS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/mlops-engine``, else ``~/.cache/mlops-engine``.

    It is kept out of the store on purpose: a store may sit on a shared file
    system, while what the cache records (inodes, mtimes) is true of one host only.
    """
    d = os.environ.get("MLOPS_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "mlops-engine")
    return d

#: Registry: a checkpoint (one Arrow file compacting the log) every this many commits.
REGISTRY_CHECKPOINT_EVERY = 1000
#: Registry: a snapshot of the whole query index every this many commits, so that a host
#: without an index starts from it instead of replaying the log (0 disables).
REGISTRY_STATE_EVERY = 10_000

#: drift() of raw data: numeric columns are sorted and tested a block of columns at a time,
#: with about this many bytes of float64 sorted values (both sides) per block; None: all at once.
DRIFT_BLOCK_BYTES: int | None = 512 << 20
