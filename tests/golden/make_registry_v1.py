"""Regenerate the golden registry fixture ``tests/golden/registry_v1`` (format_version 1).

Run from the repository root: ``python tests/golden/make_registry_v1.py``. The fixture
(a store holding a registry: commit files, one checkpoint, metric segments, packs)
is committed; ``tests/test_registry_golden.py`` checks that every later version of
mlops-engine still reads it with the same answers. Regenerate it only together
with a deliberate format change (and a new format_version).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "registry_v1")


def build(root: str) -> None:
    import numpy as np

    from engine import config
    from engine.registry import Registry

    config.REGISTRY_CHECKPOINT_EVERY = 4  # one checkpoint (commits 1..4), then loose files
    reg = Registry(root, index_path=":memory:")
    with reg.start_run("train", params={"lr": 0.1, "epochs": 3}) as run:
        for step in range(3):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_model("clf", b"golden weights v1", metrics={"val_loss": 0.5}, filename="w.bin")
    reg.register("clf", {"w": np.arange(6, dtype=np.float32).reshape(2, 3)},
                 metrics={"val_loss": 0.25}, tags={"arch": "mlp"})
    reg.promote("clf:v1", "production")
    reg.promote("clf:v2", "production", gate="val_loss<=")
    reg.register("notes", b"a note", kind="checkpoint", inputs=["clf:v1"])
    reg.close()


def main(out: str = OUT) -> int:
    """Build the registry in a temporary store and copy it to ``out``."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    tmp = tempfile.mkdtemp()
    try:
        build(os.path.join(tmp, "store"))
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(os.path.join(tmp, "store"), out, ignore=shutil.ignore_patterns("tmp"))
    finally:
        shutil.rmtree(tmp)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
