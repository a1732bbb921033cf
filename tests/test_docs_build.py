"""The documentation site builds with MkDocs in strict mode (a broken link or anchor, or a
docstring the API reference cannot parse, fails), and the loop picture is its script's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_loop_picture_is_what_its_script_draws(tmp_path):
    out = tmp_path / "loop.svg"
    subprocess.run([sys.executable, str(ROOT / "docs" / "figures" / "make_loop.py"), str(out)],
                   check=True, timeout=60)
    committed = (ROOT / "docs" / "figures" / "loop.svg").read_text()
    assert out.read_text() == committed, "run python docs/figures/make_loop.py and commit"
    assert committed.startswith("<svg") and committed.count("<rect") == 7  # background + 6


def test_the_site_builds_in_strict_mode(tmp_path):
    pytest.importorskip("mkdocs", reason="the dev extra installs mkdocs")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
                        "-f", str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("snapshot", "Registry", "Guard", "chunk_hash"):
        assert name in api, name
    assert (tmp_path / "site" / "figures" / "loop.svg").exists()
