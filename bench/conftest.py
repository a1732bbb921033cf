import numpy as np
import pytest


@pytest.fixture(scope="session")
def data_64mib():
    return np.random.default_rng(7).integers(0, 256, 64 << 20, dtype=np.uint8)
