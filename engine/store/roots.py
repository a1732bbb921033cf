"""Root providers: how the layers above the store tell its ``gc`` and ``verify`` what is live.

The store holds chunks; which of them are still needed is known only to the layers
that wrote versions (datasets, registry artifacts), and the store never imports
them. Each such layer hands the store a *root provider*: a function
``provider(store)`` that yields ``(label, chunk_ids)`` for every live root, where
``label`` names it in reports (``"imagenet:v3"``) and ``chunk_ids`` is an iterable
of 32-byte chunk ids. Listing the roots must not fail on one damaged root: do the
reading inside ``chunk_ids`` (a generator), so a ``StoreError`` raised while
iterating it is charged to that root alone.

A provider that has ever written to a store is recorded in it (``roots/<name>.json``,
see docs/formats.md) by :func:`record_provider`, before its first write. ``gc`` then
loads every recorded provider, by name, from the entry point group
``mlops_engine.roots`` (or from :func:`register_root_provider` in this process), and
refuses to collect when one cannot be loaded, since it could not tell what that
provider keeps alive. A process that imported only the dataset layer thus still
keeps the registry's content. Stores written before records existed imply the
built-in providers from their directories (``datasets/``, ``registry/log/``).

Examples
--------
>>> import tempfile
>>> from engine.store import Store
>>> from engine.store.roots import record_provider, recorded_providers
>>> st = Store(tempfile.mkdtemp() + "/s")
>>> record_provider(st, "data", entry_point="engine.data.roots:live_roots")
>>> sorted(recorded_providers(st))
['data']
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterable

from .errors import StoreError

ENTRY_POINT_GROUP = "mlops_engine.roots"
ROOTS_DIR = "roots"
FORMAT_VERSION = 1
DISTRIBUTION = "mlops-engine"

#: Providers implied by what a store holds, for stores written before ``roots/``
#: existed: name -> (directory that shows it wrote here, its entry point).
IMPLIED = {
    "data": ("datasets", "engine.data.roots:live_roots"),
    "registry": ("registry/log", "engine.registry.roots:live_roots"),
}

RootProvider = Callable[[object], Iterable[tuple[str, Iterable[bytes]]]]

_REGISTERED: dict[str, RootProvider] = {}
_LOADED: dict[str, RootProvider] = {}
_RECORDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # store -> names it holds


class RootProviderError(StoreError):
    """A provider recorded in the store cannot be loaded, so what is live is unknown."""


def _check_name(name) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"provider name must be a Python identifier (it names an entry point), "
                         f"got {name!r}")
    return name


def _key(name: str) -> str:
    return f"{ROOTS_DIR}/{name}.json"


def register_root_provider(name: str, fn: RootProvider) -> None:
    """Use ``fn`` for the provider ``name`` in this process (instead of its entry point).

    For a source tree used without installing it, and for tests; an installed
    package declares an entry point in the group ``mlops_engine.roots`` instead,
    which works in every process.

    Examples
    --------
    >>> register_root_provider("nothing", lambda store: [])
    """
    _check_name(name)
    if not callable(fn):
        raise TypeError(f"fn must be callable as fn(store), got {type(fn).__name__}")
    _REGISTERED[name] = fn


def record_provider(store, name: str, *, entry_point: str,
                    distribution: str = DISTRIBUTION) -> None:
    """Record in ``store`` that the provider ``name`` keeps content there.

    Call it before the provider's first write to a store: from then on, ``gc`` in
    any process refuses to run without that provider. ``entry_point``
    (``"module:function"``) and ``distribution`` (the pip package declaring it) go
    into the record so that the refusal can say what to install. Costs one
    existence check per store object, then nothing.
    """
    _check_name(name)
    done = _RECORDED.setdefault(store, set())
    if name in done:
        return
    key = _key(name)
    if not store.fs.exists(key):
        body = {"format": "mlops-engine root provider", "format_version": FORMAT_VERSION,
                "name": name, "group": ENTRY_POINT_GROUP, "entry_point": entry_point,
                "distribution": distribution}
        store.fs.makedirs(ROOTS_DIR)
        store.fs.create_exclusive(key, json.dumps(body, indent=1, sort_keys=True).encode())
    done.add(name)


def recorded_providers(store) -> dict[str, dict]:
    """The providers that keep content in ``store``: name -> its record (implied ones too)."""
    out: dict[str, dict] = {}
    for f in store.fs.list(ROOTS_DIR):
        name = f[:-5] if f.endswith(".json") else ""
        if not name.isidentifier():
            continue
        try:
            rec = json.loads(store.fs.read_bytes(_key(name)))
        except (ValueError, OSError) as exc:
            rec = {"damaged": str(exc)}  # still recorded: its content must be kept
        out[name] = rec if isinstance(rec, dict) else {"damaged": "not a JSON object"}
    for name, (directory, ep) in IMPLIED.items():
        if name not in out and store.fs.list(directory):
            out[name] = {"name": name, "group": ENTRY_POINT_GROUP, "entry_point": ep,
                         "distribution": DISTRIBUTION, "implied": True}
    return out


def _load(name: str) -> RootProvider:
    fn = _REGISTERED.get(name) or _LOADED.get(name)
    if fn is not None:
        return fn
    from importlib.metadata import entry_points

    eps = list(entry_points(group=ENTRY_POINT_GROUP, name=name))
    if not eps:
        raise LookupError(f"no entry point {name!r} in group {ENTRY_POINT_GROUP!r} is installed")
    try:
        fn = eps[0].load()
    except Exception as exc:  # noqa: BLE001 - any failure means: cannot be loaded
        raise LookupError(f"entry point {eps[0].name} = {eps[0].value} failed to load: "
                          f"{type(exc).__name__}: {exc}") from None
    _LOADED[name] = fn
    return fn


def load_providers(store, problems: list | None = None) -> dict[str, RootProvider]:
    """Every provider recorded in ``store``, loaded; name -> function.

    Raises :class:`RootProviderError` naming the provider and what to install when
    one cannot be loaded. With ``problems`` (a list, as ``verify`` keeps one), that is
    appended there as ``{"problem": "root provider unavailable", ...}`` instead.
    """
    out = {}
    for name, rec in recorded_providers(store).items():
        try:
            out[name] = _load(name)
        except LookupError as exc:
            where = rec.get("entry_point", "?")
            dist = rec.get("distribution", "?")
            msg = (f"the store at {store.root} holds content of root provider {name!r} "
                   f"(recorded in {ROOTS_DIR}/{name}.json), which cannot be loaded: {exc}; "
                   f"install the pip package {dist!r} (its entry point {name} = {where} in group "
                   f"{ENTRY_POINT_GROUP!r}), or call engine.store.register_root_provider"
                   f"({name!r}, fn) first")
            if problems is None:
                raise RootProviderError(f"cannot tell which chunks are live: {msg}; "
                                        "nothing was deleted") from None
            problems.append({"problem": "root provider unavailable", "provider": name,
                             "detail": msg})
    return out


def live_chunks(store, providers: dict | None = None, problems: list | None = None,
                reported: Iterable[str] = ()) -> dict[bytes, list[str]]:
    """chunk id -> labels of the live roots that use it, over every provider.

    Without ``problems``, an error reading a root raises (``gc``: when in doubt,
    keep). With it (``verify``), the root is reported as ``manifest unreadable``
    there, unless its label is in ``reported`` (the caller has reported it already),
    and the walk goes on.
    """
    if providers is None:
        providers = load_providers(store, problems)
    reported = set(reported)
    used: dict[bytes, list[str]] = {}
    for fn in providers.values():
        for label, ids in fn(store):
            try:
                for cid in ids:
                    labels = used.setdefault(cid, [])
                    if not labels or labels[-1] != label:
                        labels.append(label)
            except StoreError as exc:
                if problems is None:
                    raise
                if label not in reported:
                    problems.append({"problem": "manifest unreadable", "versions": [label],
                                     "detail": str(exc)})
    return used


def live_set(store, providers: dict | None = None, ignore: dict | None = None) -> set[bytes]:
    """The ids of every chunk a live root uses (``gc``'s question; raises when unsure).

    ``ignore`` maps a provider's name to labels of its roots to leave out (the
    versions a dry run would have deleted).
    """
    if providers is None:
        providers = load_providers(store)
    ignore = ignore or {}
    live: set[bytes] = set()
    for name, fn in providers.items():
        skip = ignore.get(name, ())
        for label, ids in fn(store):
            if label not in skip:
                live.update(ids)
    return live
