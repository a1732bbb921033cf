"""Dataset versions and references: ``name:vN``, ``name@latest``, ``name``, an id prefix."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

import pyarrow as pa

from ..store import AmbiguousReference, PurgedVersion, Store, StoreCorruption, UnknownVersion
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


# The fields every reader relies on, with their types; anything else in a record is optional.
_RECORD_FIELDS = {"name": str, "number": int, "id": str, "created": str, "files": int,
                  "bytes": int, "manifest": dict}
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


def record_checksum(rec: dict) -> str:
    """BLAKE3 (hex) of a version record's canonical JSON without its ``checksum`` field: any
    change to a field that still parses (a message, a time, a source) is seen."""
    import json

    import blake3

    body = {k: v for k, v in rec.items() if k != "checksum"}
    return blake3.blake3(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                    ensure_ascii=False).encode()).hexdigest()


def with_checksum(rec: dict) -> dict:
    """``rec`` with its ``checksum`` field set (records written since issue 15 carry one)."""
    return {**rec, "checksum": record_checksum(rec)}


def _checksum_problem(rec: dict) -> str | None:
    if "checksum" in rec and rec["checksum"] != record_checksum(rec):
        return "it fails its checksum (a field was changed after it was written)"
    return None


def is_tombstone(rec) -> bool:
    """Whether a parsed version record is the tombstone a purge left (``{"purged": {...}}``)."""
    return isinstance(rec, dict) and isinstance(rec.get("purged"), dict)


def purged_message(rec: dict) -> str:
    p = rec["purged"]
    why = f" ({p['reason']})" if isinstance(p.get("reason"), str) and p["reason"] else ""
    return (f"{rec.get('name')}:v{rec.get('number')} was purged at {p.get('time', '?')} by "
            f"{p.get('user', '?')}{why}: its content is gone from the store")


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def blob_problem(blob) -> str | None:
    """What is wrong with a stored blob reference ``{"id", "size", "chunks": [[id, length],
    ...]}`` (a manifest's, in a version record or a registry commit), or None."""
    if not isinstance(blob, dict):
        return "it is not a JSON object"
    if not (isinstance(blob.get("id"), str) and _HEX64.match(blob["id"])):
        return "its id is not 64 hex digits"
    if not _count(blob.get("size")):
        return "its size is not a byte count"
    chunks = blob.get("chunks")
    if not isinstance(chunks, list):
        return "its chunks are not a list"
    for c in chunks:
        if not (isinstance(c, list) and len(c) == 2 and isinstance(c[0], str)
                and _HEX64.match(c[0]) and _count(c[1])):
            return f"its chunk {str(c)[:80]} is not [64 hex digits, length]"
    return None


def record_problem(rec, name: str, number: int) -> str | None:
    """What is wrong with a parsed version record of ``name:v<number>``, or None if it is sound
    (a finished purge's tombstone is sound)."""
    if not isinstance(rec, dict):
        return f"expected a JSON object, found {type(rec).__name__}"
    if is_tombstone(rec):
        bad_sum = _checksum_problem(rec)
        if bad_sum:
            return bad_sum
        if (rec.get("name"), rec.get("number")) != (name, number):
            return f"a tombstone naming {rec.get('name')}:v{rec.get('number')} lies where {name}:v{number} belongs"
        if "pending" in rec:
            return (f"a purge of it did not finish (its content may still be stored): run "
                    f"`mlops data purge {name}:v{number}` again")
        return None
    for key, typ in _RECORD_FIELDS.items():
        if not isinstance(rec.get(key), typ) or isinstance(rec.get(key), bool):
            return f"field {key!r} is missing or not a {typ.__name__}"
    if (rec["name"], rec["number"]) != (name, number):
        return f"it names {rec['name']}:v{rec['number']}, but lies where {name}:v{number} belongs"
    if not _HEX64.match(rec["id"]):
        return f"its id {rec['id'][:80]!r} is not 64 hex digits"
    if rec.get("parent") is not None and not (isinstance(rec["parent"], str)
                                              and _HEX64.match(rec["parent"])):
        return "its parent is neither null nor 64 hex digits"
    if rec.get("message") is not None and not isinstance(rec["message"], str):
        return "its message is neither null nor a string"
    if rec["files"] < 0 or rec["bytes"] < 0:
        return "its file or byte count is negative"
    problem = blob_problem(rec["manifest"])
    if problem:
        return f"its manifest reference (id, size, chunks) is malformed: {problem}"
    return _checksum_problem(rec)  # last: the checks above say what is wrong, where they can


def read_version(store: Store, name: str, number: int) -> Version:
    """Version ``name:v<number>``; a damaged record raises StoreCorruption naming its path."""
    key = store.record_key(KIND, name, number)
    try:
        try:
            rec = store.read_record(KIND, name, number)
        except (AttributeError, TypeError, RecursionError) as exc:
            # Store.read_record parses the JSON and compares format_version: a record that
            # is not an object, or whose format_version is no number, fails in there
            raise StoreCorruption(f"version record {key} is damaged: {type(exc).__name__}: "
                                  f"{str(exc)[:200]}") from None
        if is_tombstone(rec) and (rec.get("name"), rec.get("number")) == (name, number) \
                and not _checksum_problem(rec):
            raise PurgedVersion(purged_message(rec))
        problem = record_problem(rec, name, number)
        if problem:
            raise StoreCorruption(f"version record {key} is damaged: {problem}")
    except StoreCorruption as exc:
        raise StoreCorruption(f"{exc}; run `mlops data verify` for a full report") from None
    return Version.from_record(rec, store)


def versions(store: Store, name: str) -> list[Version]:
    """Versions of ``name``, oldest first (purged ones left out)."""
    out = []
    for n in store.list_numbers(KIND, name):
        try:
            out.append(read_version(store, name, n))
        except PurgedVersion:
            pass
    return out


def latest(store: Store, name: str) -> Version | None:
    """The newest version of ``name`` that was not purged (None if there is none)."""
    for n in reversed(store.list_numbers(KIND, name)):
        try:
            return read_version(store, name, n)
        except PurgedVersion:
            continue
    return None


def names_hint(store: Store, name: str) -> str:
    """``"; did you mean imagenet, imagenet-small?"`` (closest dataset names), or what the store has."""
    names = store.list_names(KIND)
    close = difflib.get_close_matches(name, names, n=3)
    if close:
        return f"; did you mean {', '.join(close)}?"
    if names:
        return f"; the store has {len(names)} other dataset{'s' * (len(names) != 1)} (mlops data list)"
    return "; the store has no datasets"


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
            raise UnknownVersion(f"no dataset named {name!r} in {store.root}{names_hint(store, name)}")
        return v
    if ":" in ref:
        name, _, sel = ref.partition(":")
        _check_ref_name(name, ref)
        m = _NUM_RE.match(sel)
        if m:
            n = int(m.group(1))
            have = store.list_numbers(KIND, name)
            if n not in have:
                raise UnknownVersion(f"no version {name}:v{n}" + (
                    f" (versions: v{have[0]}..v{have[-1]})" if have
                    else f" (no dataset named {name!r}{names_hint(store, name)})"))
            return read_version(store, name, n)
        if _HEX_RE.match(sel.lower()):
            return _by_prefix(store, sel.lower(), [name], ref)
        raise ValueError(f"malformed version reference {ref!r}: after ':' expected vN or an id prefix")
    if ref in store.list_names(KIND):
        return latest(store, ref)
    if _HEX_RE.match(ref.lower()):
        return _by_prefix(store, ref.lower(), store.list_names(KIND), ref)
    if NAME_RE.match(ref):
        raise UnknownVersion(f"no dataset named {ref!r} and no version id starting with it"
                             f"{names_hint(store, ref)}")
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
