"""docs/monitor.md: every example in the guide runs, in order, and prints what the guide shows.

The guide's fenced blocks are run top to bottom in one temporary directory:

* ```python blocks are executed in one shared namespace (so later blocks use
  earlier names and files). A block whose first line is ``# file: NAME`` is a
  script: it is written to NAME instead of being executed.
* ```console blocks hold ``$ command`` lines, each followed by the output the
  guide shows. ``$ mlops ...`` runs the CLI the way tests/test_monitor_cli.py
  does (``python -m engine.cli``); ``$ mpiexec -n N python SCRIPT`` runs under
  MPI when mpi4py and an ``mpiexec`` are installed (and is skipped otherwise);
  ``$ echo $?`` checks the exit status of the previous command. Every shown
  output line must appear in the real output, except lines holding ``...``
  (values that change from run to run, or that the guide elides).

Other blocks (```sh, ```json, ```text) are illustrations and are not run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "monitor.md"
BIN = os.path.dirname(sys.executable)
FENCE = re.compile(r"^```([A-Za-z0-9_-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line number) of every fenced block, in order."""
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
            for m in FENCE.finditer(text)]


def console_commands(body: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines of a console block, each with the output lines shown under it."""
    out: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            out.append((line[2:].strip(), []))
        elif out:
            out[-1][1].append(line.rstrip())
        elif line.strip():
            raise AssertionError(f"console block starts with output, not a command: {line!r}")
    return out


def have_mpi() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    return shutil.which("mpiexec", path=BIN) or shutil.which("mpiexec")


def run_command(cmd: str, cwd: Path) -> subprocess.CompletedProcess | None:
    """Run one guide command; None when it needs something that is not installed."""
    argv = shlex.split(cmd)
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    if argv[0] == "mlops":
        argv = [sys.executable, "-m", "engine.cli", *argv[1:]]
    elif argv[0] == "mpiexec":
        mpiexec = have_mpi()
        if mpiexec is None:
            return None
        argv = [mpiexec, *[sys.executable if a == "python" else a for a in argv[1:]]]
        env["NUMBA_NUM_THREADS"] = "1"  # ranks share the cores
    else:
        raise AssertionError(f"the guide runs only mlops and mpiexec commands, not {cmd!r}")
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def check_output(cmd: str, shown: list[str], r: subprocess.CompletedProcess, where: str):
    got = {line.rstrip() for line in (r.stdout + r.stderr).splitlines()}
    for line in shown:
        if line.strip() and "..." not in line:
            assert line in got, (f"{where}: `{cmd}` does not print {line!r}\n"
                                 f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")


def test_guide_has_examples_of_every_kind():
    text = GUIDE.read_text(encoding="utf-8")
    langs = [lang for lang, _, _ in blocks(text)]
    assert langs.count("python") >= 10 and langs.count("console") >= 2
    cmds = [c for lang, body, _ in blocks(text) if lang == "console"
            for c, _ in console_commands(body)]
    assert any(c.startswith("mlops monitor profile") for c in cmds)
    assert any(c.startswith("mlops monitor drift") for c in cmds)
    assert any(c.startswith("mpiexec -n 2") for c in cmds)


def test_guide_examples_run(tmp_path, monkeypatch):
    pytest.importorskip("pandas")  # one example profiles a DataFrame
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLOPS_HOME", raising=False)
    monkeypatch.delenv("MLOPS_BACKEND", raising=False)
    namespace: dict = {"__name__": "__docs_monitor__"}
    for lang, body, line in blocks(GUIDE.read_text(encoding="utf-8")):
        where = f"docs/monitor.md:{line}"
        if lang == "python":
            first = body.split("\n", 1)[0].strip()
            if first.startswith("# file: "):
                (tmp_path / first[len("# file: "):].strip()).write_text(body)
                continue
            exec(compile(body, where, "exec"), namespace)
        elif lang == "console":
            cmds = console_commands(body)
            for i, (cmd, shown) in enumerate(cmds):
                if cmd == "echo $?":
                    continue
                r = run_command(cmd, tmp_path)
                if r is None:
                    continue
                check_output(cmd, shown, r, where)
                # a non-zero exit is part of the example only where `echo $?` shows it
                nxt = cmds[i + 1] if i + 1 < len(cmds) else None
                if nxt is not None and nxt[0] == "echo $?":
                    expected = [s for s in nxt[1] if s.strip()]
                    assert expected == [str(r.returncode)], (
                        f"{where}: `{cmd}` exited {r.returncode}, the guide shows {expected}\n"
                        f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
                else:
                    assert r.returncode == 0, (f"{where}: `{cmd}` exited {r.returncode}\n"
                                               f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")


def test_readme_links_the_guide():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/monitor.md)" in readme
    assert re.search(r"^## Monitor", readme, re.M)
