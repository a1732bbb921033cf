"""Time ``python -c "import engine"`` against ``python -c pass`` (best of N fresh processes).

The budget of issue 2 is "well under half a second"; the ratio printed is the
import's cost over that budget.
"""

from __future__ import annotations

import subprocess
import sys
import time

BUDGET_S = 0.5


def best(code: str, n: int = 7) -> float:
    out = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        out = min(out, time.perf_counter() - t0)
    return out


def main() -> int:
    base = best("pass")
    eng = best("import engine")
    heavy = best("import engine.kernels, engine.store.pipeline")
    print("# bench_import: fresh interpreter per run, best of 7")
    print(f"{'python -c pass':<45} {base * 1000:8.1f} ms")
    print(f"{'import engine':<45} {eng * 1000:8.1f} ms  ({(eng - base) * 1000:.1f} ms over bare python)")
    print(f"{'import engine.kernels, engine.store.pipeline':<45} {heavy * 1000:8.1f} ms")
    print(f"{'import engine / 0.5 s budget':<45} {eng / BUDGET_S:8.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
