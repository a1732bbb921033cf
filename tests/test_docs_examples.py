"""Every code example of the docs runs, so the docs cannot drift from the code.

* ```python blocks of README.md and docs/*.md run, each document's blocks in order in one
  fresh Python process (one namespace), in a temporary directory with ``MLOPS_HOME`` there.
  What a fragment takes for granted (a model, a ``./imagenet`` directory, earlier
  versions in the registry) is made first by the document's :data:`PRELUDE`, and before
  a given block by :data:`BEFORE`; absolute paths the docs use (``/tmp/...``,
  ``/lustre/...``, ``/scratch/...``) are moved into the temporary directory. docs/monitor.md
  runs in tests/test_docs_monitor.py (with its console blocks), docs/object-storage.md in
  tests/s3/test_s3_docs.py (against the local S3 server).
* ```sh / ```console lines that run ``mlops ...`` are parsed by the real ``mlops`` parser:
  a renamed command or option fails here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_docs_monitor import blocks

ROOT = Path(__file__).resolve().parent.parent
#: documents whose python blocks other tests run
ELSEWHERE = {"docs/monitor.md": "tests/test_docs_monitor.py",
             "docs/object-storage.md": "tests/s3/test_s3_docs.py"}


def documents() -> list[str]:
    docs = ["README.md"] + sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))
    return [d for d in docs if any(lang == "python" for lang, _, _ in
                                   blocks((ROOT / d).read_text()))]


_COMMON = """
import os
import numpy as np
import pyarrow as pa

def make_tree(path, files=3, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(files):
        d = os.path.join(path, "train" if i % 2 == 0 else "val")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"{i:03d}.bin"), "wb") as f:
            f.write(rng.bytes(20_000))

def torch_things():
    import torch

    class Net(torch.nn.Module):
        "A tiny model that takes a tensor or a loader's batch (a dict with 'x')."
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1, 1)
        def forward(self, x):
            if isinstance(x, dict):
                x = x["x"]
            return self.lin(x.float().reshape(-1, 1))

    torch.manual_seed(0)
    model = Net()
    return torch, Net, model, torch.optim.AdamW(model.parameters())

table = pa.table({"x": np.arange(512, dtype=np.float32)})
"""

_DATASETS = """
def make_datasets(store=None):
    "imagenet:v1 .. v3 and extra-data:v1, v2 in ``store`` (default $MLOPS_HOME)."
    import engine.data as data
    make_tree("imagenet")
    for i in range(3):
        with open(f"imagenet/train/extra-{i}.txt", "w") as f:
            f.write(str(i))
        data.snapshot("imagenet", name="imagenet", store=store)
    make_tree("extra", seed=1)
    data.snapshot("extra", name="extra-data", store=store)
    make_tree("extra", files=4, seed=2)
    data.snapshot("extra", name="extra-data", store=store)
"""

PRELUDE = {
    "README.md": _COMMON + _DATASETS + """
make_datasets()
import shutil
shutil.copytree(os.path.join(REPO, "examples"), "examples")
shutil.copy(os.path.join(REPO, "setup.py"), "setup.py")
torch, Net, model, opt = torch_things()
rng = np.random.default_rng(0)
train_table = pa.table({"age": rng.uniform(18, 90, 2000), "bmi": rng.uniform(17, 40, 2000)})
today_table = pa.table({"age": rng.uniform(40, 95, 500), "bmi": rng.uniform(17, 40, 500)})
batch = pa.table({"age": [54.0, 61.0], "note": ["dolor de cabeza", "sin síntomas"]})
from engine import Registry
from engine.monitor import profile as _profile
_reg = Registry()
_mv = _reg.register("glucose", {"w": np.ones(2, np.float32)})
_reg.log_profile(_profile({"age": rng.uniform(18, 90, 500),
                           "note": ["dolor de cabeza", "paciente en ayunas"] * 250}),
                 of=_mv.ref, role="input")
_reg.set_alias(_mv.ref, "production")
class _Model:
    def predict(self, x):
        return 100.0
model_for_guard = _Model()
""",
    "docs/data.md": _COMMON + """
make_tree("imagenet")
""",
    "docs/registry.md": _COMMON + _DATASETS + """
torch, Net, model, opt = torch_things()
from engine import Registry as _Registry
make_datasets("lustre/proj/mlops")
_reg = _Registry("lustre/proj/mlops")
for _loss in (0.3, 0.25, 0.22):           # resnet:v1 .. v3, so that the example makes v4
    _reg.register("resnet", {"w": np.full(4, _loss, np.float32)}, metrics={"val_loss": _loss})
_reg.register("resnet-base", {"w": np.zeros(4, np.float32)}, aliases=["production"])
make_tree("ckpt")
make_tree("export", seed=3)
loader = [np.ones(4)] * 3
loss = 0.5
""",
    "docs/training.md": _COMMON + """
torch, Net, model, opt = torch_things()
source = table
""",
    "docs/slurm.md": _COMMON + """
