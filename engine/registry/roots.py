"""The registry's root provider: every live (not deleted) version keeps its content live.

The store's ``gc`` and ``verify`` find :func:`live_roots` through the entry point
``registry`` of the group ``mlops_engine.roots`` (see :mod:`engine.store.roots`), so
neither the store nor the dataset layer imports the registry; a registry records
itself in a store (:func:`record`) before its first write there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from ..store.roots import record_provider

NAME = "registry"
ENTRY_POINT = "engine.registry.roots:live_roots"


def record(store) -> None:
    """Record in ``store`` that registry content lives there (once per store object).

    Examples
    --------
    >>> import tempfile
    >>> from engine.store import Store
    >>> record(Store(tempfile.mkdtemp() + "/s"))
    """
    record_provider(store, NAME, entry_point=ENTRY_POINT)


def live_versions(store) -> list[tuple[str, dict]]:
    """``(name:vN, manifest blob)`` of every live registry version in ``store``.

    Examples
    --------
    >>> import tempfile
    >>> from engine.store import Store
    >>> live_versions(Store(tempfile.mkdtemp() + "/s"))
    []
    """
    from .log import LOG_DIR
    from .registry import Registry

    if not store.fs.list(LOG_DIR):
        return []
    reg = Registry(store)
    try:
        reg.refresh()
        return [(f"{n}:v{v}", json.loads(c)["manifest"]) for n, v, c in reg.index.query(
            "SELECT name, version, content FROM versions WHERE deleted=0")]
    finally:
        reg.index.close()


def live_roots(store) -> Iterator[tuple[str, Iterator[bytes]]]:
    """``(name:vN, chunk ids)`` of every live registry version: its manifest and files.

    Examples
    --------
    >>> import tempfile
    >>> from engine.store import Store
    >>> list(live_roots(Store(tempfile.mkdtemp() + "/s")))
    []
    """
    from ..data.roots import manifest_chunks  # not at import: `import engine.registry` stays light

    for label, blob in live_versions(store):
        yield label, manifest_chunks(store, blob, label)

