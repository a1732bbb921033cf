"""The backend registry: selection, forcing, errors with install hints."""

import subprocess
import sys

import pytest

from engine import kernels as K
from engine.kernels import _registry


@pytest.fixture
def fake_kernel():
    name = "test_fake_kernel"
    K.register(name, "reference", lambda: "ref-impl")
    K.register(name, "numba", lambda: "numba-impl")

    def broken():
        raise ImportError("No module named 'cupy'")

    K.register(name, "cuda", broken, install_hint="pip install 'mlops-engine[gpu]'")
    yield name
    _registry._KERNELS.pop(name, None)


def test_default_picks_fastest_usable(fake_kernel, monkeypatch):
    monkeypatch.delenv("MLOPS_BACKEND", raising=False)
    assert K.backends(fake_kernel) == ["cuda", "numba", "reference"]
    assert K.usable_backends(fake_kernel) == ["numba", "reference"]
    assert K.resolve(fake_kernel) == "numba"
    assert K.get(fake_kernel) == "numba-impl"


def test_keyword_forces(fake_kernel):
    assert K.get(fake_kernel, "reference") == "ref-impl"


def test_forcing_unusable_backend_names_the_install(fake_kernel):
    with pytest.raises(K.BackendUnavailable, match=r"pip install 'mlops-engine\[gpu\]'"):
        K.get(fake_kernel, "cuda")


def test_forcing_unregistered_backend(fake_kernel):
    with pytest.raises(ValueError, match="has no 'cython' backend"):
        K.get(fake_kernel, "cython")
    with pytest.raises(ValueError, match="backend must be one of"):
        K.get(fake_kernel, "opencl")


def test_unknown_kernel():
    with pytest.raises(ValueError, match="unknown kernel 'nope'"):
        K.get("nope")


def test_env_plain_name(fake_kernel, monkeypatch):
    monkeypatch.setenv("MLOPS_BACKEND", "reference")
    assert K.resolve(fake_kernel) == "reference"
    assert K.resolve("cdc_scan") == "reference"


def test_env_plain_name_skips_kernels_without_it(fake_kernel, monkeypatch):
    monkeypatch.setenv("MLOPS_BACKEND", "cython")
    assert K.resolve(fake_kernel) == "numba"  # no cython backend: default kept
    assert K.resolve("cdc_scan") == "cython"


def test_env_per_kernel(fake_kernel, monkeypatch):
    monkeypatch.setenv("MLOPS_BACKEND", f"{fake_kernel}=reference, cdc_scan=numba")
    assert K.resolve(fake_kernel) == "reference"
    assert K.resolve("cdc_scan") == "numba"


def test_env_bad_name(fake_kernel, monkeypatch):
    monkeypatch.setenv("MLOPS_BACKEND", "fortran")
    with pytest.raises(ValueError, match="MLOPS_BACKEND"):
        K.resolve(fake_kernel)


def test_env_forced_unusable(fake_kernel, monkeypatch):
    monkeypatch.setenv("MLOPS_BACKEND", "cuda")
    with pytest.raises(K.BackendUnavailable, match="install it with"):
        K.get(fake_kernel)


def test_keyword_beats_env(fake_kernel, monkeypatch):
    monkeypatch.setenv("MLOPS_BACKEND", "cuda")
    assert K.get(fake_kernel, "reference") == "ref-impl"


def test_cdc_backends_registered():
    assert K.backends("cdc_scan") == ["cython", "numba", "reference"]
    assert "cython" in K.usable_backends("cdc_scan")
    assert "reference" in K.usable_backends("cdc_scan")


def test_register_rejects_unknown_backend_name():
    with pytest.raises(ValueError, match="backend must be one of"):
        K.register("x", "vulkan", lambda: None)


def test_import_engine_is_light():
    code = (
        "import sys, engine, engine.kernels, engine.chunking, engine.cli;"
        "heavy = [m for m in ('torch', 'cupy', 'mpi4py', 'numba', 'scipy') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_drift_kernels_registered_by_importing_kernels():
    # `import engine.kernels` alone registers them, and loads neither numba nor scipy
    code = (
        "import sys, engine.kernels as K;"
        "print(K.backends('ks_2samp'), K.backends('drift_sort_columns'), K.backends('chi2_contingency'),"
        " [m for m in ('numba', 'scipy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['numba', 'reference'] ['numba', 'reference'] ['numba', 'reference'] []"
