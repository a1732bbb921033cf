"""``ModelVersion`` and the helpers that turn index rows and user input into versions.

The helpers are public within the registry package (its modules share them) but are
not part of ``engine.registry``'s API: ``VERSION_COLUMNS`` / :func:`version_from_row`
(an index row to a ModelVersion), :func:`json_value` / :func:`json_dict` /
:func:`check_metrics` (user input to JSON), :func:`default_kind` /
:func:`object_kind` (what an object is registered as) and :func:`single_file`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..store import Store
from .errors import RegistryError

#: The index columns of a version, in :class:`ModelVersion` field order.
VERSION_COLUMNS = ("name, version, kind, id, format, size, files, created, user, host, run_id, "
                   "metrics, params, tags, message, content, deleted, seq")


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


def version_from_row(row) -> ModelVersion:
    """The :class:`ModelVersion` of an index row selected as ``VERSION_COLUMNS``."""
    r = list(row)
    for i in (11, 12, 13, 15):
        r[i] = json.loads(r[i]) if r[i] else ({} if i != 15 else None)
    r[16] = bool(r[16])
    return ModelVersion(*r)


def single_file(st: Store, man, label: str) -> tuple[str, bytes]:
    """``(path, bytes)`` of the one file of manifest ``man`` (verified); RegistryError if it
    holds more or other entries."""
    from ..store.pipeline import file_id

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


def object_kind(obj) -> str | None:
    """The kind whose hooks claim ``obj`` (a monitor ``Profile``: ``"profile"``), or None.

    Objects of the layers above are recognized by their own layer's kind hooks
    (:mod:`.validators`), never by the registry. Only objects with a ``to_bytes()``
    method are asked about, so registering bytes, files or state dicts loads no hooks.
    """
    if not callable(getattr(obj, "to_bytes", None)):
        return None
    from .validators import claiming_kind

    found = claiming_kind(obj)
    return found[0] if found else None


def is_profile(obj) -> bool:
    """Deprecated: use ``object_kind(obj) == "profile"`` (the monitor's kind hooks decide)."""
    return object_kind(obj) == "profile"


def default_kind(obj) -> str:
    """The kind ``register(name, obj)`` uses when none is given."""
    from ..data.version import Version as DataVersion

    if isinstance(obj, DataVersion):
        return "dataset"
    return object_kind(obj) or "model"


def json_value(value, what: str):
    """``value`` as JSON-like data (NumPy and torch scalars unwrapped); TypeError naming ``what``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # NumPy / torch scalars
        return value.item()
    if isinstance(value, (list, tuple)):
        return [json_value(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v, what) for k, v in value.items()}
    raise TypeError(f"{what} must be JSON-like (None, bool, number, string, list, dict), "
                    f"got {type(value).__name__}")


def json_dict(d, what: str) -> dict:
    """A dict of JSON-like values with string keys (``{}`` for None); errors name ``what``."""
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise TypeError(f"{what} must be a dict, got {type(d).__name__}")
    return {str(k): json_value(v, f"{what}[{k!r}]") for k, v in d.items()}


def check_metrics(m) -> dict:
    """Metrics as ``{str: float or None}`` (NaN and infinities become None)."""
    out = {}
    for k, v in json_dict(m, "metrics").items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"metrics[{k!r}] must be a number, got {v!r}")
        out[k] = float(v) if v == v and abs(v) != float("inf") else None
    return out
