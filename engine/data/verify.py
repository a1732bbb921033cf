"""``verify``: check every dataset version record, then the store under them.

Damage never stops the check: a version record that does not parse is reported
here, and so is one that does not agree with its manifest (a flipped byte in a field
a reader uses: the version id, the manifest reference, the file count, the parent,
the format); then the root provider records (``roots/``); what the store finds
(indexes, packs, chunks, manifests, chunks a version needs that no pack holds;
:func:`engine.store.verify.verify_store`) follows. Each problem names the file
(``path``) and the versions it affects.

What no check can see: a version record has no checksum, so a change to a field that
nothing else repeats (``created``, ``message``, ``source``, ``user``, ``host``,
``bytes``...) that still parses goes unnoticed (docs/faults.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..store import StoreError, UnknownVersion
from ..store.pipeline import file_id
from ..store.roots import DISTRIBUTION, ENTRY_POINT_GROUP, FORMAT_VERSION, IMPLIED, ROOTS_DIR
from ..store.verify import verify_store
from . import manifest as mf
from .ingest import using_store
from .version import KIND, is_tombstone, record_problem


@dataclass
class VerifyReport:
    """What ``verify`` found.

    ``problems`` holds one dict per damaged object: ``problem`` (what), ``path`` (the
    file in the store), ``versions`` (the references it affects) and, where they apply,
    ``pack``, ``chunk``, ``offset`` and ``detail``. ``damaged_versions`` and
    ``intact_versions`` split every version of the store by whether a problem touches it.
    """

    ok: bool
    packs: int = 0
    chunks_checked: int = 0
    bytes_checked: int = 0
    versions: int = 0
    problems: list[dict] = field(default_factory=list)
    damaged_versions: list[str] = field(default_factory=list)
    intact_versions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)


def verify(*, store=None, sample: float | None = None, seed: int | None = None,
           progress: bool | None = None) -> VerifyReport:
    """Re-hash stored chunks and check every version record and that every chunk a version
    needs is stored.

    Parameters
    ----------
    sample : float, optional
        In (0, 1]: re-hash only this fraction of chunks (chosen at random); records,
        indexes and references are always checked in full.
    seed : int, optional
        Seed of the sample.
    progress : bool or None
        A progress bar (chunks) on stderr; default: only if stderr is a terminal.

    Examples
    --------
    >>> import pathlib, tempfile, engine.data as data
    >>> src, store = pathlib.Path(tempfile.mkdtemp()), tempfile.mkdtemp()
    >>> _ = (src / "a.txt").write_text("hello")
    >>> _ = data.snapshot(src, name="t", store=store)
    >>> data.verify(store=store).intact_versions
    ['t:v1']
    """
    if sample is not None and not (isinstance(sample, (int, float)) and 0 < sample <= 1):
        raise ValueError(f"sample must be a fraction in (0, 1], got {sample!r}")
    with using_store(store) as st:
        return _verify(st, sample, seed, progress)


def _records(st, problems: list) -> list[str]:
    """The refs of all dataset versions; a damaged record is added to ``problems``."""
    refs = []
    for name in st.list_names(KIND):
        before = None  # the record of the number before, when it is a sound version
        for n in st.list_numbers(KIND, name):
            ref, key = f"{name}:v{n}", st.record_key(KIND, name, n)
            rec = None
            try:
                rec = st.read_record(KIND, name, n)
                detail = record_problem(rec, name, n)
            except UnknownVersion:
                continue  # deleted (by gc) since it was listed
            except (StoreError, OSError, AttributeError, TypeError) as exc:
                detail = str(exc)  # (a record that is no object fails in read_record)
            if not detail and not is_tombstone(rec):
                detail = agreement_problem(st, rec, before if before and
                                           before["number"] == n - 1 else None)
            refs.append(ref)
            before = rec if not detail and not is_tombstone(rec) else None
            if detail:
                problems.append({"problem": "version record damaged", "path": st.fs.path(key),
                                 "versions": [ref], "detail": detail})
    return refs


#: fields every version record has had since format_version 1 (beyond what readers need)
_WRITTEN = ("format_version", "kind", "parent", "message", "created", "source", "user", "host",
            "pid")
_TYPES = {"format_version": lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 1,
          "created": lambda x: isinstance(x, str), "source": lambda x: isinstance(x, str),
          "user": lambda x: x is None or isinstance(x, str),
          "host": lambda x: x is None or isinstance(x, str),
          "pid": lambda x: x is None or (isinstance(x, int) and not isinstance(x, bool)),
          "slurm_job_id": lambda x: x is None or isinstance(x, (str, int)),
          "skipped": lambda x: isinstance(x, list),
          "new_bytes": lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 0}


def agreement_problem(st, rec: dict, before: dict | None) -> str | None:
    """What in a well-formed version record disagrees with what it describes, or None:
    a field every record has is missing or of the wrong type, the manifest reference (its id is the file id of its chunk list, its size their
    total), the version id (of the manifest's rows), the file count (its rows), the
    format, and the parent (the id of version ``number - 1``, when that record is
    given). A manifest that cannot be read is left to the store's check, which names
    the chunk."""
    missing = [k for k in _WRITTEN if k not in rec]
    if missing:
        return f"it lacks the field(s) {', '.join(missing)} that every version record has"
    wrong = [k for k, ok in _TYPES.items() if k in rec and not ok(rec[k])]
    if wrong or rec["kind"] != KIND:
        return f"its field(s) {', '.join(wrong or ['kind'])} have the wrong type or value"
    blob = rec["manifest"]
    fmt = rec.get("format", "files")
    if fmt not in ("files", "table"):
        return f"its format {str(fmt)[:40]!r} is neither 'files' nor 'table'"
    pairs = [(bytes.fromhex(c), n) for c, n in blob["chunks"]]
    if sum(n for _, n in pairs) != blob["size"]:
        return (f"its manifest reference claims {blob['size']} bytes, its chunks hold "
                f"{sum(n for _, n in pairs)}")
    if file_id(pairs).hex() != blob["id"]:
        return "its manifest reference's id is not the id of its chunk list"
    if before is not None and rec.get("parent") != before["id"]:
        return f"its parent is not the id of {rec['name']}:v{rec['number'] - 1}"
    try:
        man = mf.from_bytes(st.get_blob(blob), f"manifest of {rec['name']}:v{rec['number']}")
    except StoreError:
        return None  # the store's check names the damaged chunk
    if mf.version_id(man) != rec["id"]:
        return "its id is not the id of its manifest's files"
    if man.num_rows != rec["files"]:
        return f"it counts {rec['files']} files, its manifest lists {man.num_rows}"
    if fmt == "table" and man.column("path").to_pylist() != ["data.parquet"]:
        return "it is a table version whose manifest is not one data.parquet"
    return None


def _root_records(st, problems: list) -> None:
    """Each root provider record (``roots/<name>.json``) parses and names itself; the
    built-in ones hold exactly what this mlops-engine writes."""
    for f in st.fs.list(ROOTS_DIR):
        name = f[:-5] if f.endswith(".json") else ""
        if not name.isidentifier():
            continue
        key = f"{ROOTS_DIR}/{f}"
        try:
            rec = json.loads(st.fs.read_bytes(key))
        except (ValueError, OSError) as exc:
            rec, detail = None, f"it does not parse: {exc}"
        if rec is not None:
            detail = None
            want = {"format": "mlops-engine root provider", "name": name,
                    "group": ENTRY_POINT_GROUP}
            if name in IMPLIED:
                want.update(entry_point=IMPLIED[name][1], distribution=DISTRIBUTION)
            if not isinstance(rec, dict):
                detail = "it is not a JSON object"
            else:
                bad = sorted(k for k, v in want.items() if rec.get(k) != v)
                v = rec.get("format_version")
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    bad.append("format_version")
                elif v > FORMAT_VERSION and not bad:
                    continue  # a newer record: its fields are not this version's to judge
                if bad:
                    detail = f"its field(s) {', '.join(bad)} do not hold what was recorded"
        if detail:
            problems.append({"problem": "root provider record damaged", "path": st.fs.path(key),
                             "versions": [], "detail": detail})


def config_problem(st) -> str | None:
    """What in the store's ``config.json`` is not what this mlops-engine writes, beyond
    what opening the store checks: the format name, the chunking algorithm and gear
    table, the id hash, the pack size. (Chunk sizes that are still valid cannot be told
    from the original: they steer only how new data is cut.)"""
    from ..kernels.gear import GEAR_CONTEXT
    from ..store import crypto

    cfg = st.config
    bad = []
    if cfg.get("format") != "mlops-engine store":
        bad.append("format")
    if not isinstance(cfg.get("created"), str):
        bad.append("created")
    c = cfg.get("chunking")
    if not isinstance(c, dict) or c.get("algorithm") != "gear-cdc" or c.get("gear") != GEAR_CONTEXT:
        bad.append("chunking")
    if cfg.get("hash") != ("blake3-256" if st.cipher is None else crypto.ID_HASH):
        bad.append("hash")
    n = cfg.get("pack_max_bytes")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1024:
        bad.append("pack_max_bytes")
    if not bad:
        return None
    return f"its field(s) {', '.join(bad)} do not hold what mlops-engine writes"


def _verify(st, sample, seed, progress):
    problems: list[dict] = []
    detail = config_problem(st)
    if detail:
        problems.append({"problem": "store config damaged", "path": st.fs.path("config.json"),
                         "versions": [], "detail": detail})
    all_refs = _records(st, problems)
    _root_records(st, problems)
    chk = verify_store(st, sample=sample, seed=seed, progress=progress, problems=problems)
    rep = VerifyReport(ok=not problems, packs=chk.packs, chunks_checked=chk.chunks_checked,
                       bytes_checked=chk.bytes_checked, versions=len(all_refs), problems=problems)
    damaged = {r for p in problems for r in p.get("versions", [])}
    # registry versions (engine.registry) whose content lies in this store come last
    rep.damaged_versions = [r for r in all_refs if r in damaged] + sorted(damaged - set(all_refs))
    rep.intact_versions = [r for r in all_refs if r not in damaged]
    return rep
