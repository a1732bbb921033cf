"""Kind hooks: what the layers above tell the registry about the content of a kind.

The registry cannot check, recognize or load a profile itself: profiles belong to
``engine.monitor``, a layer above it that it never imports. So the layer that
knows a format hands the registry a *hooks object* for its kind, with any of:

- ``validate(data: bytes)``: raise ``ValueError`` (or ``TypeError``) saying what is
  wrong with content given for the kind; the registry turns that into
  :class:`~engine.registry.InvalidContent` before anything is stored;
- ``claims(obj) -> bool``, ``dumps(obj) -> bytes`` and ``filename``: whether
  ``register(name, obj)`` is given an object of this kind (asked only about objects
  with a ``to_bytes()`` method), its bytes, and the stored file's default name;
- ``load(registry, ref)``: the object a version of the kind holds.

The hooks are found by one of two routes:

- an entry point in the group ``mlops_engine.kinds`` (name: the kind, value: the
  hooks object), loaded with :mod:`importlib.metadata` the first time that kind is
  needed. mlops-engine declares ``profile = engine.monitor.registry_hooks:PROFILE``,
  so a profile is checked even in a program that never imported ``engine.monitor``;
  other packages add their own;
- :func:`register_kind`, at run time.

Plain validator functions work as before: :func:`register_validator`, and the
entry point group ``mlops_engine.validators`` (name: the kind, value: the function).

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

KINDS_GROUP = "mlops_engine.kinds"
#: Validator functions by kind (the older, narrower route; still read).
ENTRY_POINT_GROUP = "mlops_engine.validators"

#: What the content of a kind must be, for the kinds that have a format. Registering one
#: of them fails when no validator can be found, rather than storing unchecked content.
EXPECTED = {"profile": "an mlops-engine profile (a Profile, its to_bytes() bytes, or a file "
                       "written by Profile.save or 'mlops monitor profile -o')"}

# kind -> hooks objects / validators. A kind's key exists once its entry points were loaded.
_HOOKS: dict[str, list] = {}
_VALIDATORS: dict[str, list] = {}
_LOAD_ERRORS: dict[str, list[str]] = {}


def _load_group(group: str, kind: str) -> list:
    from importlib.metadata import entry_points

    out = []
    for ep in entry_points(group=group, name=kind):
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break registering
            msg = f"entry point {ep.name} = {ep.value} failed to load: {exc}"
            _LOAD_ERRORS.setdefault(kind, []).append(msg)
            warnings.warn(f"registry kind hook {msg}", stacklevel=4)
            continue
        if obj not in out:
            out.append(obj)
    return out


def kind_hooks(kind: str) -> list:
    """The hooks objects of ``kind`` (its ``mlops_engine.kinds`` entry points loaded on first call)."""
    if kind not in _HOOKS:
        _HOOKS[kind] = _load_group(KINDS_GROUP, kind)
    return list(_HOOKS[kind])


def _for_kind(kind: str) -> list:
    if kind not in _VALIDATORS:
        fns: list = []
        _VALIDATORS[kind] = fns
        for fn in _load_group(ENTRY_POINT_GROUP, kind) + [
                getattr(h, "validate", None) for h in kind_hooks(kind)]:
            if fn is not None and fn not in fns:
                fns.append(fn)
    return _VALIDATORS[kind]


def _check_kind(kind) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")


def register_kind(kind: str, hooks) -> None:
    """Use ``hooks`` (an object with ``validate``, ``claims``/``dumps`` and/or ``load``,
    see the module docstring) for ``kind``. Registering the same object twice has no
    further effect.

    Examples
    --------
    >>> class Onnx:
    ...     @staticmethod
    ...     def validate(data):
    ...         if not data.startswith(b"ONNX"):
    ...             raise ValueError("expected an ONNX file")
    >>> register_kind("model", Onnx)  # doctest: +SKIP
    """
    _check_kind(kind)
    if not any(callable(getattr(hooks, m, None)) for m in ("validate", "claims", "load")):
        raise TypeError(f"hooks must have a validate, claims or load method, got "
                        f"{type(hooks).__name__}")
    kind_hooks(kind)
    if hooks not in _HOOKS[kind]:
        _HOOKS[kind].append(hooks)
        fn = getattr(hooks, "validate", None)
        if fn is not None and kind in _VALIDATORS and fn not in _VALIDATORS[kind]:
            _VALIDATORS[kind].append(fn)


def register_validator(kind: str, fn) -> None:
    """Check every future registration of ``kind`` with ``fn(data: bytes)``.

    ``fn`` raises ``ValueError`` or ``TypeError`` when ``data`` is not valid content of
    ``kind``. Registering the same function twice has no further effect.
    """
    _check_kind(kind)
    if not callable(fn):
        raise TypeError(f"fn must be callable (it is given the content's bytes), "
                        f"got {type(fn).__name__}")
    fns = _for_kind(kind)
    if fn not in fns:
        fns.append(fn)


def validators_for(kind: str) -> list:
    """The validators of ``kind`` (its entry points loaded on first call)."""
    return list(_for_kind(kind))


def claiming_kind(obj) -> tuple[str, object] | None:
    """``(kind, hooks)`` of the first kind whose hooks claim ``obj``, or None."""
    for kind in KINDS:
        for h in kind_hooks(kind):
            claims = getattr(h, "claims", None)
            if claims is not None and claims(obj):
                return kind, h
    return None


def kind_loader(kind: str):
    """The ``load(registry, ref)`` function that the hooks of ``kind`` give.

    Raises RegistryError naming what to install when none does.
    """
    for h in kind_hooks(kind):
        load = getattr(h, "load", None)
        if load is not None:
            return load
    why = "; ".join(_LOAD_ERRORS.get(kind, [])) or "none is installed"
    raise RegistryError(f"cannot load {kind} content: no loader found ({why}); reinstall "
                        f"mlops-engine (its '{KINDS_GROUP}' entry points)")


def check(kind: str, data, where: str, name: str) -> None:
    """Run ``kind``'s validators on ``data`` (``where`` says what it is, ``name`` the
    artifact); raises :class:`InvalidContent` naming the kind and what was expected.

    A kind with a format (:data:`EXPECTED`) and no validator is an error, not a pass.
    """
    fns = _for_kind(kind)
    if not fns and kind in EXPECTED:
        why = "; ".join(_LOAD_ERRORS.get(kind, [])) or "none is installed"
        raise RegistryError(f"cannot check {kind} content: no validator found ({why}); "
                            f"reinstall mlops-engine (its '{KINDS_GROUP}' entry points) "
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
