"""``diff``: what changed between two dataset versions."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .ingest import using_store
from .version import resolve


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
                f"unchanged; {self.bytes_changed} bytes in new chunks, "
                f"{self.chunks_reused}/{self.chunks_total} chunks reused")


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


def diff(a, b, *, store=None) -> DiffResult:
    """Files added, removed, modified and renamed from version ``a`` to version ``b``.

    A rename is a path removed from ``a`` and a path added in ``b`` with the same
    content. ``bytes_changed`` counts the bytes of ``b``'s chunks that ``a`` does not
    have, and ``chunks_reused`` how many of ``b``'s chunks ``a`` already had.
    """
    with using_store(store) as st:
        return _diff(st, a, b)


def _diff(st, a, b):
    va, vb = resolve(st, a), resolve(st, b)
    ea, eb = _entries(va.manifest()), _entries(vb.manifest())
    res = DiffResult(va.ref, vb.ref)
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
