"""Exceptions of the store and the data layer."""


class StoreError(Exception):
    """Base class of store errors."""


class StoreCorruption(StoreError):
    """Stored bytes do not match what was written (a bad pack byte, a truncated index)."""


class StoreFormatError(StoreError):
    """The store (or an object in it) has a format this version cannot read."""


class StoreBusy(StoreError):
    """``gc`` or ``purge`` would race writers (or another gc) that hold leases on the store."""


class UnknownVersion(StoreError, KeyError):
    """A version reference matches no stored version."""

    def __str__(self):  # KeyError would print the repr with quotes
        return str(self.args[0]) if self.args else ""


class AmbiguousReference(StoreError, ValueError):
    """An id prefix matches several versions."""


class PurgedVersion(UnknownVersion):
    """The version was purged (``mlops data purge`` / ``model purge``): only its tombstone is left."""
