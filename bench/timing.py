"""Shared helpers of the benchmark scripts: timing, and running a peer in its own venv."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path


def best_of(fn, repeat: int) -> tuple[float, object]:
    """Seconds of the fastest of ``repeat`` calls of ``fn`` (machines here are noisy), and its result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def best_of_cpu(fn, repeat: int) -> tuple[float, float, object]:
    """Fastest wall seconds and fewest CPU seconds (all threads) of ``repeat`` calls, and a
    result. CPU seconds move less than wall seconds when other jobs share the machine; a
    tool that uses both cores shows more CPU than wall seconds."""
    wall, cpu, out = float("inf"), float("inf"), None
    for _ in range(max(1, repeat)):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def run_peer(python: Path, argv: list, peer: str, install: str, cwd=None) -> dict:
    """Run a peer's side script with the Python of its own venv (``python argv...``) and
    return the last JSON line it printed, or ``{"skipped": reason}`` when the venv is
    missing or the script fails (its last lines of output in the reason)."""
    if not python.exists():
        return {"skipped": f"{peer} is not installed ({python} is missing); install it with: "
                           f"{install}"}
    proc = subprocess.run([str(python), *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"skipped": f"{peer} failed (exit {proc.returncode}): " + " | ".join(tail)}
    return json.loads(lines[-1])
