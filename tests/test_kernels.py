"""Every registered kernel on every usable backend against its reference, on shared cases.

The kernels and backends come from the registry (``engine.kernels.kernels()``),
the inputs from ``tests/kernel_cases.py``: registering a backend is enough to
have it tested, and a kernel registered without cases fails here.
"""

import numpy as np
import pytest
from kernel_cases import CASES, copy_args

from engine import kernels as K
from engine.kernels import _registry

KERNELS = K.kernels()
PAIRS = [(k, b) for k in KERNELS for b in K.backends(k) if b != "reference"]
_REFERENCE: dict = {}


def reference_outputs(kernel: str) -> list:
    """(label, args, compared outputs) of the reference on every case, computed once."""
    if kernel not in _REFERENCE:
        spec, ref = CASES[kernel], K.get(kernel, "reference")
        rows = []
        for label, args in spec.make():
            run_args = copy_args(args)
            rows.append((label, args, spec.outputs(ref(*run_args), run_args)))
        _REFERENCE[kernel] = rows
    return _REFERENCE[kernel]


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_has_cases(kernel):
    assert kernel in CASES, (
        f"kernel {kernel!r} is registered but has no cases: add an entry to tests/kernel_cases.py")


def test_no_cases_for_unregistered_kernels():
    assert sorted(set(CASES) - set(KERNELS)) == []


@pytest.mark.parametrize("kernel", KERNELS)
def test_reference_runs_on_every_case(kernel):
    rows = reference_outputs(kernel)
    assert len(rows) >= 3, f"{kernel}: give random, adversarial and edge cases"


@pytest.mark.parametrize("kernel", KERNELS)
def test_backend_functions_are_named_like_the_kernel(kernel):
    for backend in K.usable_backends(kernel):
        assert K.get(kernel, backend).__name__ == kernel, backend


@pytest.mark.parametrize(("kernel", "backend"), PAIRS, ids=[f"{k}-{b}" for k, b in PAIRS])
def test_backend_matches_reference(kernel, backend):
    if backend not in K.usable_backends(kernel):
        pytest.skip(f"backend {backend!r} of {kernel!r} does not load here")
    spec, impl = CASES[kernel], K.get(kernel, backend)
    ran = 0
    for label, args, want in reference_outputs(kernel):
        if backend not in K.usable_backends(kernel, args):
            continue
        run_args = copy_args(args)
        got = spec.outputs(impl(*run_args), run_args)
        spec.check(got, want, args, f"{kernel}/{backend}: {label}")
        ran += 1
    assert ran, f"backend {backend!r} of {kernel!r} is usable for none of its cases: add some"


CUDA_KERNELS = [k for k in KERNELS if "cuda" in K.backends(k)]


def cuda_function(kernel: str):
    """The ``cuda`` backend's function itself, bypassing the registry's loader (which fails
    without a GPU): the emulation runs it."""
    import importlib

    target = _registry._impls(kernel)["cuda"].target
    return getattr(importlib.import_module(target.module, "engine.kernels"), kernel)


@pytest.mark.parametrize("kernel", CUDA_KERNELS)
def test_cuda_backend_matches_reference(kernel, cuda_device):
    """Every ``cuda`` backend on every case, on the emulator (threads forward and reversed)
    and on the GPU where there is one."""
    spec, fn = CASES[kernel], cuda_function(kernel)
    for label, args, want in reference_outputs(kernel):
        run_args = copy_args(args)
        got = spec.outputs(fn(*run_args), run_args)
        spec.check(got, want, args, f"{kernel}/cuda on {cuda_device.name}: {label}")


def test_cases_do_not_share_arrays_with_the_reference_run():
    # in-place kernels must see fresh arguments: the copies are not views of the cases
    label, args = CASES["sort_packed"].make()[0]
    fresh = copy_args(args)
    assert not any(np.shares_memory(a, b) for a, b in zip(fresh, args) if isinstance(a, np.ndarray))
