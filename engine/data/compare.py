"""``diff`` and ``status``: what changed between two versions, or a version and a directory."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from ..progress import count, human_bytes
from ..store import UnknownVersion
from .ingest import using_store
from .version import resolve
from .worktree import default_dataset, is_path, tree_entries


@dataclass
class DiffResult:
    a: str
    b: str
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    modified: list[dict] = field(default_factory=list)
    renamed: list[dict] = field(default_factory=list)
    unchanged: int = 0
    bytes_changed: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.modified or self.renamed)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["identical"] = self.identical
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def summary(self) -> str:
        return (f"{self.a} -> {self.b}: {len(self.added)} added, {len(self.removed)} removed, "
                f"{len(self.modified)} modified, {len(self.renamed)} renamed, {self.unchanged} "
                f"unchanged; {human_bytes(self.bytes_changed)} in new chunks, "
                f"{self.chunks_reused}/{count(self.chunks_total, 'chunk')} reused")


def _entries(man) -> dict[str, dict]:
    cols = man.to_pydict()
    out = {}
    for i, p in enumerate(cols["path"]):
        out[p] = {"kind": cols["kind"][i], "size": cols["size"][i], "mode": cols["mode"][i],
                  "file_id": cols["file_id"][i], "target": cols["target"][i],
                  "chunks": cols["chunks"][i] or []}
    return out


def _ident(e: dict):
    return (e["kind"], e["file_id"] if e["kind"] == "file" else e["target"])


def diff(a, b, *, store=None, progress: bool | None = None) -> DiffResult:
    """Files added, removed, modified and renamed from ``a`` to ``b``.

    Each side is a version reference or a directory: an ``os.PathLike``, or a string
    with a ``/`` or a leading ``.`` (``"./data"``; a bare word is a reference). A
    directory is walked as ``snapshot`` would walk it, and hashed through the stat
    cache, never stored.

    A rename is a path removed from ``a`` and a path added in ``b`` with the same
    content. ``bytes_changed`` counts the bytes of ``b``'s chunks that ``a`` does not
    have, and ``chunks_reused`` how many of ``b``'s chunks ``a`` already had.
    ``progress`` draws a bar while a directory's changed files are hashed (default:
    only if stderr is a terminal).
    """
    with using_store(store) as st:
        return _diff(st, a, b, progress)


def status(name=None, path=".", *, store=None, progress: bool | None = None) -> DiffResult:
    """What changed in the directory ``path`` since a version: ``diff(version, path)``.

    Parameters
    ----------
    name : str, optional
        A dataset name (its latest version) or any version reference. Default: the
        dataset whose latest version was snapshotted from ``path`` (the most recent,
        if several were), else the store's only dataset.
    path : path
        The working directory (or file); default the current directory.
    progress : bool, optional
        A bar while changed files are hashed; default: only if stderr is a terminal.

    Notes
    -----
    Only files whose stat differs from the stat cache are read, so an unchanged tree
    costs one ``stat`` per file.
    """
    with using_store(store) as st:
        ref = default_dataset(st, path) if name is None else name
        return _diff(st, ref, path, progress, b_is_path=True)


def _side(st, x, progress, as_path: bool = False) -> tuple[str, dict]:
    if as_path or is_path(x):
        return os.fspath(x), tree_entries(st, x, progress)
    try:
        v = resolve(st, x)
    except UnknownVersion as exc:
        if isinstance(x, str) and os.path.isdir(x):
            raise UnknownVersion(f"{exc}; to compare with the directory {x!r}, write ./{x}") from None
        raise
    return v.ref, _entries(v.manifest())


def _diff(st, a, b, progress, b_is_path: bool = False):
    (la, ea), (lb, eb) = _side(st, a, progress), _side(st, b, progress, b_is_path)
    res = DiffResult(la, lb)
    a_chunks = {c["id"] for e in ea.values() for c in e["chunks"]}
    for e in eb.values():
        for c in e["chunks"]:
            res.chunks_total += 1
            if c["id"] in a_chunks:
                res.chunks_reused += 1
            else:
                res.bytes_changed += c["length"]
    only_a = sorted(set(ea) - set(eb))
    only_b = sorted(set(eb) - set(ea))
    by_content: dict[tuple, list[str]] = {}
    for p in only_a:
        by_content.setdefault(_ident(ea[p]), []).append(p)
    for p in only_b:
        olds = by_content.get(_ident(eb[p]))
        if olds:
            res.renamed.append({"from": olds.pop(0), "to": p, "size": eb[p]["size"]})
        else:
            new_chunks = [c for c in eb[p]["chunks"] if c["id"] not in a_chunks]
            res.added.append({"path": p, "size": eb[p]["size"],
                              "bytes_changed": sum(c["length"] for c in new_chunks)})
    renamed_from = {r["from"] for r in res.renamed}
    res.removed = [{"path": p, "size": ea[p]["size"]} for p in only_a if p not in renamed_from]
    for p in sorted(set(ea) & set(eb)):
        x, y = ea[p], eb[p]
        if _ident(x) == _ident(y) and x["mode"] == y["mode"]:
            res.unchanged += 1
            continue
        old = {c["id"] for c in x["chunks"]}
        new_chunks = [c for c in y["chunks"] if c["id"] not in old]
        res.modified.append({
            "path": p, "old_size": x["size"], "new_size": y["size"],
            "bytes_changed": sum(c["length"] for c in new_chunks),
            "chunks_reused": len(y["chunks"]) - len(new_chunks), "chunks": len(y["chunks"]),
            "mode_changed": x["mode"] != y["mode"],
        })
    return res
