"""End-to-end drift, side by side with a plain scipy loop (issue 4).

100,000 x 50 N(0,1) columns, +0.5 sigma in 5 of them. Times (best of 3) ``drift()`` against a
stored reference profile (the production case) and from two raw tables, and a scipy loop
(``ks_2samp`` + ``wasserstein_distance`` per column), and counts false positives among the
unshifted columns.

Usage: python bench/bench_drift.py [--rows 100000] [--cols 50] [--shifted 5]
"""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa
from scipy import stats
from timing import best_of

from engine.monitor import drift, profile


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--cols", type=int, default=50)
    ap.add_argument("--shifted", type=int, default=5)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    ref = pa.table({f"c{i}": rng.normal(size=a.rows) for i in range(a.cols)})
    cur = pa.table({f"c{i}": rng.normal(size=a.rows) + (0.5 if i < a.shifted else 0.0)
                    for i in range(a.cols)})
    rp = profile(ref, sample_size=None)
    drift(rp, cur)  # compile / warm up
    t_prof, rep = best_of(lambda: drift(rp, cur), 3)
    t_raw, _ = best_of(lambda: drift(ref, cur), 3)
    cols_a = [ref.column(i).to_numpy() for i in range(a.cols)]
    cols_b = [cur.column(i).to_numpy() for i in range(a.cols)]
    t_scipy, _ = best_of(lambda: [(stats.ks_2samp(x, y), stats.wasserstein_distance(x, y))
                                  for x, y in zip(cols_a, cols_b)], 1)
    drifted = set(rep.drifted_columns)
    shifted = {f"c{i}" for i in range(a.shifted)}
    print(f"# bench_drift: {a.rows:,} x {a.cols} float64, {a.shifted} columns shifted by 0.5 sigma")
    print(f"{'scipy loop (ks_2samp + wasserstein)':<40} {t_scipy:8.3f} s")
    print(f"{'drift() vs a stored profile':<40} {t_prof:8.3f} s  {t_scipy / t_prof:6.1f}x  (target 0.1 s)")
    print(f"{'drift() from two raw tables':<40} {t_raw:8.3f} s  {t_scipy / t_raw:6.1f}x  (target 0.3 s, 10x)")
    print(f"detected {len(drifted & shifted)}/{len(shifted)} shifted; "
          f"false positives {len(drifted - shifted)}/{a.cols - a.shifted}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
