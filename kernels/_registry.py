"""One registry of backends per kernel.

A kernel (``"cdc_scan"``, later ``"ks"``, ``"histogram"``, ...) maps backend
names to lazy loaders. Loaders run on first use, so ``import engine`` never
imports numba, cupy or a compiled extension it does not need.

Backends, fastest first: ``cuda`` (CuPy), ``cython``, ``numba`` (CPU) and
``reference`` (NumPy, always there). ``get(kernel)`` returns the fastest usable
one; a ``backend=`` keyword, or the ``MLOPS_BACKEND`` environment variable,
forces one:

* ``MLOPS_BACKEND=numba`` forces numba for every kernel that has a numba
  backend; kernels without one keep their default.
* ``MLOPS_BACKEND=cdc_scan=reference,ks=numba`` forces per kernel.

A forced backend that cannot load raises :class:`BackendUnavailable` with the
exact ``pip install`` that fixes it; nothing falls back silently.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

PRIORITY = ("cuda", "cython", "numba", "reference")
ENV_VAR = "MLOPS_BACKEND"


class BackendUnavailable(ImportError):
    """A backend was asked for (or is the only one) but cannot be loaded here."""


@dataclass
class _Impl:
    kernel: str
    backend: str
    target: str | Callable[[], object]
    install_hint: str | None
    _loaded: object = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)
    _tried: bool = field(default=False, repr=False)

    def load(self) -> object:
        if not self._tried:
            with _LOCK:
                if not self._tried:
                    try:
                        if callable(self.target):
                            self._loaded = self.target()
                        else:
                            mod, _, attr = self.target.partition(":")
                            obj = importlib.import_module(mod)
                            self._loaded = getattr(obj, attr) if attr else obj
                    except Exception as exc:  # missing module, no device, failed build
                        self._error = f"{type(exc).__name__}: {exc}"
                    self._tried = True
        if self._error is not None:
            hint = f"; install it with: {self.install_hint}" if self.install_hint else ""
            raise BackendUnavailable(
                f"backend {self.backend!r} of kernel {self.kernel!r} is not usable "
                f"({self._error}){hint}"
            )
        return self._loaded


_LOCK = threading.RLock()
_KERNELS: dict[str, dict[str, _Impl]] = {}


def register(
    kernel: str,
    backend: str,
    target: str | Callable[[], object],
    install_hint: str | None = None,
) -> None:
    """Register ``target`` (``"module:attr"`` or a zero-argument loader) as ``backend`` of ``kernel``."""
    if backend not in PRIORITY:
        raise ValueError(f"backend must be one of {PRIORITY}, got {backend!r}")
    _KERNELS.setdefault(kernel, {})[backend] = _Impl(kernel, backend, target, install_hint)


def kernels() -> list[str]:
    """Names of all registered kernels."""
    return sorted(_KERNELS)


def backends(kernel: str) -> list[str]:
    """Backends registered for ``kernel``, fastest first (usable or not)."""
    impls = _impls(kernel)
    return [b for b in PRIORITY if b in impls]


def usable_backends(kernel: str) -> list[str]:
    """Backends of ``kernel`` that load on this machine, fastest first."""
    out = []
    for b in backends(kernel):
        try:
            _KERNELS[kernel][b].load()
        except BackendUnavailable:
            continue
        out.append(b)
    return out


def forced_backend(kernel: str) -> str | None:
    """The backend that ``MLOPS_BACKEND`` forces for ``kernel``, if any."""
    spec = os.environ.get(ENV_VAR, "").strip()
    if not spec:
        return None
    plain = None
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            k, _, b = part.partition("=")
            if k.strip() == kernel:
                return _check_name(b.strip(), f"{ENV_VAR} ({spec!r})")
        else:
            plain = _check_name(part, f"{ENV_VAR} ({spec!r})")
    if plain is not None and plain in _impls(kernel):
        return plain
    return None


def resolve(kernel: str, backend: str | None = None) -> str:
    """Name of the backend that ``get(kernel, backend)`` would use."""
    impls = _impls(kernel)
    if backend is None:
        backend = forced_backend(kernel)
    if backend is not None:
        _check_name(backend, "backend")
        if backend not in impls:
            raise ValueError(
                f"kernel {kernel!r} has no {backend!r} backend; it has {backends(kernel)}"
            )
        impls[backend].load()  # raises BackendUnavailable with the install hint
        return backend
    errors = []
    for b in backends(kernel):
        try:
            impls[b].load()
            return b
        except BackendUnavailable as exc:
            errors.append(str(exc))
    raise BackendUnavailable(f"no usable backend for kernel {kernel!r}: " + "; ".join(errors))


def get(kernel: str, backend: str | None = None) -> object:
    """The implementation of ``kernel``: the fastest usable backend, or the forced one."""
    name = resolve(kernel, backend)
    return _KERNELS[kernel][name].load()


def _impls(kernel: str) -> dict[str, _Impl]:
    try:
        return _KERNELS[kernel]
    except KeyError:
        raise ValueError(f"unknown kernel {kernel!r}; known kernels: {kernels()}") from None


def _check_name(name: str, what: str) -> str:
    if name not in PRIORITY:
        raise ValueError(f"{what}: backend must be one of {PRIORITY}, got {name!r}")
    return name
