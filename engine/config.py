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
