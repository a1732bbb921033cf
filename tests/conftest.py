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
