"""Native and accelerated kernels of mlops-engine, installed as ``engine.kernels``.

Each kernel has several backends in one registry (see ``_registry`` for the
naming scheme: kernel ``psi`` is ``reference.psi``, ``drift_counts_numba.psi``):
``reference`` (NumPy, always there, the ground truth in ``reference.py``),
``cython`` and ``numba`` (CPU), ``cuda`` (CuPy). The fastest backend that
loads and is usable for the given arguments is picked (:func:`select`,
:func:`call`) unless a ``backend=`` keyword or ``MLOPS_BACKEND`` forces one.

Importing this package registers every kernel (``cdc``, ``drift`` and ``guard`` register
theirs when imported) but loads no backend: numba, CuPy and the compiled
extensions are imported by the registry on first use.
"""

from . import (
    drift,  # noqa: F401  (registers the drift kernels; imports only NumPy)
    gather,  # noqa: F401  (registers gather_ranges; imports only NumPy)
    guard,  # noqa: F401  (registers the guard's batch kernels; imports only NumPy)
)
from ._registry import (
    PRIORITY,
    BackendNotApplicable,
    BackendUnavailable,
    backends,
    call,
    forced_backend,
    get,
    kernels,
    register,
    register_kernel,
    resolve,
    select,
    usable_backends,
)
from .cdc import CdcParams, Chunker, cut_points
from .gear import GEAR, generate_gear_table

__all__ = [
    "GEAR",
    "PRIORITY",
    "BackendNotApplicable",
    "BackendUnavailable",
    "CdcParams",
    "Chunker",
    "backends",
    "call",
    "cut_points",
    "forced_backend",
    "generate_gear_table",
    "get",
    "kernels",
    "register",
    "register_kernel",
    "resolve",
    "select",
    "usable_backends",
]
