"""Shared timing helper of the benchmark scripts."""

from __future__ import annotations

import time


def best_of(fn, repeat: int) -> tuple[float, object]:
    """Seconds of the fastest of ``repeat`` calls of ``fn`` (machines here are noisy), and its result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
