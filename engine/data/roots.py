"""The dataset layer's root provider: every dataset version keeps its manifest and files live.

The store's ``gc`` and ``verify`` find :func:`live_roots` through the entry point
``data`` of the group ``mlops_engine.roots`` (see :mod:`engine.store.roots`), so the
store never imports this layer. :func:`manifest_chunks` is shared with the layers
above whose versions are manifests too (the registry).
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from ..store import StoreCorruption, UnknownVersion
from ..store.roots import record_provider
from . import manifest as mf
from .version import KIND, read_version

NAME = "data"
ENTRY_POINT = "engine.data.roots:live_roots"


def record(store) -> None:
    """Record in ``store`` that dataset versions live there (before the first one is written).

    Examples
    --------
    >>> import tempfile
    >>> from engine.store import Store
    >>> record(Store(tempfile.mkdtemp() + "/s"))
    """
    record_provider(store, NAME, entry_point=ENTRY_POINT)


def manifest_chunks(store, blob: dict, label: str) -> Iterator[bytes]:
    """The ids of the chunks a manifest blob keeps live: its own, then its files'.

    Reads the manifest only when iterated, after yielding the blob's own chunks, so
    a damaged manifest still leaves those counted (see :mod:`engine.store.roots`).

    Examples
    --------
    >>> import pathlib, tempfile, engine.data as data
    >>> from engine.store import Store
    >>> src = pathlib.Path(tempfile.mkdtemp()); _ = (src / "a.txt").write_text("hello")
    >>> st = Store(tempfile.mkdtemp() + "/s")
    >>> v = data.snapshot(src, name="t", store=st)
    >>> ids = list(manifest_chunks(st, v.record["manifest"], v.ref))
    >>> len(ids) == len(v.record["manifest"]["chunks"]) + 1  # the manifest's chunks, the file's
    True
    """
    for cid, _n in blob["chunks"]:
        yield bytes.fromhex(cid)
    man = mf.from_bytes(store.get_blob(blob), f"manifest of {label}")
    import pyarrow.compute as pc  # here: importing it costs a cold `mlops` process ~10 ms

    try:
        flat = pc.list_flatten(man.column("chunks"))
        parts = [arr.field("id").to_pylist() for arr in flat.chunks]
    except (KeyError, TypeError, pa.ArrowException) as exc:
        raise StoreCorruption(f"manifest of {label} has no readable chunk list: {exc}") from None
    for ids in parts:
        yield from ids


def unshared_chunks(store, blob: dict, label: str, providers: dict,
                    ignore: dict | None = None) -> tuple[set[bytes], int]:
    """For a purge of version ``label`` (manifest ``blob``): the ids of its chunks that no
    live root uses (``ignore``: provider name -> labels to count as gone, a dry run's own
    version), and how many of its chunks other versions still use. A manifest whose chunks
    a killed purge already removed counts only its own chunks."""
    from ..store.roots import live_set

    targets: set[bytes] = set()
    try:
        for cid in manifest_chunks(store, blob, label):
            targets.add(cid)
    except StoreCorruption:
        pass  # a purge run again after the manifest's chunks went: its own are known
    gone = targets - live_set(store, providers, ignore)
    return gone, len(targets) - len(gone)


def _version_chunks(store, name: str, number: int, label: str) -> Iterator[bytes]:
    try:
        v = read_version(store, name, number)
    except UnknownVersion:
        return  # deleted (by gc) since it was listed: not live
    yield from manifest_chunks(store, v.record["manifest"], label)


def live_roots(store) -> Iterator[tuple[str, Iterator[bytes]]]:
    """``(name:vN, chunk ids)`` of every dataset version in ``store``.

    A version record is read only when its chunk ids are iterated, so a damaged one
    is charged to that version alone.

    Examples
    --------
    >>> import tempfile
    >>> from engine.store import Store
    >>> list(live_roots(Store(tempfile.mkdtemp() + "/s")))
    []
    """
    for name in store.list_names(KIND):
        for n in store.list_numbers(KIND, name):
            label = f"{name}:v{n}"
            yield label, _version_chunks(store, name, n, label)
