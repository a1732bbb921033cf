"""End-to-end drift side by side: this engine, a plain scipy loop and Evidently (issue 4).

The data of bench/bench_drift.py (same seed): ROWS x COLS N(0,1) float64 columns, the
first SHIFTED of them shifted by +0.5 sigma in the current table. Both tables are written
once to Parquet in a temporary directory; every tool reads them from there, and loading
is never timed. Timed, best of --repeat each:

* engine, raw:     ``drift(ref_table, cur_table)`` on the two Arrow tables, in process;
* engine, profile: ``drift(Profile.load(path), cur_table)``, the reference profiled once and
  stored (the profile's build time is printed too, not counted);
* scipy loop:      ``ks_2samp`` + ``wasserstein_distance`` per column, in process, on the
  tables' NumPy columns;
* Evidently:       ``Report([DataDriftPreset()]).run(current, reference)`` on pandas
  DataFrames, in a subprocess of ``.venv-evidently/bin/python bench/_evidently_side.py``
  (its own venv: ``bash bench/install_evidently.sh``); skipped with a message when that
  venv is missing.

Each row shows the best wall time and the fewest CPU seconds (all threads) of its runs.

Detection rules: the engine's and Evidently's defaults (normed Wasserstein distance at
0.1 for more than 1,000 rows; the engine corrects its p-value tests with BH); the scipy
loop has no rule of its own, so two are shown: KS p < 0.05 uncorrected, and
W1 / std(reference) >= 0.1 (Evidently's normed Wasserstein rule). False positives are
flagged columns among the COLS - SHIFTED unshifted ones.

Usage: python bench/bench_drift_peers.py [--rows 100000] [--cols 50] [--shifted 5]
           [--repeat 3] [--evidently-python .venv-evidently/bin/python] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats
from timing import best_of_cpu, run_peer

from engine.monitor import Profile, drift, profile

ROOT = Path(__file__).resolve().parent.parent
SIDE = Path(__file__).resolve().parent / "_evidently_side.py"
DEFAULT_EVIDENTLY = ROOT / ".venv-evidently" / "bin" / "python"
INSTALL = "bash bench/install_evidently.sh   (or: make bench-drift-peers)"


def make_tables(rows: int, cols: int, shifted: int, seed: int = 0):
    """The data of bench_drift.py: reference columns first, then current, from one generator."""
    rng = np.random.default_rng(seed)
    ref = pa.table({f"c{i}": rng.normal(size=rows) for i in range(cols)})
    cur = pa.table({f"c{i}": rng.normal(size=rows) + (0.5 if i < shifted else 0.0)
                    for i in range(cols)})
    return ref, cur


def scipy_loop(cols_a, cols_b):
    return [(stats.ks_2samp(x, y), stats.wasserstein_distance(x, y))
            for x, y in zip(cols_a, cols_b)]


def run_evidently(python: Path, ref_path: Path, cur_path: Path, repeat: int) -> dict:
    """Evidently's JSON line, or ``{"skipped": reason}``."""
    return run_peer(python, [SIDE, ref_path, cur_path, "--repeat", repeat], "Evidently",
                    INSTALL, cwd=ROOT)


