"""docs/object-storage.md: its python example runs against the local S3 server.

The example names ``s3://my-bucket/mlops``; the test creates that bucket on the local
server and points the AWS settings the guide lists (``AWS_ENDPOINT_URL`` and the test
credentials) at it, then runs the guide's python blocks in a fresh process
(tests/test_docs_examples.py runs the other guides' examples the same way).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_docs_examples import ROOT, blocks

pytestmark = pytest.mark.s3


def test_the_guide_example_runs_on_s3(s3_server, tmp_path):
    s3_server.bucket("my-bucket")
    ckpt = tmp_path / "checkpoint"
    ckpt.mkdir()
    (ckpt / "weights.bin").write_bytes(os.urandom(50_000))
    (ckpt / "config.json").write_text('{"layers": 50}')
    code = [body for lang, body, _ in blocks((ROOT / "docs" / "object-storage.md").read_text())
            if lang == "python"]
    assert code
    script = tmp_path / "example.py"
    script.write_text("\n".join(code) + "\nprint('registered', reg.versions('resnet')[-1].ref)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env["AWS_ENDPOINT_URL"] = f"http://{s3_server.endpoint}"
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "registered resnet:v1" in p.stdout
    keys = s3_server.keys("my-bucket", "mlops")
    assert any(k.startswith("registry/") for k in keys), keys[:20]
    assert Path(tmp_path / "checkpoint").exists()  # the example only read it
