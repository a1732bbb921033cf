"""Content-addressed chunk store over local paths and ``pyarrow.fs`` (see docs/formats.md)."""

from .errors import (
    AmbiguousReference,
    StoreCorruption,
    StoreError,
    StoreFormatError,
    UnknownVersion,
)
from .pack import CODEC_NAMES, PackWriter, compress, decompress
from .store import ChunkIndex, Store

__all__ = [
    "CODEC_NAMES",
    "AmbiguousReference",
    "ChunkIndex",
    "PackWriter",
    "Store",
    "StoreCorruption",
    "StoreError",
    "StoreFormatError",
    "UnknownVersion",
    "compress",
    "decompress",
]
