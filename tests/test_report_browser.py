"""The drift report's HTML page in a real browser (headless Chromium): it fits 1280 and 1100
pixel wide windows (no horizontal scroll, every chart inside the viewport), and its script
sorts, filters and shows the chart tooltip.

Chromium is driven without Python dependencies: the page gets a probe script that runs
after the page's own, measures or clicks, and writes its findings as JSON into an
attribute of <body>; ``chromium --headless --dump-dom`` prints the DOM after the scripts.
CI installs Chromium (.ci/run) and these tests must run there: without Chromium they
fail when ``CI`` is set, and are skipped otherwise.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pyarrow as pa
import pytest

from engine.monitor.drift import drift

WIDTHS = (1280, 1100)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or next(
        (p for p in ("/usr/bin/chromium",) if os.access(p, os.X_OK)), None)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: CI must install it (.ci/run installs "
                        "Debian's chromium package) so that the report is checked in a browser")
        pytest.skip("chromium is not installed (CI installs it and runs these tests)")
    return path


def run_probe(chromium: str, page: str, probe: str, tmp_path, width: int, height: int = 800):
    """The JSON that ``probe`` (a script body) stored in ``document.body.dataset.probe``."""
    script = f"<script>(function(){{var out={{}};{probe}\n" \
             "document.body.setAttribute('data-probe',JSON.stringify(out))})();</script></body>"
    path = tmp_path / f"report-{width}.html"
    path.write_text(page.replace("</body>", script), encoding="utf-8")
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / f'profile-{width}'}",
           f"--window-size={width},{height}", "--dump-dom", path.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r'data-probe="([^"]*)"', out.stdout)
    assert m, (out.stdout[-2000:], out.stderr[-2000:])
    return json.loads(html.unescape(m.group(1)))


def wide_report():
    """Every kind of row the page has: drifted, clean, each finding, untestable with a long
    reason, a long column name without spaces, text and categorical columns, the mmd row,
    and many secondary tests with p-values."""
    rng = np.random.default_rng(7)
    n = 1500
    words = np.array(["fast", "slow", "cheap", "great", "support", "price", "works", "again"])

    def side(shift, pro):
        return {
            "age": rng.normal(40 + shift, 10, n),
            "income": rng.lognormal(10, 1, n),
            "score": rng.normal(size=n),
            "customer_lifetime_value_in_euros_over_the_last_twelve_months_rolling":
                rng.exponential(size=n) * (1 + shift / 10),
            "plan": rng.choice(["free", "pro", "enterprise", "education"], n,
                               p=[0.7 - pro, 0.2, pro, 0.1]),
            "review": [" ".join(rng.choice(words, 6)) for _ in range(n)],
            "zip": rng.integers(10000, 99999, n).astype(np.float64),
            "dropped": rng.normal(size=n),
            "emptied": rng.normal(size=n),
        }

    ref = pa.table(side(0.0, 0.1))
    cur = side(4.0, 0.3)
    cur["zip"] = [f"Z{int(v)}" for v in cur["zip"]]  # numbers became strings
    cur["emptied"] = pa.nulls(n, pa.float64())
    cur["brand_new_feature"] = rng.normal(size=n)
    del cur["dropped"]
    tests = ["ks", "wasserstein_normed", "psi", "hellinger", "chi2", "jensenshannon",
             "jensenshannon_trigrams", "mmd"]
    return drift(ref, pa.table(cur), tests=tests)


MEASURE = """
var de=document.documentElement;
out.inner=innerWidth;out.client=de.clientWidth;out.scroll=de.scrollWidth;
out.table=document.getElementById("cols").getBoundingClientRect().right;
out.svgs=Array.prototype.map.call(document.querySelectorAll("td.g svg"),function(s){
var b=s.getBoundingClientRect();return [b.left,b.right,b.width]});
out.ready=de.getAttribute("data-ready");
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_page_fits_the_window(chromium, tmp_path, width):
    rep = wide_report()
    statuses = {c["status"] for c in rep.columns}
    assert {"drift", "no drift", "missing", "all null", "new", "untestable"} <= statuses
    page = rep.to_html()
    m = run_probe(chromium, page, MEASURE, tmp_path, width)
    assert m["ready"] == "1"  # the page's own script ran to its end
    assert m["inner"] == width
    # No horizontal scroll, and the table (charts in its last column) inside the viewport.
    assert m["scroll"] <= m["inner"] and m["scroll"] <= m["client"], m
    assert m["table"] <= m["client"], m
    charts = [c for c in rep.columns if c["column"] in rep.distributions]
    assert len(m["svgs"]) == len(charts) > 5
    for left, right, w in m["svgs"]:
        assert 0 <= left and right <= m["client"] and w == 240, (left, right, m["client"])


