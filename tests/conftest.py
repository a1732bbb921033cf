import os
import tempfile

import numpy as np
import pytest

from engine.kernels import CdcParams, usable_backends

CDC_BACKENDS = usable_backends("cdc_scan")
FAST_CDC_BACKENDS = [b for b in CDC_BACKENDS if b != "reference"]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def random_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# Small sizes so that short inputs hold many chunks and every rule is exercised.
SMALL = CdcParams(avg_size=256, min_size=64, max_size=1024)


@pytest.fixture(autouse=True)
def _isolated_cache_dir(tmp_path_factory, monkeypatch):
    """Stat caches of tests go to a temporary directory, never to ~/.cache."""
    monkeypatch.setenv("MLOPS_CACHE_DIR", str(tmp_path_factory.mktemp("mlops-cache")))


# The CUDA emulation compiles each kernel source once per test session, here.
os.environ.setdefault("MLOPS_CUDA_EMU_CACHE", tempfile.mkdtemp(prefix="mlops-cuda-emu-"))


@pytest.fixture(params=["emulator", "emulator-reversed", pytest.param("gpu", marks=pytest.mark.gpu)])
def cuda_device(request):
    """The device the ``cuda`` backend runs on in this test: the host emulation (threads in
    order, then in reverse), then the real GPU where CuPy finds one (else a clean skip)."""
    from engine.kernels import cuda_runtime as cr

    if request.param == "gpu":
        if not cr.gpu_available():
            pytest.skip(f"no CUDA device here ({cr.install_hint()})")
        yield cr.cupy_device()
        return
    with cr.emulated(reverse=request.param.endswith("reversed")) as dev:
        yield dev
