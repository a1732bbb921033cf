"""Every subpackage of engine/ is listed in pyproject.toml (else `pip install .` drops it)."""

import os

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_subpackage_is_packaged():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        cfg = tomllib.load(f)["tool"]["setuptools"]
    packages = set(cfg["packages"])
    found = {"engine", "engine.kernels"}
    for dirpath, dirs, files in os.walk(os.path.join(ROOT, "engine")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if "__init__.py" in files:
            rel = os.path.relpath(dirpath, ROOT).replace(os.sep, ".")
            found.add(rel)
    assert found <= packages, f"missing from pyproject.toml packages: {sorted(found - packages)}"
    assert cfg["package-dir"]["engine.kernels"] == "kernels"
