"""``verify``: check every dataset version record, then the store under them.

Damage never stops the check: a version record that does not parse is reported
here; what the store finds (indexes, packs, chunks, manifests, chunks a version
needs that no pack holds; :func:`engine.store.verify.verify_store`) follows. Each
problem names the file (``path``) and the versions it affects.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from ..store import StoreError, UnknownVersion
from ..store.verify import verify_store
from .ingest import using_store
from .version import KIND, record_problem


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
        for n in st.list_numbers(KIND, name):
            ref, key = f"{name}:v{n}", st.record_key(KIND, name, n)
            try:
                detail = record_problem(st.read_record(KIND, name, n), name, n)
            except UnknownVersion:
                continue  # deleted (by gc) since it was listed
            except (StoreError, OSError) as exc:
                detail = str(exc)
            refs.append(ref)
            if detail:
                problems.append({"problem": "version record damaged", "path": st.fs.path(key),
                                 "versions": [ref], "detail": detail})
    return refs


def _verify(st, sample, seed, progress):
    problems: list[dict] = []
    all_refs = _records(st, problems)
    chk = verify_store(st, sample=sample, seed=seed, progress=progress, problems=problems)
    rep = VerifyReport(ok=not problems, packs=chk.packs, chunks_checked=chk.chunks_checked,
                       bytes_checked=chk.bytes_checked, versions=len(all_refs), problems=problems)
    damaged = {r for p in problems for r in p.get("versions", [])}
    # registry versions (engine.registry) whose content lies in this store come last
    rep.damaged_versions = [r for r in all_refs if r in damaged] + sorted(damaged - set(all_refs))
    rep.intact_versions = [r for r in all_refs if r not in damaged]
    return rep