def _ratio(x: float) -> str:
    return f"{x:.1f}x" if x >= 1 else f"{x:.3f}x"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\nUsage:")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Evidently runs only if its venv exists; install it with: " + INSTALL)
    ap.add_argument("--rows", type=int, default=100_000, help="rows per table (default 100000)")
    ap.add_argument("--cols", type=int, default=50, help="N(0,1) columns (default 50)")
    ap.add_argument("--shifted", type=int, default=5,
                    help="columns shifted by +0.5 sigma in the current table (default 5)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of every tool; the best is reported (default 3; Evidently "
                         "takes 20 to 50 s per run at the default size here)")
    ap.add_argument("--evidently-python", type=Path, default=DEFAULT_EVIDENTLY,
                    help="the Python of Evidently's venv (default .venv-evidently/bin/python)")
    ap.add_argument("--no-evidently", action="store_true", help="skip Evidently")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    a = ap.parse_args(argv)
    shifted = {f"c{i}" for i in range(a.shifted)}
    unshifted = a.cols - a.shifted

    ref, cur = make_tables(a.rows, a.cols, a.shifted)
    results = []  # (tool, seconds or None, drifted set or None, note)
    with tempfile.TemporaryDirectory(prefix="bench_drift_peers_") as tmp:
        ref_path, cur_path = Path(tmp, "ref.parquet"), Path(tmp, "cur.parquet")
        pq.write_table(ref, ref_path)
        pq.write_table(cur, cur_path)
        del ref, cur
        ref, cur = pq.read_table(ref_path), pq.read_table(cur_path)  # what every tool reads

        # this engine, in process
        prof_path = Path(tmp, "ref.profile")
        t_build, _, rp = best_of_cpu(lambda: profile(ref), 1)
        rp.save(prof_path)
        stored = Profile.load(prof_path)
        drift(stored, cur)  # compile / warm up
        t_raw, c_raw, rep_raw = best_of_cpu(lambda: drift(ref, cur), a.repeat)
        t_prof, c_prof, rep_prof = best_of_cpu(lambda: drift(stored, cur), a.repeat)
        results.append(("engine: drift() from two raw tables", t_raw, c_raw,
                        set(rep_raw.drifted_columns), "defaults"))
        results.append(("engine: drift() vs a stored profile", t_prof, c_prof,
                        set(rep_prof.drifted_columns), "defaults"))

        # the scipy loop, in process
        cols_a = [ref.column(i).to_numpy() for i in range(a.cols)]
        cols_b = [cur.column(i).to_numpy() for i in range(a.cols)]
        t_scipy, c_scipy, out = best_of_cpu(lambda: scipy_loop(cols_a, cols_b), a.repeat)
        names = ref.column_names
        ks_flag = {n for n, (ks, _) in zip(names, out) if ks.pvalue < 0.05}
        w_flag = {n for n, (_, w), x in zip(names, out, cols_a) if w / max(np.std(x), 1e-3) >= 0.1}
        results.append(("scipy loop (ks_2samp + wasserstein)", t_scipy, c_scipy, ks_flag,
                        "KS p < 0.05, uncorrected"))
        results.append(("scipy loop (same runs)", t_scipy, c_scipy, w_flag,
                        "W1 / std(ref) >= 0.1"))

        # Evidently, in its own venv
        ev = {"skipped": "--no-evidently"} if a.no_evidently else \
            run_evidently(a.evidently_python, ref_path, cur_path, a.repeat)
        if "skipped" not in ev:
            results.append((f"Evidently {ev['version']} DataDriftPreset", ev["seconds"],
                            ev.get("cpu_seconds", float("nan")), set(ev["drifted"]),
                            ", ".join(ev["methods"]) or "defaults"))

    t_ev = ev.get("seconds")
    print(f"# bench_drift_peers: {a.rows:,} x {a.cols} float64 N(0,1), {a.shifted} columns "
          f"shifted by +0.5 sigma; best of {a.repeat}; loading from Parquet not timed")
    print(f"# engine profile(reference), once, not counted: {t_build:.3f} s")
    print("# seconds: best wall time; vs scipy, vs Evidently: the peer's seconds / this row's "
          "(how many times faster); CPU s: fewest CPU seconds of a run, all threads")
    hdr = (f"{'tool':<38} {'seconds':>8} {'vs scipy':>9} {'vs Evid.':>9} {'CPU s':>7} "
           f"{'shifted found':>13} {'false pos':>9}  rule")
    print(hdr)
    print("-" * len(hdr))
    for tool, t, cpu, flagged, rule in results:
        r_s = _ratio(t_scipy / t)
        r_e = _ratio(t_ev / t) if t_ev else "-"
        print(f"{tool:<38} {t:8.3f} {r_s:>9} {r_e:>9} {cpu:7.2f} "
              f"{f'{len(flagged & shifted)}/{len(shifted)}':>13} "
              f"{f'{len(flagged - shifted)}/{unshifted}':>9}  {rule}")
    if "skipped" in ev:
        print(f"Evidently: SKIPPED: {ev['skipped']}")
    print(f"targets: raw tables under 0.3 s: {'met' if t_raw < 0.3 else 'NOT met'} ({t_raw:.3f} s); "
          f"10x the scipy loop: {'met' if t_scipy / t_raw >= 10 else 'NOT met'} "
          f"({t_scipy / t_raw:.1f}x)" +
          (f"; 70x Evidently: {'met' if t_ev / t_raw >= 70 else 'NOT met'} ({t_ev / t_raw:.1f}x)"
           if t_ev else "; 70x Evidently: not measured"))
    if a.json:
        a.json.write_text(json.dumps({
            "rows": a.rows, "cols": a.cols, "shifted": a.shifted, "repeat": a.repeat,
            "profile_build_s": t_build, "evidently": ev,
            "results": [{"tool": tool, "seconds": t, "cpu_seconds": cpu, "rule": rule,
                         "shifted_found": len(flagged & shifted),
                         "false_positives": sorted(flagged - shifted)}
                        for tool, t, cpu, flagged, rule in results]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
