"""Content-addressed chunk store over local paths and ``pyarrow.fs`` (see docs/formats.md).

The store also owns its maintenance: :func:`collect` (gc, :mod:`.gc`) and
:func:`verify_store` (:mod:`.verify`), told what is live by the root providers of
the layers above (:mod:`.roots`).
"""

from .crypto import StoreKeyError
from .errors import (
    AmbiguousReference,
    PurgedVersion,
    StoreBusy,
    StoreCorruption,
    StoreError,
    StoreFormatError,
    UnknownVersion,
)
from .lease import gc_lock, write_lease
from .pack import CODEC_NAMES, PackWriter, compress, decompress
from .roots import RootProviderError, register_root_provider
from .s3 import ConditionalWriteUnsupported
from .store import ChunkIndex, Store

# Maintenance is loaded on first use: a process that only reads or writes (a cold
# `pull`, a training step's checkpoint) should not pay for importing it.
_LAZY = {"GcReport": ".gc", "collect": ".gc", "StoreCheck": ".verify", "verify_store": ".verify"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CODEC_NAMES",
    "AmbiguousReference",
    "ChunkIndex",
    "ConditionalWriteUnsupported",
    "GcReport",
    "PackWriter",
    "PurgedVersion",
    "RootProviderError",
    "Store",
    "StoreCheck",
    "StoreBusy",
    "StoreCorruption",
    "StoreError",
    "StoreFormatError",
    "StoreKeyError",
    "UnknownVersion",
    "collect",
    "compress",
    "decompress",
    "gc_lock",
    "register_root_provider",
    "verify_store",
    "write_lease",
]
