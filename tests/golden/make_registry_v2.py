"""Regenerate the golden registry fixture ``tests/golden/registry_v2`` (commit format 2:
checksums and the hash chain). The same registry as ``make_registry_v1.py`` builds, written
by the current mlops-engine; ``tests/test_registry_golden.py`` reads both.

Run from the repository root: ``python tests/golden/make_registry_v2.py``. Regenerate it
only together with a deliberate format change (and a new format_version).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "registry_v2")


def main() -> int:
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    from make_registry_v1 import build

    tmp = tempfile.mkdtemp()
    try:
        build(os.path.join(tmp, "store"))
        shutil.rmtree(OUT, ignore_errors=True)
        shutil.copytree(os.path.join(tmp, "store"), OUT, ignore=shutil.ignore_patterns("tmp"))
    finally:
        shutil.rmtree(tmp)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
