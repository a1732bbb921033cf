"""The backend registry: selection, forcing, errors with install hints."""

import subprocess
import sys

import pytest

from engine import kernels as K
from engine.kernels import _registry


def _named(name):
    def impl(*args):
        return name
    impl.__name__ = name
    return impl


def on_device(x):
    """only arrays on the device"""
    return getattr(x, "on_device", False)


class DeviceArray:
    on_device = True


@pytest.fixture
def fake_kernel():
    name = "test_fake_kernel"

    def broken():
        raise ImportError("No module named 'cupy'")

    K.register_kernel(name, reference=lambda: "ref-impl", numba=lambda: "numba-impl",
                      cuda=broken, install_hint="pip install 'mlops-engine[gpu]'")
    yield name
    _registry._KERNELS.pop(name, None)
    _registry._PLANS.pop(name, None)


@pytest.fixture
def device_kernel(monkeypatch):
    """A kernel whose cuda backend applies only to device arrays."""
    monkeypatch.delenv("MLOPS_BACKEND", raising=False)
    name = "test_device_kernel"
    K.register_kernel(name, reference=lambda: _named("reference"), numba=lambda: _named("numba"),
                      cuda=lambda: _named("cuda"), is_usable_for={"cuda": on_device})
    yield name
    _registry._KERNELS.pop(name, None)
    _registry._PLANS.pop(name, None)


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
    assert K.backends("cdc_candidates") == ["cuda", "cython", "reference"]
    assert K.backends("blake3_many") == ["cuda", "reference"]
    assert K.backends("cdc_resolve") == ["cython", "reference"]
    assert "cython" in K.usable_backends("cdc_scan")
    assert "reference" in K.usable_backends("cdc_scan")


def test_register_kernel_rejects_bad_registrations():
    with pytest.raises(TypeError, match="vulkan"):
        K.register_kernel("x", vulkan="mod")
    with pytest.raises(ValueError, match="new kernel 'x' needs a reference"):
        K.register_kernel("x", numba=".drift_numba")
    with pytest.raises(ValueError, match="reference backend must take every input"):
        K.register_kernel("x", reference=".reference", is_usable_for={"reference": on_device})
    with pytest.raises(ValueError, match="does not register"):
        K.register_kernel("x", reference=".reference", is_usable_for={"cuda": on_device})
    assert "x" not in K.kernels()


def test_backend_chosen_per_input(device_kernel):
    k = device_kernel
    assert K.select(k, DeviceArray()).__name__ == "cuda"
    assert K.select(k, [1.0]).__name__ == "numba"  # the predicate said no: next fastest
    assert K.call(k, DeviceArray()) == "cuda"
    assert K.resolve(k) == "numba"  # no input: the default for ordinary inputs
    assert K.resolve(k, args=(DeviceArray(),)) == "cuda"
    assert K.usable_backends(k) == ["cuda", "numba", "reference"]
    assert K.usable_backends(k, ([1.0],)) == ["numba", "reference"]


def test_forced_backend_not_usable_for_the_input(device_kernel, monkeypatch):
    k = device_kernel
    assert K.select(k, DeviceArray(), backend="cuda").__name__ == "cuda"
    with pytest.raises(K.BackendNotApplicable, match=r"'cuda' .* forced by backend='cuda', .* "
                                                     r"\(list\) \(it takes only arrays on the device\)"):
        K.select(k, [1.0], backend="cuda")
    monkeypatch.setenv("MLOPS_BACKEND", f"{k}=cuda")
    assert K.call(k, DeviceArray()) == "cuda"
    with pytest.raises(K.BackendNotApplicable, match="forced by MLOPS_BACKEND"):
        K.call(k, [1.0])
    assert K.resolve(k) == "cuda"


def test_selection_is_cached_and_follows_registration_and_env(device_kernel, monkeypatch):
    k = device_kernel
    loads = []
    K.register_kernel(k, numba=lambda: loads.append(1) or _named("numba2"))
    for _ in range(3):
        assert K.select(k, [1.0]).__name__ == "numba2"
    assert loads == [1]  # loaded once; the per-call path is a lookup
    monkeypatch.setenv("MLOPS_BACKEND", "reference")
    assert K.select(k, DeviceArray()).__name__ == "reference"
    monkeypatch.delenv("MLOPS_BACKEND")
    assert K.select(k, DeviceArray()).__name__ == "cuda"


def test_deprecated_register_and_kernel_ids():
    with pytest.warns(DeprecationWarning, match="register_kernel"):
        K.register("test_old_style", "reference", "engine.kernels.reference:psi")
    try:
        assert K.get("test_old_style") is K.get("psi", "reference")
    finally:
        _registry._KERNELS.pop("test_old_style", None)
        _registry._PLANS.pop("test_old_style", None)
    with pytest.warns(DeprecationWarning, match="'drift_sort_packed' is deprecated; use 'sort_packed'"):
        assert K.get("drift_sort_packed", "reference") is K.get("sort_packed", "reference")


def test_deprecated_function_names():
    from engine.kernels import drift, reference

    with pytest.warns(DeprecationWarning, match="use engine.kernels.drift.jensenshannon_columns"):
        assert drift.js_columns is drift.jensenshannon_columns
    with pytest.warns(DeprecationWarning, match="use engine.kernels.reference.psi"):
        assert reference.psi_counts is reference.psi
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        drift.nope  # noqa: B018


def test_import_engine_is_light():
    code = (
        "import sys, engine, engine.kernels, engine.chunking, engine.cli;"
        "heavy = [m for m in ('torch', 'cupy', 'mpi4py', 'numba', 'scipy') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_drift_kernels_registered_by_importing_kernels():
    # `import engine.kernels` alone registers them, and loads neither numba, scipy nor cupy
    code = (
        "import sys, engine.kernels as K;"
        "print(K.backends('ks_2samp'), K.backends('sort_packed'), K.backends('chi2'),"
        " [m for m in ('numba', 'scipy', 'cupy') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    both = "['cuda', 'numba', 'reference']"
    assert out.stdout.strip() == f"{both} {both} {both} []"
