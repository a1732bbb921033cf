"""Exceptions of the registry. Each names what was asked for and what exists."""

from ..store.errors import StoreCorruption, StoreError, StoreFormatError


class RegistryError(StoreError):
    """Base class of registry errors."""


class UnknownReference(RegistryError, KeyError):
    """A reference names no artifact, version, alias or run."""

    def __str__(self):  # KeyError would print the repr with quotes
        return str(self.args[0]) if self.args else ""


class MalformedReference(RegistryError, ValueError):
    """A reference string does not parse."""


class GateError(RegistryError, ValueError):
    """A promotion gate cannot be evaluated (bad gate string, metric missing)."""


class GateRejected(RegistryError):
    """A promotion gate was evaluated and the new version did not beat the holder."""


class RegistryCorruption(RegistryError, StoreCorruption):
    """A commit or checkpoint file is unreadable."""


class RegistryFormatError(RegistryError, StoreFormatError):
    """A commit or checkpoint has a newer format than this version reads."""


class InvalidContent(RegistryError, ValueError):
    """What was given for a kind does not have that kind's format (a profile that is not one)."""


class RunFinished(RegistryError):
    """Something was logged to a run that has already ended."""
