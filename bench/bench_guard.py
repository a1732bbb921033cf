"""The per-request guard side by side: engine.monitor.Guard, plain pandas, whylogs (issue 13).

Data (seeded): a training table of 100 numeric columns ``n0..n99`` (normal, a different
location and scale each), 10 categorical ``cat0..cat9`` (5 to 32 levels) and one text
column ``note`` (one to three short sentences from a fixed Spanish vocabulary of 72
words); its profile
(``engine.monitor.profile``) and a ``Guard`` with the default policies and tolerance.

1. Per-request latency (p50, p99 of ``--requests`` calls, each timed alone) on three
   request sets, each half fitting training and half with exactly one violation:
   ``numeric``: the 100 numeric features (violations: out of range, null, missing column);
   ``text``: one 200-character text feature (violation: a Cyrillic word);
   ``full``: all 111 features (the violations of both, plus an unseen category).
   Requests are Python mappings (the shape of a parsed JSON body).
   * engine: ``guard.check_row(request, raise_on_reject=False)`` (a Guard of that set's
     columns; returning the violations instead of raising keeps exception cost out);
   * pandas: ``pd.DataFrame([request])`` and the same checks on that one-row frame
     (range with the same tolerance, null, unseen category, missing column, and for text
     the unseen-script check only: the letters' scripts of the training text found with
     ``unicodedata``, a regex of every other script's letters; no trigram check);
   * whylogs: ``why.log(row=request)`` with a ``ConditionValidator`` per column (range,
     category, script regex; whylogs has no per-row null or missing-column check) in its
     own venv and process (``bash bench/install_whylogs.sh``); skipped with a message when
     that venv is missing.
2. Batch throughput: ``guard.check(table)`` on ``--batch-rows`` rows x the 100 numeric
   columns, then x the full schema, against the vectorized pandas checks on the same data
   as a DataFrame (conversion not timed); about 0.1% of values violate. Values per second
   = rows x columns / best wall seconds; "per core" divides by CPU seconds instead.

Targets (issue 13): check_row of 100 numeric features p50 < 20 us and p99 < 50 us; one
200-character text feature p50 < 30 us; batches >= 10 million values/s per core.

Usage: python bench/bench_guard.py [--requests 20000] [--batch-rows 1000000] [--repeat 3]
           [--train-rows 20000] [--whylogs-python .venv-whylogs/bin/python] [--no-whylogs]
           [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from timing import best_of_cpu, run_peer

from engine.monitor import Guard, Profile, profile

ROOT = Path(__file__).resolve().parent.parent
SIDE = Path(__file__).resolve().parent / "_whylogs_side.py"
DEFAULT_WHYLOGS = ROOT / ".venv-whylogs" / "bin" / "python"
INSTALL = "bash bench/install_whylogs.sh"
TOLERANCE = 0.1  # the Guard's default; the pandas and whylogs checks use the same bounds

N_NUM, N_CAT = 100, 10
NUM = [f"n{i}" for i in range(N_NUM)]
CAT = [f"cat{j}" for j in range(N_CAT)]
TEXT = "note"
SPANISH = (
    "el la los las un una de del en y que con por para como pero más muy bien casa perro "
    "gato niño niña agua comida ciudad país tiempo día noche año mañana tarde siempre nunca "
    "ahora después antes también porque cuando donde mucho poco grande pequeño nuevo viejo "
    "bueno malo hablar comer vivir trabajar estudiar escribir leer tener hacer venir querer "
    "poder saber médico paciente azúcar sangre análisis resultado corazón información").split()
CYRILLIC = "привет сегодня хорошо погода спасибо".split()
# Letters of a few scripts as regex ranges: the pandas side flags a letter of any script
# training did not hold (scripts named by unicodedata: the first word of a letter's name).
SCRIPT_RANGES = {
    "LATIN": "A-Za-z\u00aa\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff",
    "GREEK": "\u0370-\u03ff\u1f00-\u1fff", "CYRILLIC": "\u0400-\u052f",
    "ARMENIAN": "\u0530-\u058f", "HEBREW": "\u0590-\u05ff", "ARABIC": "\u0600-\u06ff",
    "DEVANAGARI": "\u0900-\u097f", "THAI": "\u0e00-\u0e7f", "HANGUL": "\uac00-\ud7af",
    "HIRAGANA": "\u3040-\u309f", "KATAKANA": "\u30a0-\u30ff", "CJK": "\u4e00-\u9fff",
}


# ---------------------------------------------------------------------------- data
def sentence(rng, words: int) -> str:
    return " ".join(SPANISH[k] for k in rng.integers(0, len(SPANISH), words))


def text_of_length(rng, n: int) -> str:
    """Spanish words joined, cut to exactly ``n`` characters."""
    s = ""
    while len(s) < n:
        s += sentence(rng, int(rng.integers(4, 13))) + ". "
    return s[:n]


def note(rng) -> str:
    """A training note: one to three Spanish sentences of 4 to 12 words."""
    return " ".join(sentence(rng, int(k)) + "." for k in rng.integers(4, 13, rng.integers(1, 4)))


def make_training(rows: int, seed: int = 0):
    """Columns as NumPy arrays (float64, str objects) and the per-column generators' params."""
    rng = np.random.default_rng(seed)
    loc = rng.uniform(-50, 50, N_NUM)
    scale = rng.uniform(0.5, 20, N_NUM)
    levels = [np.array([f"c{j}_{k}" for k in range(5 + 3 * j)], dtype=object)
              for j in range(N_CAT)]
    cols = {c: loc[i] + scale[i] * rng.normal(size=rows) for i, c in enumerate(NUM)}
    for j, c in enumerate(CAT):
        cols[c] = levels[j][rng.integers(0, len(levels[j]), rows)]
    cols[TEXT] = np.array([note(rng) for _ in range(rows)], dtype=object)
    return cols, (loc, scale, levels)


