"""drift() on two 1,000,000 x 1,000 float32 tables: time and peak memory (issue 4).

Targets: the whole drift job under 60 s on this 2-core machine, with a peak resident
memory under 1.5x the input. "Input" here is what the job is given: the reference and
the current table, 2 x 4 GB of float32 at full size. The ratio to one table (4 GB) is
printed too; it cannot be under 2 while both tables are in memory.

Steps:

1. Generate the reference and the current table (N(0,1) float32, the current one shifted
   by +0.5 sigma in 1% of the columns, at least one) in row batches of --batch-rows, and
   write them to Arrow IPC (or Parquet) files in a temporary directory (or --data-dir,
   where existing files of the right shape are reused). Generation happens in this
   process, so it never counts in the measured peak.
2. Run a fresh child process per repeat (this script with --child) that imports the
   engine, warms up its compiled kernels on a tiny table (timed separately), reads both
   files into Arrow tables (timed separately: "load"), and then times
   ``drift(ref_table, cur_table)`` (--mode raw, the default) or ``profile(ref_table)``
   followed by ``drift(ref_profile, cur_table)`` (--mode profile).
3. Peak memory is the child's own high-water mark of resident memory (``ru_maxrss`` from
   ``os.wait4``). This process also polls the child's RSS (/proc) every 20 ms, and kills it
   if it goes over --max-rss-gib (default: 80% of the available memory at the start), so
   that an over-large run cannot take the machine down. --trace makes the child sample its
   own RSS every 10 ms and keep the Python stack of the last sample that raised its
   high-water mark, so the report can name the engine function that built the peak (a
   killed child reports the last such stack it printed).

Reported: drift seconds vs 60 s (and load + drift), the child's CPU seconds (user + sys,
for the whole child: on a busy machine, CPU seconds over 2 cores show how much of the
wall time was waiting for a core), peak RSS, the RSS after loading the
tables, and peak / (reference + current) vs 1.5, peak / (one table), and the detected
and falsely flagged columns.

Usage: python bench/bench_drift_large.py [--rows 1000000] [--cols 1000] [--repeat 1]
           [--mode raw|profile] [--format arrow|parquet] [--data-dir DIR] [--trace]
Check a small size first: --rows 100000 --cols 200.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

LIMIT_S = 60.0
LIMIT_RATIO = 1.5
GIB = 1 << 30


# ---------------------------------------------------------------------------
# Data (parent)
# ---------------------------------------------------------------------------


def n_shifted(cols: int) -> int:
    return max(1, cols // 100)


def _paths(d: Path, fmt: str) -> tuple[Path, Path]:
    ext = "arrow" if fmt == "arrow" else "parquet"
    return d / f"ref.{ext}", d / f"cur.{ext}"


def _shape(path: Path, fmt: str) -> tuple[int, int] | None:
    try:
        if fmt == "arrow":
            with pa.memory_map(str(path)) as src:
                r = pa.ipc.open_file(src)
                return sum(r.get_batch(i).num_rows for i in range(r.num_record_batches)), \
                    len(r.schema)
        md = pq.read_metadata(path)
        return md.num_rows, md.num_columns
    except (OSError, pa.ArrowInvalid):
        return None


def write_table(path: Path, fmt: str, rows: int, cols: int, shift: int, batch_rows: int,
                rng: np.random.Generator) -> None:
    """N(0,1) float32, +0.5 in the first ``shift`` columns, written in row batches."""
    schema = pa.schema([(f"c{i}", pa.float32()) for i in range(cols)])
    tmp = path.with_suffix(path.suffix + ".tmp")
    writer = (pa.ipc.new_file(str(tmp), schema) if fmt == "arrow"
              else pq.ParquetWriter(str(tmp), schema, compression="none"))
    with writer:
        for start in range(0, rows, batch_rows):
            n = min(batch_rows, rows - start)
            block = rng.standard_normal(size=(cols, n), dtype=np.float32)  # one row per column
            block[:shift] += np.float32(0.5)
            batch = pa.record_batch(list(block), schema=schema)
            if fmt == "arrow":
                writer.write_batch(batch)
            else:
                writer.write_table(pa.Table.from_batches([batch]))
            del block, batch
    os.replace(tmp, path)


def prepare(d: Path, fmt: str, rows: int, cols: int, batch_rows: int) -> tuple[Path, Path, float]:
    ref_p, cur_p = _paths(d, fmt)
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for path, shift in ((ref_p, 0), (cur_p, n_shifted(cols))):
        if _shape(path, fmt) == (rows, cols):
            print(f"# reusing {path}")
            continue
        write_table(path, fmt, rows, cols, shift, batch_rows, rng)
    return ref_p, cur_p, time.perf_counter() - t0


# ---------------------------------------------------------------------------
# Child: load, drift, report JSON
# ---------------------------------------------------------------------------


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Tracer(threading.Thread):
    """Samples this process's RSS; keeps the main thread's Python stack at the last sample
    that raised the high-water mark by more than 16 MiB (where the peak was built)."""

    def __init__(self, interval: float = 0.01):
        super().__init__(daemon=True)
        self.interval, self.main = interval, threading.main_thread().ident
        self.peak, self.stack, self.timeline, self.stop = 0, [], [], threading.Event()
        self.reported = self.mark = 0
        self.t0 = time.perf_counter()

    def run(self):
        last_t = -1.0
        while not self.stop.is_set():
            r = _rss()
            now = time.perf_counter() - self.t0
            if r > self.peak and r > self.mark + (16 << 20):  # a new high, not just a few pages
                self.mark = r
                frame = sys._current_frames().get(self.main)
                self.stack = [f"{Path(fs.filename).parent.name}/{Path(fs.filename).name}:"
                              f"{fs.lineno} {fs.name}" for fs in traceback.extract_stack(frame)]
                if r >= self.reported + GIB // 2:  # for the parent, in case this process dies
                    print("TRACE " + json.dumps({"rss": r, "t": now, "stack": self.stack}),
                          flush=True)
                    self.reported = r
            self.peak = max(self.peak, r)
            if now - last_t >= 0.5:
                frame = sys._current_frames().get(self.main)
                fn = traceback.extract_stack(frame)[-1].name if frame else "?"
                self.timeline.append((round(now, 2), round(r / GIB, 2), fn))
                last_t = now
            time.sleep(self.interval)


def _read(path: str, fmt: str) -> pa.Table:
    if fmt == "arrow":
        with pa.OSFile(path) as f:  # a real read into memory, not a memory map
            return pa.ipc.open_file(f).read_all()
    return pq.read_table(path)


def child(a) -> int:
    from engine.monitor import drift, profile

    out = {"rss_import": _rss()}
    tracer = _Tracer() if a.trace else None
    t0 = time.perf_counter()
    warm = {f"c{i}": np.random.default_rng(1).normal(size=2000).astype(np.float32)
            for i in range(4)}
    drift(warm, warm)
    drift(profile(warm), warm)
    out["warmup_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref, cur = _read(a.ref, a.format), _read(a.cur, a.format)
    out["load_s"] = time.perf_counter() - t0
    out["input_bytes"] = ref.nbytes + cur.nbytes
    out["table_bytes"] = ref.nbytes
    out["chunks_per_column"] = ref.column(0).num_chunks
    out["rss_loaded"] = _rss()
    out["maxrss_before_drift"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("STAGE " + json.dumps(out | {"drift_started": time.time()}), flush=True)
    if tracer:
        tracer.start()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if a.mode == "raw":
        rep = drift(ref, cur)
    else:
        t1 = time.perf_counter()
        rp = profile(ref)
        out["profile_s"] = time.perf_counter() - t1
        rep = drift(rp, cur)
    out["drift_s"] = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    out["drift_cpu_s"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if tracer:
        tracer.stop.set()
        tracer.join()
        out["trace_peak"] = tracer.peak
        out["trace_stack"] = tracer.stack
        out["trace_timeline"] = tracer.timeline
    out["rss_end"] = _rss()
    out["maxrss_self"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out["drifted"] = rep.drifted_columns
    out["n_columns"] = ref.num_columns
    print("RESULT " + json.dumps(out), flush=True)
    return 0


# ---------------------------------------------------------------------------
# Parent: run a child, watch its memory
# ---------------------------------------------------------------------------


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 16 * GIB


def run_child(a, ref_p: Path, cur_p: Path, cap: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--ref", str(ref_p), "--cur", str(cur_p),
           "--format", a.format, "--mode", a.mode] + (["--trace"] if a.trace else [])
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as so:
        proc = subprocess.Popen(cmd, stdout=so, stderr=subprocess.STDOUT, text=True)
        polled, killed = 0, False
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            try:
                with open(f"/proc/{proc.pid}/statm") as f:
                    rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                polled = max(polled, rss)
                if rss > cap and not killed:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed = time.time()
            except (FileNotFoundError, ProcessLookupError, IndexError):
                pass
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        so.seek(0)
        text = so.read()
    res = {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "user_s": ru.ru_utime,
           "sys_s": ru.ru_stime, "maxrss": ru.ru_maxrss * 1024, "polled_peak": polled,
           "returncode": proc.returncode, "killed_at_cap": killed}
    lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    if lines:
        res.update(json.loads(lines[-1][len("RESULT "):]))
        return res
    res["output_tail"] = [ln for ln in text.strip().splitlines()
                          if not ln.startswith(("STAGE ", "TRACE "))][-15:]
    for tag in ("STAGE ", "TRACE "):  # how far a child that died got
        got = [json.loads(ln[len(tag):]) for ln in text.splitlines() if ln.startswith(tag)]
        if got:
            res[tag.strip().lower()] = got[-1]
    if killed and "stage" in res:
        res["killed_after_drift_s"] = killed - res["stage"]["drift_started"]
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\nUsage:")[0],
        epilog="Full size writes about 8 GB of files, and drift() then needs several times "
               "the input in memory (about 30 GiB measured on 2026-11-26, more than this "
               "machine has: the cap stops it). Check a small size first "
               "(--rows 100000 --cols 200).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows per table (default 1000000)")
    ap.add_argument("--cols", type=int, default=1000, help="float32 columns (default 1000); "
                    "1%% of them (at least one) are shifted by +0.5 sigma")
    ap.add_argument("--repeat", type=int, default=1,
                    help="child runs; the best time and the highest peak are reported (default 1)")
    ap.add_argument("--mode", choices=("raw", "profile"), default="raw",
                    help="raw: drift(ref_table, cur_table), the default; profile: "
                         "profile(ref_table) then drift(profile, cur_table), both timed")
    ap.add_argument("--format", choices=("arrow", "parquet"), default="arrow",
                    help="file format of the tables (default arrow: uncompressed Arrow IPC)")
    ap.add_argument("--batch-rows", type=int, default=100_000,
                    help="rows per record batch / row group, i.e. per chunk of every column "
                         "once loaded (default 100000)")
    ap.add_argument("--data-dir", type=Path,
                    help="keep the generated files here and reuse them when their shape matches "
                         "(default: a temporary directory, removed at the end)")
    ap.add_argument("--max-rss-gib", type=float,
                    help="kill the child above this RSS (default 80%% of MemAvailable at the start)")
    ap.add_argument("--trace", action="store_true",
                    help="record the Python stack at the child's RSS high-water mark")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ref", help=argparse.SUPPRESS)
    ap.add_argument("--cur", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child(a)

    cap = int((a.max_rss_gib * GIB) if a.max_rss_gib else 0.8 * _mem_available())
    tmp = None
    if a.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_drift_large_")
        d = Path(tmp.name)
    else:
        d = a.data_dir
        d.mkdir(parents=True, exist_ok=True)
    try:
        ref_p, cur_p, t_gen = prepare(d, a.format, a.rows, a.cols, a.batch_rows)
        runs = [run_child(a, ref_p, cur_p, cap) for _ in range(max(1, a.repeat))]
    finally:
        if tmp is not None:
            tmp.cleanup()
    return report(a, runs, t_gen, cap)


def report(a, runs, t_gen, cap) -> int:
    ok = [r for r in runs if "drift_s" in r]
    shift = n_shifted(a.cols)
    print(f"# bench_drift_large: 2 tables of {a.rows:,} x {a.cols:,} float32 ({a.format}, "
          f"{a.batch_rows:,} rows per chunk), +0.5 sigma in {shift} columns, mode {a.mode}; "
          f"data written in {t_gen:.1f} s (not measured); {len(runs)} child run(s)")
    for i, r in enumerate(runs):
        if "drift_s" not in r:
            why = f"killed above the {cap / GIB:.1f} GiB cap" if r["killed_at_cap"] else \
                f"exit {r['returncode']}"
            print(f"run {i + 1}: FAILED ({why}); peak RSS {r['maxrss'] / GIB:.2f} GiB; "
                  + " | ".join(r.get("output_tail", [])[-5:]))
            st = r.get("stage")
            if st:
                print(f"  it had loaded the tables ({st['input_bytes'] / GIB:.2f} GiB) in "
                      f"{st['load_s']:.1f} s, RSS then {st['rss_loaded'] / GIB:.2f} GiB"
                      + (f"; killed {r['killed_after_drift_s']:.1f} s into drift()"
                         if "killed_after_drift_s" in r else ""))
            if r.get("trace"):
                print(f"  last traced RSS high {r['trace']['rss'] / GIB:.2f} GiB, in:")
                for fr in r["trace"]["stack"]:
                    if "bench_drift_large" not in fr:
                        print(f"    {fr}")
            continue
        print(f"run {i + 1}: drift {r['drift_s']:.2f} s ({r['drift_cpu_s']:.1f} CPU s), load {r['load_s']:.2f} s, "
              f"warm-up {r['warmup_s']:.2f} s; RSS after import {r['rss_import'] / GIB:.2f} GiB, "
              f"after load {r['rss_loaded'] / GIB:.2f} GiB, peak {r['maxrss'] / GIB:.2f} GiB "
              f"(polled {r['polled_peak'] / GIB:.2f}); child CPU {r['user_s']:.1f} s user + "
              f"{r['sys_s']:.1f} s sys over {r['wall_s']:.1f} s wall")
    if not ok:
        return 1
    best = min(ok, key=lambda r: r["drift_s"])
    peak = max(r["maxrss"] for r in ok)
    inp, one = best["input_bytes"], best["table_bytes"]
    over = peak - best["rss_loaded"]
    t = best["drift_s"]
    print(f"input: reference + current {inp / 1e9:.2f} GB ({inp / GIB:.2f} GiB), "
          f"{best['chunks_per_column']} chunk(s) per column")
    print(f"drift() time (best):        {t:8.2f} s   limit {LIMIT_S:.0f} s: "
          f"{'met' if t < LIMIT_S else 'NOT met'}")
    print(f"load + drift():             {t + best['load_s']:8.2f} s   limit {LIMIT_S:.0f} s: "
          f"{'met' if t + best['load_s'] < LIMIT_S else 'NOT met'}")
    print(f"peak RSS / (ref + current): {peak / inp:8.3f}     limit {LIMIT_RATIO}: "
          f"{'met' if peak / inp < LIMIT_RATIO else 'NOT met'}   (peak {peak / GIB:.2f} GiB)")
    print(f"peak RSS / one table:       {peak / one:8.3f}     (at least 2 while both tables "
          "are loaded)")
    print(f"peak above the loaded tables: {over / GIB:.2f} GiB = {over / inp:.3f} x the input")
    drifted = set(best["drifted"])
    shifted = {f"c{i}" for i in range(shift)}
    print(f"detected {len(drifted & shifted)}/{shift} shifted; false positives "
          f"{len(drifted - shifted)}/{a.cols - shift}")
    if a.trace and best.get("trace_stack"):
        print(f"# RSS high-water mark {best['trace_peak'] / GIB:.2f} GiB (sampled) reached in:")
        for fr in best["trace_stack"]:
            if "engine" in fr or "kernels" in fr or "monitor" in fr or "drift" in fr:
                print(f"#   {fr}")
        print("# timeline (s, RSS GiB, innermost function):")
        for t_, g, fn in best["trace_timeline"]:
            print(f"#   {t_:7.2f} {g:6.2f}  {fn}")
    if a.json:
        a.json.write_text(json.dumps({"rows": a.rows, "cols": a.cols, "mode": a.mode,
                                      "format": a.format, "generate_s": t_gen, "runs": runs},
                                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
