"""The cuda backend's runtime: every CUDA source compiles to PTX (NVRTC and nvcc), and the
host emulation that tests every kernel's logic behaves like a launch.

These run everywhere (CI has no GPU): NVRTC comes from the ``nvidia-cuda-nvrtc`` wheel of
the dev extra, nvcc from the CUDA toolkit (``.ci/run`` installs it where it is absent).
"""

import subprocess
import sys

import numpy as np
import pytest

from engine.kernels import BackendUnavailable
from engine.kernels import cuda_runtime as cr

SOURCES = cr.load_all_sources()
FAMILIES = sorted(f for f in SOURCES if not f.startswith("test"))

ADD = cr.CudaSource("test_runtime", r"""
extern "C" __global__ void mlops_test_add(u64* a, i64 n, u64 v) {
    i64 i = MLOPS_GLOBAL_ID();
    if (i < n) a[i] += v;
}
extern "C" __global__ void mlops_test_order(i64* out, u64* counter, i64 n) {
    i64 i = MLOPS_GLOBAL_ID();
    if (i < n) out[atomicAdd(counter, 1ULL)] = i;
}
extern "C" __global__ void mlops_test_scalars(double* out, u32 a, i32 b, float c, double d, u8 e) {
    out[0] = a; out[1] = b; out[2] = c; out[3] = d; out[4] = e;
}
""")


def test_there_are_cuda_sources():
    assert FAMILIES, "no kernels/*_cuda.py module defines a CudaSource"


@pytest.mark.parametrize("family", FAMILIES)
def test_source_compiles_with_nvrtc(family):
    if cr.nvrtc_library() is None:
        pytest.fail("NVRTC is missing: the dev extra installs nvidia-cuda-nvrtc")
    ptx = cr.compile_ptx_nvrtc(SOURCES[family])
    for kernel in SOURCES[family].kernels:
        assert f".entry {kernel}(" in ptx, kernel


@pytest.mark.parametrize("family", FAMILIES)
def test_source_compiles_with_nvcc(family):
    if cr.nvcc_path() is None:
        pytest.fail("nvcc is missing: .ci/run installs it (nvidia-cuda-nvcc)")
    ptx = cr.compile_ptx_nvcc(SOURCES[family])
    for kernel in SOURCES[family].kernels:
        assert f".entry {kernel}(" in ptx, kernel


@pytest.mark.parametrize("family", FAMILIES)
def test_source_compiles_for_the_emulation(family):
    lib = cr.emulator().library(SOURCES[family])
    for kernel in SOURCES[family].kernels:
        assert hasattr(lib, f"mlops_emulate_{kernel}")


def test_a_compile_error_is_reported_with_the_compiler_log():
    bad = cr.CudaSource("test_bad", 'extern "C" __global__ void mlops_test_bad(u64* a) { a[0] = nope; }')
    try:
        with pytest.raises(RuntimeError, match="nope"):
            cr.compile_ptx_nvrtc(bad)
        with pytest.raises(RuntimeError, match="nope"):
            cr.emulator().library(bad)
    finally:
        cr.SOURCES.pop("test_bad", None)


def test_emulated_launch_covers_every_thread_in_both_orders():
    for reverse in (False, True):
        dev = cr.emulator(reverse=reverse)
        a = np.zeros(1000, dtype=np.uint64)
        dev.launch(ADD, "mlops_test_add", cr.launch_grid(999, 128), 128, (a, 999, 7))
        assert a[:999].tolist() == [7] * 999 and a[999] == 0
        out = np.full(10, -1, dtype=np.int64)
        counter = np.zeros(1, dtype=np.uint64)
        dev.launch(ADD, "mlops_test_order", 3, 4, (out, counter, 10))
        assert counter[0] == 10
        assert out.tolist() == (list(range(9, -1, -1)) if reverse else list(range(10)))


def test_scalars_are_converted_to_the_parameter_types():
    dev = cr.emulator()
    out = np.zeros(5)
    dev.launch(ADD, "mlops_test_scalars", 1, 1, (out, 2**32 - 1, -5, 0.5, 1e300, 255))
    assert out.tolist() == [2**32 - 1, -5, 0.5, 1e300, 255]


def test_launch_checks_its_arguments():
    dev = cr.emulator()
    with pytest.raises(TypeError, match=r"takes 3 arguments \(a, n, v\), got 2"):
        dev.launch(ADD, "mlops_test_add", 1, 1, (np.zeros(1, np.uint64), 1))
    with pytest.raises(TypeError, match="argument 'a' must be an array on emulator"):
        dev.launch(ADD, "mlops_test_add", 1, 1, ([0], 1, 1))
    with pytest.raises(ValueError, match="has no kernel 'mlops_nope'"):
        dev.launch(ADD, "mlops_nope", 1, 1, ())
    with pytest.raises(ValueError, match="grid must be a positive int"):
        dev.launch(ADD, "mlops_test_add", 0, 1, (np.zeros(1, np.uint64), 1, 1))


def test_sources_must_be_one_thread_per_item_and_named():
    with pytest.raises(ValueError, match="__syncthreads"):
        cr.CudaSource("test_sync", 'extern "C" __global__ void mlops_x(u64* a) { __syncthreads(); }')
    with pytest.raises(ValueError, match=r"must be declared extern \"C\""):
        cr.CudaSource("test_plain", "__global__ void mlops_x(u64* a) { }")
    with pytest.raises(ValueError, match="scalars must be one of"):
        cr.CudaSource("test_type", 'extern "C" __global__ void mlops_x(size_t n) { }')
    assert not {"test_sync", "test_plain", "test_type"} & set(cr.SOURCES)


def test_transfers_are_counted():
    dev = cr.emulator()
    d = dev.to_device(np.arange(10, dtype=np.int64))
    assert dev.h2d_bytes == 80
    assert dev.to_host(d[:5]).tolist() == [0, 1, 2, 3, 4] and dev.d2h_bytes == 40


def test_without_a_gpu_the_backend_names_the_install():
    if cr.gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BackendUnavailable, match="mlops-engine\\[gpu"):
        cr.cupy_device()
    assert not cr.usable(np.zeros(1 << 20))


def test_emulated_context_is_per_thread_and_restored():
    assert not cr.emulating()
    with cr.emulated() as dev:
        assert cr.current() is dev and dev.emulated
    assert not cr.emulating()


def test_import_engine_kernels_does_not_import_cupy():
    code = ("import sys, engine, engine.kernels, engine.kernels.cuda_runtime; "
            "import engine.store, engine.registry, engine.monitor; "
            "print('cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
