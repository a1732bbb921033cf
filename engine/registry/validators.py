"""Content validators: a kind whose content has a format is checked when it is registered.

The registry cannot check a profile itself: profiles belong to ``engine.monitor``, a
layer above it that it never imports. So the layer that knows a format hands the
registry a function, by one of two routes:

- an entry point in the group ``mlops_engine.validators`` (name: the kind, value: the
  function), loaded with :mod:`importlib.metadata` the first time that kind is
  registered. mlops-engine declares ``profile =
  engine.monitor.registry_hooks:validate_profile``, so a profile is checked even in
  a program that never imported ``engine.monitor``; other packages add their own;
- :func:`register_validator`, at run time.

A validator takes the content's bytes (the bytes given, or the one file's) and
raises ``ValueError`` (or ``TypeError``) saying what is wrong; the registry turns that
into :class:`~engine.registry.InvalidContent` before anything is stored.

Examples
--------
>>> from engine.registry import register_validator
>>> def onnx_only(data):
...     if not data.startswith(b"ONNX"):
...         raise ValueError("expected an ONNX file")
>>> register_validator("model", onnx_only)  # doctest: +SKIP
"""

from __future__ import annotations

import warnings

from .errors import InvalidContent, RegistryError
from .refs import KINDS

ENTRY_POINT_GROUP = "mlops_engine.validators"

#: What the content of a kind must be, for the kinds that have a format. Registering one
#: of them fails when no validator can be found, rather than storing unchecked content.
EXPECTED = {"profile": "an mlops-engine profile (a Profile, its to_bytes() bytes, or a file "
                       "written by Profile.save or 'mlops monitor profile -o')"}

# kind -> validators. A kind's key exists once its entry points were loaded.
_VALIDATORS: dict[str, list] = {}
_LOAD_ERRORS: dict[str, list[str]] = {}


def _for_kind(kind: str) -> list:
    if kind not in _VALIDATORS:
        from importlib.metadata import entry_points

        fns: list = []
        _VALIDATORS[kind] = fns
        for ep in entry_points(group=ENTRY_POINT_GROUP, name=kind):
            try:
                fn = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break registering
                msg = f"entry point {ep.name} = {ep.value} failed to load: {exc}"
                _LOAD_ERRORS.setdefault(kind, []).append(msg)
                warnings.warn(f"registry validator {msg}", stacklevel=3)
                continue
            if fn not in fns:
                fns.append(fn)
    return _VALIDATORS[kind]


def register_validator(kind: str, fn) -> None:
    """Check every future registration of ``kind`` with ``fn(data: bytes)``.

    ``fn`` raises ``ValueError`` or ``TypeError`` when ``data`` is not valid content of
    ``kind``. Registering the same function twice has no further effect.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not callable(fn):
        raise TypeError(f"fn must be callable (it is given the content's bytes), "
                        f"got {type(fn).__name__}")
    fns = _for_kind(kind)
    if fn not in fns:
        fns.append(fn)


def validators_for(kind: str) -> list:
    """The validators of ``kind`` (its entry points loaded on first call)."""
    return list(_for_kind(kind))


def check(kind: str, data, where: str, name: str) -> None:
    """Run ``kind``'s validators on ``data`` (``where`` says what it is, ``name`` the
    artifact); raises :class:`InvalidContent` naming the kind and what was expected.

    A kind with a format (:data:`EXPECTED`) and no validator is an error, not a pass.
    """
    fns = _for_kind(kind)
    if not fns and kind in EXPECTED:
        why = "; ".join(_LOAD_ERRORS.get(kind, [])) or "none is installed"
        raise RegistryError(f"cannot check {kind} content: no validator found ({why}); "
                            f"reinstall mlops-engine (its '{ENTRY_POINT_GROUP}' entry points) "
                            "or import engine.monitor.registry_hooks")
    if fns and not isinstance(data, bytes):
        data = bytes(data)
    for fn in fns:
        try:
            fn(data)
        except (ValueError, TypeError) as exc:
            raise InvalidContent(f"cannot register {name!r} as a {kind} ({where}): {exc}; "
                                 f"expected {expected(kind)}") from None


def expected(kind: str) -> str:
    """What the content of ``kind`` must be, in words."""
    return EXPECTED.get(kind, f"valid {kind} content")
