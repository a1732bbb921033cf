"""One registry of backends per kernel, chosen per input.

Naming scheme
-------------
A *kernel* is one computation with one contract, for example ``psi`` (the
population stability index of packed count vectors) or ``cdc_candidates`` (the
cut candidates of a byte buffer). Its *id* is the name of what it computes in
the field's own words, lower snake case, without a family prefix or a
``_columns``/``_counts`` suffix: ``psi``, ``ks_2samp``, ``sort_packed``,
``cdc_scan``.

The id is also the function's name in every backend module, so that one
statistic has one name everywhere::

    kernel id   reference          numba                     cython        cuda (later)
    psi         reference.psi      drift_counts_numba.psi    -             drift_cuda.psi
    cdc_scan    reference.cdc_scan cdc_numba.cdc_scan        _cdc.cdc_scan -

Backend modules are named ``<family>_<backend>.py`` (``drift_numba.py``,
``cdc_numba.py``, later ``drift_cuda.py``), Cython ones ``_<family>.pyx``, and
every reference lives in ``reference.py``. The public functions that validate
and convert before calling a kernel (``engine.kernels.drift``) are named
``<id>_columns``, and ``<id>_counts_columns`` where the same statistic also
takes category counts (``psi_columns`` and ``psi_counts_columns`` both call
``psi``).

Registration
------------
One style, :func:`register_kernel`, called once per kernel in the module that
dispatches to it (``cdc.py``, ``drift.py``)::

    register_kernel("psi", reference=".reference", numba=".drift_counts_numba")

A backend is named by its module (relative to ``engine.kernels`` when it starts
with a dot); the registry imports it on first use and takes the function named
like the kernel, so ``import engine`` never imports numba, CuPy or a compiled
extension it does not need, and a function named otherwise cannot be
registered. (A zero-argument loader returning the function is accepted too, for
tests and for backends built at load time.) A later call adds backends to a
kernel that exists; a new kernel must bring its reference.

Selection
---------
Backends, fastest first: ``cuda`` (CuPy), ``cython``, ``numba`` (CPU),
``reference`` (NumPy, always there). A backend may declare a predicate over
the call's arguments, ``is_usable_for={"cuda": on_device}``, as scikit-learn's
dispatchers do: :func:`select` (and :func:`call`) return the fastest backend
that loads *and* is usable for these arguments. What can be cached is cached:
the list of loaded backends per kernel is built once, so a call costs a dict
lookup plus the predicates of the backends ahead of the first one without a
predicate.

A ``backend=`` keyword, or the ``MLOPS_BACKEND`` environment variable, forces
one backend:

* ``MLOPS_BACKEND=numba`` forces numba for every kernel that has a numba
  backend; kernels without one keep their default.
* ``MLOPS_BACKEND=cdc_scan=reference,ks_2samp=numba`` forces per kernel.

A forced backend that cannot load raises :class:`BackendUnavailable` with the
exact ``pip install`` that fixes it, and one that is not usable for the
arguments raises :class:`BackendNotApplicable`; nothing falls back silently.
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

PRIORITY = ("cuda", "cython", "numba", "reference")
ENV_VAR = "MLOPS_BACKEND"

# What a user runs when a backend cannot load.
INSTALL_HINTS = {
    "cuda": "pip install 'mlops-engine[gpu]'",
    "cython": "pip install --force-reinstall --no-binary mlops-engine mlops-engine "
              "(the compiled extension is missing; a C compiler is needed)",
    "numba": "pip install 'mlops-engine[numba]'",
}

# Kernel ids before the one-name scheme, resolved to the new ids with a
# DeprecationWarning for one release.
RENAMED = {
    "drift_sort_packed": "sort_packed",
    "drift_sort_segments": "sort_segments",
    "drift_bin_sorted": "bin_sorted",
    "drift_std": "std",
    "quantile_bins": "histogram",
    "chi2_contingency": "chi2",
}


class BackendUnavailable(ImportError):
    """A backend was asked for (or is the only one) but cannot be loaded here."""


class BackendNotApplicable(ValueError):
    """A forced backend loads but is not usable for the arguments of this call."""


@dataclass
class _Impl:
    kernel: str
    backend: str
    target: str | Callable[[], object]
    install_hint: str | None
    is_usable_for: Callable[..., bool] | None = None
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
                            mod = importlib.import_module(self.target, __package__)
                            self._loaded = getattr(mod, self.kernel)
                    except Exception as exc:  # missing module, no device, failed build
                        self._error = f"{type(exc).__name__}: {exc}"
                    self._tried = True
        if self._error is not None:
            # a loader that names its own install (the cuda runtime's, per driver) is not
            # followed by the generic one
            hint = f"; install it with: {self.install_hint}" \
                if self.install_hint and "pip install" not in self._error else ""
            raise BackendUnavailable(
                f"backend {self.backend!r} of kernel {self.kernel!r} is not usable "
                f"({self._error}){hint}"
            )
        return self._loaded


_LOCK = threading.RLock()
_KERNELS: dict[str, dict[str, _Impl]] = {}
# kernel -> (MLOPS_BACKEND value it was built for, ((backend, predicate, function), ...),
# the backend MLOPS_BACKEND forces or None): the loaded backends in priority order, up to
# the first one without a predicate.
_PLANS: dict[str, tuple[str, tuple, str | None]] = {}
_GENERATION = [0]  # bumped by every registration: a plan built before one is not cached


def register_kernel(
    kernel: str,
    *,
    reference: str | Callable[[], object] | None = None,
    cython: str | Callable[[], object] | None = None,
    numba: str | Callable[[], object] | None = None,
    cuda: str | Callable[[], object] | None = None,
    is_usable_for: dict[str, Callable[..., bool]] | None = None,
    install_hint: str | None = None,
) -> None:
    """Register the backends of ``kernel`` (see the module docstring for the naming scheme).

    Parameters
    ----------
    kernel : str
        The kernel id, also the name of the function in each backend module.
    reference, cython, numba, cuda : str or callable, optional
        The module holding the backend's function named ``kernel`` (a leading
        dot means relative to ``engine.kernels``), or a zero-argument loader
        returning the function. Imported on first use, never here. A new
        kernel needs ``reference``.
    is_usable_for : dict, optional
        Backend name -> predicate over the call's arguments (``*args``), true
        where the backend applies (e.g. ``cuda`` only for device arrays). Keep
        it cheap: it runs on every call. The reference takes every input.
    install_hint : str, optional
        Overrides :data:`INSTALL_HINTS` for the backends registered here.

    Examples
    --------
    The registration of ``psi`` (in ``drift.py``, which also gives it a ``cuda`` backend);
    calling it again re-registers the backends it names and keeps the others:

    >>> register_kernel("psi", reference=".reference", numba=".drift_counts_numba")
    >>> backends("psi")
    ['cuda', 'numba', 'reference']
    """
    targets = {"reference": reference, "cython": cython, "numba": numba, "cuda": cuda}
    targets = {b: t for b, t in targets.items() if t is not None}
    predicates = dict(is_usable_for or {})
    if not targets:
        raise ValueError(f"register_kernel({kernel!r}): give at least one backend")
    for b, pred in predicates.items():
        if b not in targets:
            raise ValueError(f"is_usable_for names backend {b!r}, which this call does not register")
        if b == "reference":
            raise ValueError("is_usable_for: the reference backend must take every input")
        if not callable(pred):
            raise TypeError(f"is_usable_for[{b!r}] must be callable, got {type(pred).__name__}")
    for b, t in targets.items():
        if not (callable(t) or isinstance(t, str)):
            raise TypeError(f"backend {b!r} of {kernel!r} must be a module name or a loader, "
                            f"got {type(t).__name__}")
    with _LOCK:
        if kernel not in _KERNELS and "reference" not in targets:
            raise ValueError(f"new kernel {kernel!r} needs a reference backend")
        impls = _KERNELS.setdefault(kernel, {})
        for b, t in targets.items():
            hint = install_hint if install_hint is not None else INSTALL_HINTS.get(b)
            impls[b] = _Impl(kernel, b, t, hint, predicates.get(b))
        _PLANS.pop(kernel, None)
        _GENERATION[0] += 1


def register(
    kernel: str,
    backend: str,
    target: str | Callable[[], object],
    install_hint: str | None = None,
) -> None:
    """Deprecated: use :func:`register_kernel` (one call per kernel, functions named like it).

    ``target`` is ``"module:attr"`` or a zero-argument loader.
    """
    warnings.warn("engine.kernels.register is deprecated; use register_kernel(kernel, "
                  f"{backend}=module)", DeprecationWarning, stacklevel=2)
    _check_name(backend, "backend")
    if isinstance(target, str):
        mod, _, attr = target.partition(":")
        target = _attr_loader(mod, attr or kernel)
    with _LOCK:
        impls = _KERNELS.setdefault(kernel, {})
        impls[backend] = _Impl(kernel, backend, target,
                               install_hint if install_hint is not None else INSTALL_HINTS.get(backend))
        _PLANS.pop(kernel, None)
        _GENERATION[0] += 1


def _attr_loader(mod: str, attr: str) -> Callable[[], object]:
    return lambda: getattr(importlib.import_module(mod, __package__), attr)


def kernels() -> list[str]:
    """Ids of all registered kernels."""
    return sorted(_KERNELS)


def backends(kernel: str) -> list[str]:
    """Backends registered for ``kernel``, fastest first (usable or not)."""
    impls = _impls(kernel)
    return [b for b in PRIORITY if b in impls]


def usable_backends(kernel: str, args: tuple | None = None) -> list[str]:
    """Backends of ``kernel`` that load here (and, given ``args``, are usable for them)."""
    out, impls = [], _impls(kernel)
    for b in backends(kernel):
        impl = impls[b]
        try:
            impl.load()
        except BackendUnavailable:
            continue
        if args is not None and impl.is_usable_for is not None and not impl.is_usable_for(*args):
            continue
        out.append(b)
    return out


def forced_backend(kernel: str) -> str | None:
    """The backend that ``MLOPS_BACKEND`` forces for ``kernel``, if any."""
    return _forced_by_env(_canonical(kernel), os.environ.get(ENV_VAR, ""))


def _forced_by_env(kernel: str, spec: str) -> str | None:
    spec = spec.strip()
    if not spec:
        return None
    plain = None
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" in part:
            k, _, b = part.partition("=")
            k = k.strip()
            if RENAMED.get(k, k) == kernel:
                return _check_name(b.strip(), f"{ENV_VAR} ({spec!r})")
        else:
            plain = _check_name(part, f"{ENV_VAR} ({spec!r})")
    if plain is not None and plain in _impls(kernel):
        return plain
    return None


def select(kernel: str, *args, backend: str | None = None) -> Callable:
    """The implementation of ``kernel`` for these arguments.

    The fastest backend that loads and is usable for ``args``, or the one that
    ``backend`` (else ``MLOPS_BACKEND``) forces.

    Examples
    --------
    >>> import numpy as np
    >>> from engine import kernels
    >>> rc, cc, offsets = np.array([5.0, 5.0]), np.array([9.0, 1.0]), np.array([0, 2])
    >>> psi = kernels.select("psi", rc, cc, offsets, 1e-4, backend="reference")
    >>> round(float(psi(rc, cc, offsets, 1e-4)[0]), 4)
    0.8789
    """
    if backend is not None:
        return _forced(_canonical(kernel), backend, args, "backend=")
    spec = os.environ.get(ENV_VAR, "")
    plan = _PLANS.get(kernel)
    if plan is None or plan[0] != spec:
        plan = _plan(kernel, spec)
    for _, usable, fn in plan[1]:
        if usable is None or usable(*args):
            return fn
    raise BackendNotApplicable(_not_applicable(kernel, [p[0] for p in plan[1]], "", args))


def call(kernel: str, *args, backend: str | None = None):
    """``select(kernel, *args, backend=backend)(*args)``: run the kernel on ``args``.

    Examples
    --------
    >>> import numpy as np
    >>> from engine import kernels
    >>> kernels.call("linf", np.array([3.0, 1.0]), np.array([1.0, 1.0]), np.array([0, 2]))
    array([0.25])
    """
    return select(kernel, *args, backend=backend)(*args)


def resolve(kernel: str, backend: str | None = None, args: tuple | None = None) -> str:
    """Name of the backend that :func:`select` would use.

    Without ``args``, the default for an ordinary input: backends with an
    ``is_usable_for`` predicate are passed over (they apply only to the
    inputs they accept).
    """
    if backend is not None:
        kernel = _canonical(kernel)
        _forced(kernel, backend, args, "backend=")
        return backend
    spec = os.environ.get(ENV_VAR, "")
    plan = _PLANS.get(kernel)
    if plan is None or plan[0] != spec:  # cached as in select(): a Chunker per file asks this
        plan = _plan(kernel, spec)
    if args is None and plan[2] is not None:
        return plan[2]
    for name, usable, _ in plan[1]:
        if usable is None or (args is not None and usable(*args)):
            return name
    raise BackendNotApplicable(_not_applicable(kernel, [p[0] for p in plan[1]], "", args))


def get(kernel: str, backend: str | None = None) -> object:
    """The implementation of ``kernel`` for an ordinary input (see :func:`resolve`)."""
    name = resolve(kernel, backend)
    return _impls(kernel)[name].load()


def _plan(kernel: str, spec: str) -> tuple[str, tuple, str | None]:
    """Build (and cache) the backends :func:`select` tries for ``kernel`` under ``spec``."""
    generation = _GENERATION[0]
    canonical = _canonical(kernel)
    impls = _impls(canonical)
    forced = _forced_by_env(canonical, spec)
    if forced is not None:
        impl = _forced_impl(canonical, forced)
        entries = ((forced, _env_guard(impl, spec), impl.load()),)
    else:
        errors, entries = [], []
        for b in backends(canonical):
            try:
                fn = impls[b].load()
            except BackendUnavailable as exc:
                errors.append(str(exc))
                continue
            entries.append((b, impls[b].is_usable_for, fn))
            if impls[b].is_usable_for is None:
                break
        if not entries:
            raise BackendUnavailable(f"no usable backend for kernel {canonical!r}: "
                                     + "; ".join(errors))
        entries = tuple(entries)
    plan = (spec, entries, forced)
    with _LOCK:
        # not for a deprecated id (it would outlive a re-registration), nor a stale plan
        if kernel == canonical and generation == _GENERATION[0]:
            _PLANS[kernel] = plan
    return plan


def _env_guard(impl: _Impl, spec: str) -> Callable[..., bool] | None:
    """The forced backend's predicate, raising instead of falling back when it says no."""
    if impl.is_usable_for is None:
        return None
    usable = impl.is_usable_for

    def guard(*args) -> bool:
        if not usable(*args):
            raise BackendNotApplicable(_not_applicable(
                impl.kernel, [impl.backend], f"{ENV_VAR}={spec!r}", args, usable))
        return True

    return guard


