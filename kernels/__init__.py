"""Native and accelerated kernels of mlops-engine, installed as ``engine.kernels``.

Each kernel has several backends in one registry (see ``_registry``):
``reference`` (NumPy, always there, the ground truth in ``reference.py``),
``cython`` and ``numba`` (CPU), ``cuda`` (CuPy). The fastest usable backend is
picked unless a ``backend=`` keyword or ``MLOPS_BACKEND`` forces one.

Importing this package registers every kernel (``cdc`` and ``drift`` register
theirs when imported) but loads no backend: numba, CuPy and the compiled
extensions are imported by the registry on first use.
"""

from . import drift  # noqa: F401  (registers the drift kernels; imports only NumPy)
from ._registry import (
    PRIORITY,
    BackendUnavailable,
    backends,
    forced_backend,
    get,
    kernels,
    register,
    resolve,
    usable_backends,
)
from .cdc import CdcParams, Chunker, cut_points
from .gear import GEAR, generate_gear_table

__all__ = [
    "GEAR",
    "PRIORITY",
    "BackendUnavailable",
    "CdcParams",
    "Chunker",
    "backends",
    "cut_points",
    "forced_backend",
    "generate_gear_table",
    "get",
    "kernels",
    "register",
    "resolve",
    "usable_backends",
]