def bounds(cols) -> dict:
    """[min - t, max + t], t = TOLERANCE * (max - min): the Guard's documented range."""
    out = {}
    for c in NUM:
        lo, hi = float(cols[c].min()), float(cols[c].max())
        w = hi - lo if hi > lo else max(abs(lo), 1.0)
        out[c] = (lo - TOLERANCE * w, hi + TOLERANCE * w)
    return out


def make_requests(cols, bnd, n: int, kind: str, seed: int = 1) -> list:
    """``n`` request mappings of set ``kind``; even ones fit, odd ones carry one violation."""
    rng = np.random.default_rng(seed)
    names = {"numeric": NUM, "text": [TEXT], "full": NUM + CAT + [TEXT]}[kind]
    faults = {"numeric": ["range", "null", "missing_column"], "text": ["unseen_script"],
              "full": ["range", "null", "missing_column", "unseen_category",
                       "unseen_script"]}[kind]
    rows = len(cols[NUM[0]])
    reqs = []
    for i in range(n):
        k = int(rng.integers(0, rows))
        r = {}
        for c in names:
            if c == TEXT:
                r[c] = text_of_length(rng, 200)
            else:
                v = cols[c][k]
                r[c] = float(v) if c in bnd else str(v)
        if i % 2:
            f = faults[(i // 2) % len(faults)]
            num_col = NUM[int(rng.integers(0, N_NUM))]
            if f == "range":
                lo, hi = bnd[num_col]
                r[num_col] = hi + (hi - lo)
            elif f == "null":
                r[num_col] = None
            elif f == "missing_column":
                del r[num_col]
            elif f == "unseen_category":
                r[CAT[int(rng.integers(0, N_CAT))]] = "zz_never_seen"
            else:
                w = CYRILLIC[int(rng.integers(0, len(CYRILLIC)))]
                r[TEXT] = (w + " " + r[TEXT])[:200]
        reqs.append(r)
    return reqs


# ---------------------------------------------------------------------------- pandas
def letter_scripts(texts) -> set:
    chars = set().union(*map(set, texts))
    return {unicodedata.name(ch, "?").split()[0] for ch in chars
            if unicodedata.category(ch).startswith("L")}


class PandasChecks:
    """The guard's checks as a pandas user would write them (no trigram check).

    ``check(df)`` returns ``{check: (rows, columns)}`` of NumPy index arrays (a missing
    column as row -1: it concerns every row).
    """

    def __init__(self, train: pd.DataFrame, tolerance: float = TOLERANCE):
        self.columns = pd.Index(train.columns)
        self.num = self.columns.intersection(NUM, sort=False)
        num = train[self.num]
        mn, mx = num.min(), num.max()
        w = (mx - mn).where(mx > mn, np.maximum(mn.abs(), 1.0))
        self.lo, self.hi = mn - tolerance * w, mx + tolerance * w
        self.num_null_ok = num.isna().any()
        self.cats = [c for c in CAT if c in self.columns]
        self.seen = {c: pd.Index(train[c].dropna().unique()) for c in self.cats}
        self.texts = [c for c in [TEXT] if c in self.columns]
        allowed = letter_scripts(train[TEXT].dropna()) if self.texts else set()
        others = "".join(r for s, r in SCRIPT_RANGES.items() if s not in allowed)
        self.bad_script = re.compile(f"[{others}]")
        self.pos = {c: i for i, c in enumerate(self.columns)}

    def check(self, df: pd.DataFrame) -> dict:
        out: dict = {}

        def add(check, rows, cols):
            r0, c0 = out.get(check, (np.empty(0, np.intp), np.empty(0, np.intp)))
            out[check] = (np.concatenate([r0, rows]), np.concatenate([c0, cols]))

        missing = self.columns.difference(df.columns, sort=False)
        if len(missing):
            add("missing_column", np.full(len(missing), -1),
                np.array([self.pos[c] for c in missing]))
        num_cols = self.num.intersection(df.columns, sort=False)
        if len(num_cols):
            num = df[num_cols]
            if not (num.dtypes == np.float64).all():
                num = num.astype(np.float64)
            x = num.to_numpy()
            where = np.array([self.pos[c] for c in num_cols])
            nan = np.isnan(x) & ~self.num_null_ok[num_cols].to_numpy()
            r, c = np.nonzero(nan)
            add("null", r, where[c])
            r, c = np.nonzero((x < self.lo[num_cols].to_numpy()) |
                              (x > self.hi[num_cols].to_numpy()))
            add("range", r, where[c])
        for c in self.cats:
            if c in df.columns:
                s = df[c]
                r = np.flatnonzero((~s.isin(self.seen[c]) & s.notna()).to_numpy())
                add("unseen_category", r, np.full(len(r), self.pos[c]))
        for c in self.texts:
            if c in df.columns:
                r = np.flatnonzero(df[c].str.contains(self.bad_script, na=False).to_numpy())
                add("unseen_script", r, np.full(len(r), self.pos[c]))
        return out

    def check_row(self, request) -> dict:
        return self.check(pd.DataFrame([request]))


# ---------------------------------------------------------------------------- timing
def latencies_us(fn, reqs, warmup: int) -> np.ndarray:
    for r in reqs[:warmup]:
        fn(r)
    ns = np.empty(len(reqs), dtype=np.int64)
    clock = time.perf_counter_ns
    for i, r in enumerate(reqs):
        t0 = clock()
        fn(r)
        ns[i] = clock() - t0
    return ns / 1e3


def run_whylogs(python: Path, spec: dict, warmup: int) -> dict:
    """whylogs' JSON line, or ``{"skipped": reason}``."""
    with tempfile.TemporaryDirectory(prefix="bench_guard_") as tmp:
        path = Path(tmp, "spec.json")
        path.write_text(json.dumps(spec), encoding="utf-8")
        return run_peer(python, [SIDE, path, "--warmup", warmup], "whylogs", INSTALL, cwd=ROOT)


def _engine_counts(viols) -> Counter:
    return Counter(v.check for v in viols)


def _pandas_counts(res: dict) -> Counter:
    return Counter({k: len(r) for k, (r, _) in res.items() if len(r)})


def _ratio(x) -> str:
    if x is None or not np.isfinite(x):
        return "-"
    return f"{x:.1f}x" if x >= 1 else f"{x:.3f}x"


def _fmt_counts(c) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "none"


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\nUsage:")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="whylogs runs only if its venv exists; install it with: " + INSTALL)
    ap.add_argument("--requests", type=int, default=20_000,
                    help="requests per set, half fitting (default 20000)")
    ap.add_argument("--whylogs-requests", type=int, default=None,
                    help="requests per set for whylogs (default: --requests)")
    ap.add_argument("--batch-rows", type=int, default=1_000_000,
                    help="rows of the batch tables (default 1000000)")
    ap.add_argument("--train-rows", type=int, default=20_000,
                    help="rows of the training table (default 20000)")
    ap.add_argument("--repeat", type=int, default=3, help="batch runs; the best is reported")
    ap.add_argument("--warmup", type=int, default=500, help="untimed requests first (default 500)")
    ap.add_argument("--whylogs-python", type=Path, default=DEFAULT_WHYLOGS,
                    help="the Python of whylogs' venv (default .venv-whylogs/bin/python)")
    ap.add_argument("--no-whylogs", action="store_true", help="skip whylogs")
    ap.add_argument("--json", type=Path, help="also write the results to this JSON file")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 400 requests, 20000 batch rows, 2000 training rows, "
                         "1 repeat")
    a = ap.parse_args(argv)
    if a.quick:
        a.requests, a.batch_rows, a.train_rows, a.repeat, a.warmup = 400, 20_000, 2_000, 1, 50
    wl_n = a.whylogs_requests or a.requests

    t0 = time.perf_counter()
    cols, (loc, scale, levels) = make_training(a.train_rows)
    train_df = pd.DataFrame(cols)
    train = pa.table({c: pa.array(v, pa.string()) if v.dtype == object else v
                      for c, v in cols.items()})
    prof = profile(train, types={**dict.fromkeys(CAT, "categorical"), TEXT: "text"})
    bnd = bounds(cols)
    print(f"# bench_guard: training {a.train_rows:,} rows x ({N_NUM} numeric + {N_CAT} "
          f"categorical + 1 text); profile built in {time.perf_counter() - t0:.2f} s (with data)")

    sets = {"numeric": NUM, "text": [TEXT], "full": NUM + CAT + [TEXT]}
    guards = {k: Guard(Profile(prof.n_rows, {c: prof.columns[c] for c in v}, prof.params))
              for k, v in sets.items()}
    checkers = {k: PandasChecks(train_df[v]) for k, v in sets.items()}
    reqs = {k: make_requests(cols, bnd, a.requests, k, seed=1 + i)
            for i, k in enumerate(sets)}

    # --- 1. per-request latency
    lat: dict = {}
    agree: dict = {}
    for k in sets:
        g, pc_ = guards[k], checkers[k]
        e_us = latencies_us(lambda r, g=g: g.check_row(r, raise_on_reject=False), reqs[k],
                            a.warmup)
        p_us = latencies_us(pc_.check_row, reqs[k], min(a.warmup, 50))
        ec, pcnt = Counter(), Counter()
        for r in reqs[k]:  # what each found (not timed)
            ec += _engine_counts(g.check_row(r, raise_on_reject=False))
            pcnt += _pandas_counts(pc_.check_row(r))
        lat[k] = {"engine": e_us, "pandas": p_us}
        agree[k] = (ec, pcnt)

    wl = {"skipped": "--no-whylogs"} if a.no_whylogs else run_whylogs(
        a.whylogs_python,
        {"bounds": {c: list(b) for c, b in bnd.items()},
         "categories": {c: [str(x) for x in lv] for c, lv in zip(CAT, levels)},
         "text": {TEXT: checkers["full"].bad_script.pattern},
         "columns": sets, "sets": {k: reqs[k][:wl_n] for k in sets}},
        min(a.warmup, 200))

    # --- 2. batch throughput
    rng = np.random.default_rng(7)
    n = a.batch_rows
    bcols = {c: loc[i] + scale[i] * rng.normal(size=n) for i, c in enumerate(NUM)}
    for c in NUM:  # about 0.1% out of range, 0.01% NaN
        lo, hi = bnd[c]
        bcols[c][rng.random(n) < 1e-3] = hi + (hi - lo)
        bcols[c][rng.random(n) < 1e-4] = np.nan
    pool = np.array([text_of_length(rng, 200) for _ in range(min(n, 20_000))], dtype=object)
    bad_pool = np.array([(CYRILLIC[i % len(CYRILLIC)] + " " + s)[:200]
                         for i, s in enumerate(pool[:100])], dtype=object)
    full_extra = {}
    for j, c in enumerate(CAT):
        v = levels[j][rng.integers(0, len(levels[j]), n)]
        v[rng.random(n) < 1e-3] = "zz_never_seen"
        full_extra[c] = v
    txt = pool[rng.integers(0, len(pool), n)]
    hit = np.flatnonzero(rng.random(n) < 1e-3)
    txt[hit] = bad_pool[rng.integers(0, len(bad_pool), len(hit))]
    full_extra[TEXT] = txt
    batch: dict = {}
    for k, names in (("numeric", NUM), ("full", NUM + CAT + [TEXT])):
        tbl = pa.table({c: bcols[c] if c in bcols else pa.array(full_extra[c], pa.string())
                        for c in names})
        df = tbl.to_pandas()
        g, pc_ = guards[k], checkers[k]
        g.check(tbl.slice(0, 1000))  # compile / warm up
        t_e, c_e, res_e = best_of_cpu(lambda g=g, tbl=tbl: g.check(tbl), a.repeat)
        t_p, c_p, res_p = best_of_cpu(lambda pc_=pc_, df=df: pc_.check(df), a.repeat)
        vals = n * len(names)
        batch[k] = {"values": vals, "engine_s": t_e, "engine_cpu_s": c_e, "pandas_s": t_p,
                    "pandas_cpu_s": c_p,
                    "engine_found": dict(Counter(res_e.column("check").to_pylist())),
                    "pandas_found": dict(_pandas_counts(res_p))}
        del tbl, df, res_e, res_p

    # --- report
    def pct(x, q):
        return float(np.percentile(x, q))

    print(f"# 1. per-request latency, us ({a.requests:,} requests per set, half with one "
          f"violation; timer per call; engine: check_row(raise_on_reject=False))")
    hdr = (f"{'set':<9} {'engine p50':>10} {'p99':>7} {'pandas p50':>10} {'p99':>8} "
           f"{'whylogs p50':>11} {'p99':>8} {'vs pandas':>9} {'vs whylogs':>10}  target")
    print(hdr)
    print("-" * len(hdr))
    targets = {"numeric": (20, 50), "text": (30, None), "full": (None, None)}
    results_lat = {}
    for k in sets:
        e, p = lat[k]["engine"], lat[k]["pandas"]
        w = wl.get("sets", {}).get(k) if "skipped" not in wl else None
        e50, e99, p50, p99 = pct(e, 50), pct(e, 99), pct(p, 50), pct(p, 99)
        w50, w99 = (w["p50_us"], w["p99_us"]) if w else (None, None)
        t50, t99 = targets[k]
        tgt = []
        if t50:
            tgt.append(f"p50 < {t50}: {'met' if e50 < t50 else 'NOT met'}")
        if t99:
            tgt.append(f"p99 < {t99}: {'met' if e99 < t99 else 'NOT met'}")
        ws50 = f"{w50:.1f}" if w else "-"
        ws99 = f"{w99:.1f}" if w else "-"
        print(f"{k:<9} {e50:10.2f} {e99:7.2f} {p50:10.1f} {p99:8.1f} {ws50:>11} {ws99:>8} "
              f"{_ratio(p50 / e50):>9} {_ratio(w50 / e50 if w else None):>10}  "
              f"{'; '.join(tgt) or '-'}")
        results_lat[k] = {"engine_p50_us": e50, "engine_p99_us": e99, "pandas_p50_us": p50,
                          "pandas_p99_us": p99, "whylogs_p50_us": w50, "whylogs_p99_us": w99,
                          "engine_found": dict(agree[k][0]), "pandas_found": dict(agree[k][1]),
                          "whylogs_found": w["failures"] if w else None}
    print("# found per set (engine | pandas | whylogs); the engine also runs the trigram check")
    for k in sets:
        r = results_lat[k]
        wf = "-" if r["whylogs_found"] is None else _fmt_counts(r["whylogs_found"])
        print(f"  {k:<8} {_fmt_counts(r['engine_found'])} | {_fmt_counts(r['pandas_found'])}"
              f" | {wf}")
    if "skipped" in wl:
        print(f"whylogs: SKIPPED: {wl['skipped']}")
    else:
        print(f"# whylogs {wl['version']}: {wl['api']}; {wl_n:,} requests per set")

    print(f"# 2. batch throughput, million values/s ({n:,} rows, best of {a.repeat}; per core: "
          f"values / CPU seconds)")
    hdr2 = (f"{'set':<9} {'values':>12} {'engine':>8} {'per core':>9} {'pandas':>8} "
            f"{'per core':>9} {'vs pandas':>9}  target (>= 10 M/s per core)")
    print(hdr2)
    print("-" * len(hdr2))
    for k, b in batch.items():
        v = b["values"]
        e, ec = v / b["engine_s"] / 1e6, v / max(b["engine_cpu_s"], 1e-9) / 1e6
        p, pcr = v / b["pandas_s"] / 1e6, v / max(b["pandas_cpu_s"], 1e-9) / 1e6
        print(f"{k:<9} {v:12,} {e:8.1f} {ec:9.1f} {p:8.1f} {pcr:9.1f} "
              f"{_ratio(b['pandas_s'] / b['engine_s']):>9}  {'met' if ec >= 10 else 'NOT met'}")
        b.update(engine_mvals_s=e, engine_mvals_s_per_core=ec, pandas_mvals_s=p,
                 pandas_mvals_s_per_core=pcr)
    for k, b in batch.items():
        print(f"  {k:<8} found: engine {_fmt_counts(b['engine_found'])} | pandas "
              f"{_fmt_counts(b['pandas_found'])}")
    if a.json:
        a.json.write_text(json.dumps({
            "requests": a.requests, "batch_rows": n, "train_rows": a.train_rows,
            "repeat": a.repeat, "quick": a.quick, "latency": results_lat, "batch": batch,
            "whylogs": wl}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
