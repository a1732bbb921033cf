"""The artifact and model registry: versions, aliases, promotion gates, runs and lineage.

Its truth is a log of numbered, immutable commit files in the store, created with
put-if-absent (safe on Lustre, GPFS and NFS, with no server); queries run on a
host-local SQLite index caught up from the log. See docs/registry.md.
"""

from .errors import (
    GateError,
    GateRejected,
    InvalidContent,
    MalformedReference,
    RegistryCorruption,
    RegistryError,
    RegistryFormatError,
    RunFinished,
    UnknownReference,
)
from .refs import KINDS, Ref, parse_ref
from .registry import ModelVersion, Registry
from .runs import Run
from .validators import register_validator

__all__ = [
    "KINDS",
    "GateError",
    "GateRejected",
    "InvalidContent",
    "MalformedReference",
    "ModelVersion",
    "Ref",
    "Registry",
    "RegistryCorruption",
    "RegistryError",
    "RegistryFormatError",
    "Run",
    "RunFinished",
    "UnknownReference",
    "parse_ref",
    "register_validator",
]
