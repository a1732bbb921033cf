"""Dataset versions and references: ``name:vN``, ``name@latest``, ``name``, an id prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

from ..store import AmbiguousReference, Store, UnknownVersion
from ..store.store import NAME_RE
from . import manifest as mf

KIND = "dataset"
_NUM_RE = re.compile(r"^v?(\d+)$")
_HEX_RE = re.compile(r"^[0-9a-f]{4,64}$")


@dataclass
class Version:
    """One immutable version of a dataset.

    Attributes: ``name``, ``number`` (1, 2, ...), ``id`` (hex content id),
    ``parent`` (id of the previous version of the same name), ``message``,
    ``created``, ``files``, ``bytes``, ``record`` (the stored JSON), and
    ``unchanged`` (True when a snapshot found the tree identical to the latest
    version and returned it instead of committing a new one).
    """

    name: str
    number: int
    id: str
    parent: str | None
    message: str | None
    created: str
    files: int
    bytes: int
    record: dict = field(repr=False)
    store: Store | None = field(default=None, repr=False)
    unchanged: bool = False

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.number}"

    @classmethod
    def from_record(cls, rec: dict, store: Store | None = None) -> Version:
        return cls(rec["name"], rec["number"], rec["id"], rec.get("parent"), rec.get("message"),
                   rec["created"], rec["files"], rec["bytes"], rec, store)

    def manifest(self) -> pa.Table:
        """The manifest table of this version."""
        if self.store is None:
            raise ValueError("this Version is not attached to a store")
        data = self.store.get_blob(self.record["manifest"])
        return mf.from_bytes(data, f"manifest of {self.ref}")

    def to_dict(self) -> dict:
        return {"ref": self.ref, "name": self.name, "number": self.number, "id": self.id,
                "parent": self.parent, "message": self.message, "created": self.created,
                "files": self.files, "bytes": self.bytes, "user": self.record.get("user"),
                "host": self.record.get("host"), "source": self.record.get("source"),
                "format": self.record.get("format", "files")}


def versions(store: Store, name: str) -> list[Version]:
    """Versions of ``name``, oldest first."""
    return [Version.from_record(store.read_record(KIND, name, n), store)
            for n in store.list_numbers(KIND, name)]


def latest(store: Store, name: str) -> Version | None:
    nums = store.list_numbers(KIND, name)
    return Version.from_record(store.read_record(KIND, name, nums[-1]), store) if nums else None


def resolve(store: Store, ref) -> Version:
    """The version a reference names.

    ``name:vN`` (or ``name:N``), ``name@latest``, ``name`` (its latest version),
    ``name:<id prefix>``, or a bare id prefix of at least 4 hex digits unique in the store.
    """
    if isinstance(ref, Version):
        return ref
    if not isinstance(ref, str) or not ref.strip():
        raise ValueError(f"version reference must be a non-empty string like 'name:v3', "
                         f"'name@latest' or an id prefix; got {ref!r}")
    ref = ref.strip()
    if "@" in ref:
        name, _, alias = ref.partition("@")
        _check_ref_name(name, ref)
        if alias != "latest":
            raise UnknownVersion(f"unknown alias {alias!r} in {ref!r}: datasets have only "
                                 "'@latest' (other aliases live in the registry)")
        v = latest(store, name)
        if v is None:
            raise UnknownVersion(f"no dataset named {name!r} in {store.root}")
        return v
    if ":" in ref:
        name, _, sel = ref.partition(":")
        _check_ref_name(name, ref)
        m = _NUM_RE.match(sel)
        if m:
            n = int(m.group(1))
            if n not in store.list_numbers(KIND, name):
                have = store.list_numbers(KIND, name)
                raise UnknownVersion(f"no version {name}:v{n}" + (
                    f" (versions: v{have[0]}..v{have[-1]})" if have else f" (no dataset named {name!r})"))
            return Version.from_record(store.read_record(KIND, name, n), store)
        if _HEX_RE.match(sel.lower()):
            return _by_prefix(store, sel.lower(), [name], ref)
        raise ValueError(f"malformed version reference {ref!r}: after ':' expected vN or an id prefix")
    if ref in store.list_names(KIND):
        return latest(store, ref)
    if _HEX_RE.match(ref.lower()):
        return _by_prefix(store, ref.lower(), store.list_names(KIND), ref)
    if NAME_RE.match(ref):
        raise UnknownVersion(f"no dataset named {ref!r} and no version id starting with it")
    raise ValueError(f"malformed version reference {ref!r}")


def _check_ref_name(name: str, ref: str) -> None:
    if not NAME_RE.match(name):
        raise ValueError(f"malformed version reference {ref!r}: {name!r} is not a valid name")


def _by_prefix(store: Store, prefix: str, names: list[str], ref: str) -> Version:
    found = [v for n in names for v in versions(store, n) if v.id.startswith(prefix)]
    ids = {v.id for v in found}
    if not found:
        raise UnknownVersion(f"no version matches {ref!r}")
    if len(ids) > 1:
        raise AmbiguousReference(
            f"{ref!r} matches {len(ids)} different versions ({', '.join(sorted(v.ref for v in found)[:5])}); "
            "give more digits"
        )
    return max(found, key=lambda v: v.number)