import engine
import engine.dist as dist
torch, Net, model, opt = torch_things()
loader = dist.ShardedLoader(table, global_batch_size=64, seed=0)
""",
    "docs/architecture.md": "",
}

#: (document, index of the python block) -> code run just before that block
BEFORE = {
    ("README.md", 2): "model = model_for_guard",  # the guard block's model has predict()
    ("README.md", 3): "torch, Net, model, opt = torch_things()",
    ("README.md", 4): "table = pa.table({'x': np.arange(512, dtype=np.float32)})  # training data",
    ("docs/registry.md", 1): """
_reg.register("resnet", {"w": np.full(4, 5.0, np.float32)}, metrics={"accuracy": 0.9})  # v5
""",
}

#: absolute paths in the docs -> paths inside the test's directory
PATHS = (("/tmp/", "{tmp}/"), ("/lustre/", "{tmp}/lustre/"), ("/scratch/", "{tmp}/scratch/"))


def program(doc: str, tmp: Path) -> str:
    """The document's python blocks, with its prelude, as one script."""
    parts = [f"REPO = {str(ROOT)!r}", PRELUDE.get(doc, "")]
    text = (ROOT / doc).read_text()
    py = [(body, line) for lang, body, line in blocks(text) if lang == "python"]
    for i, (body, line) in enumerate(py):
        if (doc, i) in BEFORE:
            parts.append(textwrap.dedent(BEFORE[(doc, i)]))
        for old, new in PATHS:
            body = body.replace(old, new.format(tmp=tmp))
        parts.append(f"print('--- {doc} line {line}', flush=True)\n{body}")
    return "\n".join(parts)


@pytest.mark.parametrize("doc", [d for d in documents() if d not in ELSEWHERE])
def test_python_examples_run(doc, tmp_path):
    if doc != "docs/architecture.md":
        pytest.importorskip("torch")
    script = tmp_path / "examples.py"
    script.write_text(program(doc, tmp_path))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "SLURM_"))}
    env.update(MLOPS_HOME=str(tmp_path / ".mlops"), PYTHONUNBUFFERED="1")
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    where = [ln for ln in p.stdout.splitlines() if ln.startswith("--- ")]
    assert p.returncode == 0, (f"{doc}: the example after {where[-1] if where else 'the prelude'}"
                               f" failed:\n{p.stdout[-3000:]}\n{p.stderr[-4000:]}")
    n = sum(1 for lang, _, _ in blocks((ROOT / doc).read_text()) if lang == "python")
    assert len(where) == n  # every block ran


def test_every_document_with_python_examples_is_run_somewhere():
    for doc in documents():
        if doc in ELSEWHERE:
            assert (ROOT / ELSEWHERE[doc]).exists(), ELSEWHERE[doc]
        else:
            assert doc in PRELUDE, f"{doc} has python examples: give it a PRELUDE here"


# ------------------------------------------------------------------ command lines
def mlops_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, command)`` of every ``mlops ...`` command in sh/console blocks."""
    out = []
    for lang, body, start in blocks(text):
        if lang not in ("sh", "bash", "console", "shell", ""):
            continue
        lines = body.splitlines()
        k = -1
        while k + 1 < len(lines):
            k += 1
            first, line = k, lines[k].strip()
            while line.endswith("\\") and k + 1 < len(lines):  # a continued line
                k += 1
                line = line[:-1] + " " + lines[k].strip()
            if lang == "console":  # only "$ " lines are commands; the rest is output
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            elif line.startswith("$ "):
                line = line[2:]
            line = re.split(r"\s+#\s", " " + line, maxsplit=1)[0].strip()
            line = re.split(r"\s(?:\||&&|;|>|2>)\s", line)[0]
            words = line.split()
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
                words.pop(0)  # VAR=value before the command
            synopsis = "[--" in line or "..." in line or "<" in line
            if words[:1] == ["mlops"] and not synopsis:
                out.append((start + 1 + first, " ".join(words)))
    return out


@pytest.mark.parametrize("doc", ["README.md"] + sorted(
    f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
def test_command_lines_parse(doc):
    from engine.cli.app import build_parser

    bad = []
    for line, cmd in mlops_lines((ROOT / doc).read_text()):
        try:
            argv = shlex.split(cmd)[1:]
        except ValueError as exc:
            bad.append(f"{doc}:{line}: {cmd}: {exc}")
            continue
        if "--help" in argv or "-h" in argv or "--version" in argv:
            continue
        try:
            build_parser().parse_args(argv)
        except (SystemExit, Exception) as exc:  # the mlops parser raises its usage error
            bad.append(f"{doc}:{line}: {cmd}: {exc}")
    assert not bad, "command lines the mlops parser refuses:\n" + "\n".join(bad)


def test_the_command_line_check_can_fail():
    from engine.cli.app import build_parser

    with pytest.raises((SystemExit, Exception)):
        build_parser().parse_args(["data", "snapshot", "--no-such-option", "x"])
    assert mlops_lines("```sh\nFOO=1 mlops data list --json   # all\n```\n") == [
        (2, "mlops data list --json")]
