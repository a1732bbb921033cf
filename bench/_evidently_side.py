"""Evidently's side of bench/bench_drift_peers.py; runs in .venv-evidently, not the project's venv.

Reads the reference and current tables from Parquet into pandas (not timed), then times
only the report's computation: ``Report([DataDriftPreset()]).run(current, reference)`` (Evidently >= 0.7)
or the legacy ``evidently.report.Report`` with ``evidently.metric_preset.DataDriftPreset``,
best of ``--repeat``, with Evidently's defaults (for numeric columns of more than 1,000
rows: normed Wasserstein distance, threshold 0.1). Prints one JSON line: ``tool``,
``version``, ``api``, ``seconds`` (the best run), ``all_seconds``, ``cpu_seconds`` (the fewest
CPU seconds of a run), ``drifted`` (column names),
``methods`` (the per-column methods used).

Usage: .venv-evidently/bin/python bench/_evidently_side.py REF.parquet CUR.parquet [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings


def _run_new(ref, cur):
    from evidently import Report
    from evidently.presets import DataDriftPreset

    return Report([DataDriftPreset()]).run(cur, ref)


def _drifted_new(snap):
    drifted, methods = [], set()
    for m in snap.dict()["metrics"]:
        cfg = m.get("config", {})
        if not cfg.get("type", "").endswith(":ValueDrift"):
            continue
        method, thr, val = cfg["method"], cfg["threshold"], m["value"]
        methods.add(method)
        # Evidently's rule: p-value tests drift at p <= threshold, distances at d >= threshold.
        if ("p_value" in method and val <= thr) or ("p_value" not in method and val >= thr):
            drifted.append(cfg["column"])
    return drifted, sorted(methods)


def _run_legacy(ref, cur):
    from evidently.metric_preset import DataDriftPreset
    from evidently.report import Report

    rep = Report(metrics=[DataDriftPreset()])
    rep.run(reference_data=ref, current_data=cur)
    return rep


def _drifted_legacy(rep):
    drifted, methods = [], set()
    for m in rep.as_dict()["metrics"]:
        by_col = m.get("result", {}).get("drift_by_columns")
        if not by_col:
            continue
        for name, r in by_col.items():
            methods.add(r.get("stattest_name", "?"))
            if r.get("drift_detected"):
                drifted.append(name)
    return drifted, sorted(methods)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference", help="Parquet file of the reference table")
    ap.add_argument("current", help="Parquet file of the current table")
    ap.add_argument("--repeat", type=int, default=3, help="runs; the best is reported (default 3)")
    a = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import evidently
    import pyarrow.parquet as pq

    try:
        import evidently.presets  # noqa: F401
        run, result, api = _run_new, _drifted_new, "evidently.Report + presets.DataDriftPreset"
    except ImportError:
        run, result, api = (_run_legacy, _drifted_legacy,
                            "evidently.report.Report + metric_preset.DataDriftPreset")
    ref = pq.read_table(a.reference).to_pandas()
    cur = pq.read_table(a.current).to_pandas()
    times, cpu, out = [], [], None
    for _ in range(max(1, a.repeat)):
        c0, t0 = time.process_time(), time.perf_counter()
        out = run(ref, cur)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    drifted, methods = result(out)  # reading the result back is not timed
    print(json.dumps({"tool": "evidently", "version": getattr(evidently, "__version__", "?"),
                      "api": api, "seconds": min(times), "all_seconds": times,
                      "cpu_seconds": min(cpu),
                      "drifted": sorted(drifted), "methods": methods}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
