"""mlops-engine: versioned data, MPI training, an artifact registry and drift monitoring for HPC.

The public API is re-exported here lazily: ``import engine`` loads no torch,
cupy, mpi4py or numba, and no compiled kernel until one is used.

Examples
--------
>>> import engine
>>> t = engine.chunk_bytes(b"some bytes")
>>> t.column_names
['offset', 'length', 'id']
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it (imported on first attribute access)
_LAZY = {
    "chunk_bytes": "engine.store.pipeline",
    "chunk_file": "engine.store.pipeline",
    "file_id": "engine.store.pipeline",
    "iter_chunks": "engine.store.pipeline",
    "CdcParams": "engine.kernels.cdc",
    "Chunker": "engine.kernels.cdc",
    "kernels": "engine.kernels",
    "config": "engine.config",
    "Registry": "engine.registry",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    module = importlib.import_module(mod)
    value = module if mod.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
