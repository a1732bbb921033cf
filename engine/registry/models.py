"""``ModelVersion`` and the helpers that turn index rows and user input into versions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..store import Store
from .errors import RegistryError

_VCOLS = ("name, version, kind, id, format, size, files, created, user, host, run_id, metrics, "
          "params, tags, message, content, deleted, seq")


@dataclass
class ModelVersion:
    """One immutable version of an artifact (model, checkpoint, dataset or profile)."""

    name: str
    version: int
    kind: str
    id: str
    format: str
    size: int
    files: int
    created: str
    user: str
    host: str
    run_id: str | None
    metrics: dict
    params: dict
    tags: dict
    message: str | None
    content: dict = field(repr=False)
    deleted: bool = False
    seq: int = 0
    aliases: list = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("name", "version", "kind", "id", "format", "size",
                                           "files", "created", "user", "host", "run_id",
                                           "metrics", "params", "tags", "message", "aliases")}
        d["ref"] = self.ref
        return d


def _version_from_row(row) -> ModelVersion:
    r = list(row)
    for i in (11, 12, 13, 15):
        r[i] = json.loads(r[i]) if r[i] else ({} if i != 15 else None)
    r[16] = bool(r[16])
    return ModelVersion(*r)


def _single_file(st: Store, man, label: str) -> tuple[str, bytes]:
    from ..chunking import file_id

    cols = man.to_pydict()
    if len(cols["path"]) != 1 or cols["kind"][0] != "file":
        n = len(cols["path"])
        raise RegistryError(f"{label} holds {n} entr{'y' if n == 1 else 'ies'}, not one file; "
                            f"write its files out with Registry.pull (CLI: mlops model pull "
                            f"{label} DEST)")
    chunks = cols["chunks"][0]
    data = b"".join(st.read_chunk(c["id"]) for c in chunks)
    if file_id((c["id"], c["length"]) for c in chunks) != cols["file_id"][0] or \
            len(data) != cols["size"][0]:
        from ..store import StoreCorruption

        raise StoreCorruption(f"{label}: stored bytes do not match the file id")
    return cols["path"][0], data


def is_profile(obj) -> bool:
    """A monitor ``Profile``, recognized without importing ``engine.monitor`` (and numba)."""
    return type(obj).__name__ == "Profile" and hasattr(obj, "to_bytes")


def _default_kind(obj) -> str:
    if is_profile(obj):
        return "profile"
    if type(obj).__name__ == "Version" and type(obj).__module__.startswith("engine.data"):
        return "dataset"
    return "model"


def _json_dict(d, what: str) -> dict:
    from .runs import _json_value

    if d is None:
        return {}
    if not isinstance(d, dict):
        raise TypeError(f"{what} must be a dict, got {type(d).__name__}")
    return {str(k): _json_value(v, f"{what}[{k!r}]") for k, v in d.items()}


def _check_metrics(m) -> dict:
    out = {}
    for k, v in _json_dict(m, "metrics").items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"metrics[{k!r}] must be a number, got {v!r}")
        out[k] = float(v) if v == v and abs(v) != float("inf") else None
    return out