# Sort by the statistic, both ways; filter by name; hover the first categorical chart.
INTERACT = """
var T=document.getElementById("cols"),H=T.tHead.rows[0].cells;
function names(){return Array.prototype.map.call(T.tBodies[0].rows,function(r){
return r.cells[1].getAttribute("data-v")})}
out.initial=names();H[5].click();out.stat_up=names();H[5].click();out.stat_down=names();
var q=document.getElementById("q");q.value="SCO";q.dispatchEvent(new Event("input"));
out.shown=document.getElementById("n").textContent;
out.hidden=Array.prototype.filter.call(T.tBodies[0].rows,function(r){return r.hidden}).length;
q.value="";q.dispatchEvent(new Event("input"));
var fs=document.getElementById("fs");fs.value="f";fs.dispatchEvent(new Event("change"));
out.findings=Array.prototype.filter.call(T.tBodies[0].rows,function(r){return !r.hidden})
.map(function(r){return r.cells[1].getAttribute("data-v")});
fs.value="";fs.dispatchEvent(new Event("change"));
var s=document.querySelector("td.g svg[data-l]"),b=s.getBoundingClientRect();
s.scrollIntoView();b=s.getBoundingClientRect();
s.dispatchEvent(new MouseEvent("mousemove",{bubbles:true,clientX:b.left+5,clientY:b.top+30}));
var tt=document.getElementById("tt");out.tip_hidden=tt.hidden;out.tip=tt.textContent;
out.ready=document.documentElement.getAttribute("data-ready");
"""


def test_script_sorts_filters_and_shows_the_tooltip(chromium, tmp_path):
    from engine.monitor.report_text import num as _num

    rng = np.random.default_rng(3)
    n = 400
    ref = pa.table({"age": rng.normal(40, 10, n), "score": rng.normal(size=n),
                    "plan": rng.choice(["free", "pro"], n, p=[0.7, 0.3]),
                    "gone": rng.normal(size=n)})
    cur = pa.table({"age": rng.normal(45, 10, n), "score": rng.normal(size=n),
                    "plan": rng.choice(["free", "pro"], n, p=[0.5, 0.5]),
                    "extra": rng.normal(size=n)})
    rep = drift(ref, cur, missing="report")
    probe = run_probe(chromium, rep.to_html(), INTERACT, tmp_path, 1280)
    assert probe["ready"] == "1"
    rank = {"d": 0, "f": 1, "o": 2, "u": 3}

    def cls(c):
        return "d" if c["counts_as_drift"] else {"no drift": "o", "untestable": "u"}.get(
            c["status"], "f")

    initial = [c["column"] for c in sorted(rep.columns, key=lambda c: rank[cls(c)])]
    assert probe["initial"] == initial
    # Statistic ascending, then descending; columns without one ('–') stay last.
    stat = {c["column"]: float(_num(c["statistic"])) for c in rep.columns
            if c["status"] in ("drift", "no drift")}
    rest = [c for c in initial if c not in stat]
    assert probe["stat_up"] == sorted(stat, key=stat.get) + rest
    assert probe["stat_down"] == sorted(stat, key=lambda c: -stat[c]) + rest
    assert probe["shown"] == "1" and probe["hidden"] == len(rep.columns) - 1  # 'score'
    assert probe["findings"] == ["gone", "extra"]  # reported, not counted
    plan = rep.distributions["plan"]
    share = 100 * plan["ref"][0] / sum(plan["ref"])
    assert probe["tip_hidden"] is False
    assert probe["tip"].startswith(plan["labels"][0]) and f"reference {share:.1f}%" in probe["tip"]
    assert f"{plan['ref'][0]} rows" in probe["tip"]
