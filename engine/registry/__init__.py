"""The artifact and model registry: versions, aliases, promotion gates, runs and lineage.

Its truth is a log of numbered, immutable commit files in the store, created with
put-if-absent (safe on Lustre, GPFS and NFS, with no server); queries run on a
host-local SQLite index caught up from the log. See docs/registry.md.
"""

# The store layer (and numpy) first, through .errors: importing it from under .aliases
# measured 20 ms slower for a cold process (`python -X importtime`), for no visible reason.
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

# isort: split
from .aliases import GateCheck, Promotion
from .refs import KINDS, Ref, parse_ref
from .registry import ModelVersion, Registry
from .runs import Run, set_run_coordinator
from .validators import register_kind, register_validator

__all__ = [
    "KINDS",
    "GateCheck",
    "GateError",
    "GateRejected",
    "InvalidContent",
    "MalformedReference",
    "ModelVersion",
    "Promotion",
    "Ref",
    "Registry",
    "RegistryCorruption",
    "set_run_coordinator",
    "RegistryError",
    "RegistryFormatError",
    "Run",
    "RunFinished",
    "UnknownReference",
    "parse_ref",
    "register_kind",
    "register_validator",
]
