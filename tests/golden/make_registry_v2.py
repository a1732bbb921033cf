"""Regenerate the golden registry fixture ``tests/golden/registry_v2`` (commit format 2:
checksums and the hash chain). The same registry as ``make_registry_v1.py`` builds, written
by the current mlops-engine; ``tests/test_registry_golden.py`` reads both.

Run from the repository root: ``python tests/golden/make_registry_v2.py``. Regenerate it
only together with a deliberate format change (and a new format_version).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "registry_v2")

if __name__ == "__main__":
    sys.path.insert(0, HERE)
    from make_registry_v1 import main

    raise SystemExit(main(OUT))
