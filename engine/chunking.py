"""Deprecated: the chunk pipeline moved to :mod:`engine.store.pipeline`.

This module re-exports its old public names for one release; each use warns.
Import them from ``engine.store.pipeline`` (or use ``engine.chunk_bytes`` etc.).

Examples
--------
>>> from engine.store.pipeline import chunk_bytes
>>> chunk_bytes(b"abc").num_rows
1
"""

from __future__ import annotations

import importlib
import warnings

_MOVED = ("BLOCK_SIZE", "CHUNK_DTYPE", "CHUNK_SCHEMA", "ID_SIZE", "CdcParams", "Chunker",
          "as_byte_view", "chunk_bytes", "chunk_file", "default_workers", "file_id",
          "iter_chunks", "split_block", "warm_up")


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"engine.chunking is deprecated; import {name} from engine.store.pipeline",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module("engine.store.pipeline"), name)


def __dir__():
    return sorted(_MOVED)
