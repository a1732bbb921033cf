"""Render a realistic synthetic drift report to HTML and screenshot it in headless Chromium.

Data: ``--rows`` reference and ``--cur-rows`` current rows of 50 numeric N(0, 1)
columns (5 of them shifted, scaled or given a heavier tail), 4 categorical
columns (one with a new category, one with an "(other)" bucket), a text column
(characters per script) and a numeric column whose current batch is all null
(not tested). Tests: KS + normed Wasserstein for numeric columns, chi-squared
+ Jensen-Shannon for categorical and text columns. The statistics come from scipy;
the engine's own decision rules (Benjamini-Hochberg, one primary test per column,
findings) make the report (the page, not the statistics, is under test here).

Writes ``--out`` (HTML) and, when Chromium is found, ``--png`` (a screenshot
of the top ``--height`` pixels at ``--width``), and prints the page size.

Usage: python bench/render_report_screenshot.py [--out /tmp/drift_report.html]
       [--png /tmp/report_screenshot.png] [--width 1400] [--height 2000]
       [--columns 50] [--seed 0] [--share-threshold 0.5] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from engine import __version__
from engine.monitor.drift_report import decide_rows, report

ALPHA = 0.05
WASSERSTEIN_THRESHOLD = 0.1
JS_THRESHOLD = 0.1
SHARE_THRESHOLD = 0.5
N_BINS = 12

NAMES = [
    "age", "income", "credit_score", "tenure_months", "balance", "num_products",
    "avg_txn_amount", "txn_count_30d", "days_since_login", "utilization", "debt_to_income",
    "loan_amount", "interest_rate", "session_length_s", "pages_per_visit",
]


def numeric_dist(r: np.ndarray, c: np.ndarray) -> dict:
    edges = np.linspace(r.min(), r.max(), N_BINS + 1)
    inner = np.concatenate([[-np.inf], edges, [np.inf]])
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "ref": np.histogram(r, inner)[0].tolist(),
        "cur": np.histogram(c, inner)[0].tolist(),
    }


def build(n_cols: int, n_ref: int, n_cur: int, seed: int, share_threshold: float = SHARE_THRESHOLD):
    rng = np.random.default_rng(seed)
    rows, dists = [], {}
    names = (NAMES + [f"feature_{i:02d}" for i in range(n_cols)])[:n_cols]
    shifted = {names[3]: ("shift", 0.5), names[8]: ("shift", -0.3), names[14]: ("scale", 1.6),
               names[27 % n_cols]: ("shift", 0.15), names[41 % n_cols]: ("tail", 3.0)}

    for name in names:
        r = rng.normal(size=n_ref)
        c = rng.normal(size=n_cur)
        kind, amount = shifted.get(name, (None, 0.0))
        if kind == "shift":
            c += amount
        elif kind == "scale":
            c *= amount
        elif kind == "tail":
            c = rng.standard_t(amount, size=n_cur)
        ks = stats.ks_2samp(r, c)
        w = stats.wasserstein_distance(r, c) / r.std(ddof=1)
        rows.append(dict(column=name, type="numeric", test="ks", statistic=float(ks.statistic),
                         p_value=float(ks.pvalue), threshold=ALPHA, reason=None))
        rows.append(dict(column=name, type="numeric", test="wasserstein_normed", statistic=float(w),
                         p_value=None, threshold=WASSERSTEIN_THRESHOLD, reason=None))
        dists[name] = numeric_dist(r, c)

    def categorical(name, labels, p_ref, p_cur, typ="categorical"):
        ref = rng.multinomial(n_ref, p_ref)
        cur = rng.multinomial(n_cur, p_cur)
        keep = (ref + cur) > 0
        table = np.vstack([ref[keep], cur[keep]])
        chi2 = stats.chi2_contingency(table, correction=False)
        js = jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2)
        rows.append(dict(column=name, type=typ, test="chi2", statistic=float(chi2.statistic),
                         p_value=float(chi2.pvalue), threshold=ALPHA, reason=None))
        rows.append(dict(column=name, type=typ, test="jensenshannon", statistic=float(js),
                         p_value=None, threshold=JS_THRESHOLD, reason=None))
        dists[name] = {"kind": typ, "labels": labels, "ref": ref.tolist(), "cur": cur.tolist()}

    categorical("country", ["DE", "FR", "IT", "ES", "NL", "PL", "(other)"],
                [.30, .22, .15, .12, .08, .06, .07], [.30, .22, .15, .12, .08, .06, .07])
    categorical("plan", ["free", "basic", "pro", "enterprise", "(unseen)"],
                [.55, .25, .15, .05, 0.0], [.40, .28, .17, .06, .09])
    categorical("device", ["desktop", "mobile", "tablet"], [.5, .42, .08], [.48, .44, .08])
    categorical("payment_method", ["card", "sepa", "paypal", "invoice"],
                [.5, .2, .2, .1], [.5, .2, .2, .1])
    categorical("comment_script", ["Latin", "Cyrillic", "Greek", "Han", "Arabic", "Common"],
                [.80, .06, .02, .04, .03, .05], [.70, .12, .02, .07, .04, .05], typ="text")

    # A column whose current batch is all null: not tested, with the reason.
    r = rng.normal(size=n_ref)
    for test, thr in (("ks", ALPHA), ("wasserstein_normed", WASSERSTEIN_THRESHOLD)):
        rows.append(dict(column="referral_bonus", type="numeric", test=test,
                         statistic=float("nan"), p_value=None, threshold=thr,
                         reason="current column has no values", drifted=None))
    d = numeric_dist(r, r[:0])
    dists["referral_bonus"] = d

    # The engine decides, as drift() would: BH over each test's p-values, one primary test
    # per column (KS / chi-squared), the all-null column a finding that counts as drift.
    for x in rows:
        x.update(primary=x["test"] in ("ks", "chi2"), n_ref=n_ref, n_cur=n_cur)
    decide_rows(rows, {"wasserstein_normed": WASSERSTEIN_THRESHOLD, "jensenshannon": JS_THRESHOLD},
                ALPHA, "bh")
    meta = {"title": "Drift report · transactions", "reference": "train_2024_05 @ 3f2a9c1",
            "reference_rows": n_ref, "current": "prod_2024_06_01 @ 8b0e4d7",
            "current_rows": n_cur,
            "created": dt.datetime(2024, 6, 2, 7, 30, tzinfo=dt.timezone.utc),
            "engine_version": __version__}
    return report(rows, {"referral_bonus": "all null"}, dists, meta, "", alpha=ALPHA,
                  correction="bh", share=share_threshold, missing="drift", new_columns="report")


def find_chromium(hint: str | None) -> str | None:
    for c in ([hint] if hint else []) + ["chromium", "chromium-browser", "google-chrome"]:
        path = shutil.which(c) if c else None
        if path:
            return path
    return None


def screenshot(chromium: str, html_path: str, png: str, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--screenshot={png}", f"--window-size={width},{height}",
               "file://" + os.path.abspath(html_path)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/drift_report.html")
    ap.add_argument("--png", default="/tmp/report_screenshot.png")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=2000)
    ap.add_argument("--columns", type=int, default=50)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--cur-rows", type=int, default=15_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--share-threshold", type=float, default=SHARE_THRESHOLD,
                    help="share of drifted columns that flags dataset drift (0.1: a red verdict)")
    ap.add_argument("--chromium", default=None)
    args = ap.parse_args(argv)

    rep = build(args.columns, args.rows, args.cur_rows, args.seed, args.share_threshold)
    dists = rep.distributions
    page = rep.to_html()
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(page)
    size = len(page.encode("utf-8"))
    print(f"{args.out}: {size:,} bytes for {len(dists)} columns "
          f"({size / len(dists):,.0f} bytes a column)")
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("chromium not found: no screenshot (apt-get install chromium)", file=sys.stderr)
        return 0
    screenshot(chromium, args.out, args.png, args.width, args.height)
    print(f"{args.png}: screenshot {args.width}x{args.height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