def _forced(kernel: str, backend: str, args: tuple | None, by: str) -> Callable:
    impl = _forced_impl(kernel, backend)
    fn = impl.load()  # raises BackendUnavailable with the install hint
    usable = impl.is_usable_for
    if args is not None and usable is not None and not usable(*args):
        raise BackendNotApplicable(_not_applicable(kernel, [backend], f"{by}{backend!r}", args,
                                                   usable))
    return fn


def _forced_impl(kernel: str, backend: str) -> _Impl:
    _check_name(backend, "backend")
    impls = _impls(kernel)
    if backend not in impls:
        raise ValueError(f"kernel {kernel!r} has no {backend!r} backend; it has {backends(kernel)}")
    return impls[backend]


def _not_applicable(kernel, names, forced_by, args, usable=None) -> str:
    kinds = ", ".join(type(a).__name__ for a in (args or ()))
    why = ""
    if usable is not None and usable.__doc__:
        why = f" (it takes {usable.__doc__.strip().splitlines()[0].rstrip('.')})"
    if forced_by:
        return (f"backend {names[0]!r} of kernel {kernel!r}, forced by {forced_by}, is not usable "
                f"for arguments of types ({kinds}){why}; force another backend or none")
    return (f"no backend of kernel {kernel!r} among {names} is usable for arguments of types "
            f"({kinds})")


def _canonical(kernel: str) -> str:
    if kernel in _KERNELS or kernel not in RENAMED:
        return kernel
    new = RENAMED[kernel]
    warnings.warn(f"kernel id {kernel!r} is deprecated; use {new!r}", DeprecationWarning,
                  stacklevel=3)
    return new


def _impls(kernel: str) -> dict[str, _Impl]:
    try:
        return _KERNELS[_canonical(kernel)]
    except KeyError:
        raise ValueError(f"unknown kernel {kernel!r}; known kernels: {kernels()}") from None


def _check_name(name: str, what: str) -> str:
    if name not in PRIORITY:
        raise ValueError(f"{what}: backend must be one of {PRIORITY}, got {name!r}")
    return name


def renamed_module_attrs(module: str, renamed: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` serving the old names of renamed functions, with a warning.

    ``renamed`` maps old name -> new name; the old ones stay importable for one release.
    """

    def __getattr__(name: str) -> object:
        if name in renamed:
            warnings.warn(f"{module}.{name} is deprecated; use {module}.{renamed[name]}",
                          DeprecationWarning, stacklevel=2)
            return getattr(importlib.import_module(module), renamed[name])
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
