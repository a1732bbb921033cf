"""The drift verdict: one decision per column, the 'untestable' state, findings about the
schema, the threshold rule and the summary's words, and one validation of the options
(issue 9, items 1 to 4)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from engine.monitor.drift import drift

ROOT = Path(__file__).resolve().parent.parent


def page_rows(page: str) -> dict[str, tuple[str, str]]:
    """Column name -> (row class, row HTML) of the report page's table."""
    tbody = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    out = {}
    for m in re.finditer(r'<tr class="(\w)">(.*?)</tr>', tbody, flags=re.S):
        name = re.search(r'<td class="c" data-v="([^"]*)"', m.group(2)).group(1)
        out[name] = (m.group(1), m.group(2))
    return out


def banner(page: str) -> tuple[str, str]:
    """(heading, lead sentence) of the page's verdict banner."""
    m = re.search(r"<h2>(.*?)</h2><p>(.*?)</p>", page, flags=re.S)
    return m.group(1), m.group(2)


def nudged(n=20_000, seed=0):
    """'nudged' moves by 0.06 sd: its secondary KS test drifts (p ~ 1e-5), its primary
    normed Wasserstein (0.055 < 0.1) does not. 'moved' drifts on every test."""
    rng = np.random.default_rng(seed)
    ref = pa.table({"quiet": rng.normal(size=n), "nudged": rng.normal(size=n),
                    "moved": rng.normal(size=n), "plan": rng.choice(["a", "b"], n)})
    cur = pa.table({"quiet": rng.normal(size=n), "nudged": rng.normal(size=n) + 0.06,
                    "moved": rng.normal(size=n) + 1.0, "plan": rng.choice(["a", "b"], n)})
    return ref, cur


def small(n=400, seed=1, **cols):
    rng = np.random.default_rng(seed)
    base = {c: rng.normal(size=n) for c in ("a", "b", "c", "d")}
    base.update(cols)
    return pa.table(base)


# --------------------------------------------------------------------------- item 1


def test_item1_page_summary_json_and_status_share_one_decision_per_column():
    ref, cur = nudged()
    rep = drift(ref, cur)
    by = {c["column"]: c for c in rep.columns}
    # The secondary KS test of 'nudged' drifted; its primary test did not: no drift.
    ks = [r for r in rep.table.to_pylist() if r["column"] == "nudged" and r["test"] == "ks"][0]
    assert ks["drifted"] is True and ks["primary"] is False
    assert by["nudged"]["test"] == "wasserstein_normed"
    assert by["nudged"]["status"] == "no drift" and by["nudged"]["counts_as_drift"] is False
    assert by["moved"]["status"] == "drift" and by["moved"]["counts_as_drift"] is True
    assert rep.drifted_columns == ["moved"]
    assert rep.status == rep.verdict["status"] == "no drift" and rep.drift is False
    # JSON: the same per-column view and the same verdict.
    doc = json.loads(rep.to_json())
    assert [(c["column"], c["status"], c["counts_as_drift"]) for c in doc["columns"]] == \
        [(c["column"], c["status"], c["counts_as_drift"]) for c in rep.columns]
    assert doc["verdict"]["drifted_columns"] == 1 and doc["verdict"]["status"] == "no drift"
    # The summary and the page's banner say the same thing.
    assert rep.summary().startswith("no drift: 1 of 4 columns drifted")
    page = rep.to_html()
    head, lead = banner(page)
    assert head == "No drift detected" and rep.summary() == f"no drift: {lead}"
    # The page: one red row (moved); 'nudged' is clean, its KS drift shown as secondary
    # evidence with its p-value.
    rows = page_rows(page)
    assert [n for n, (cls, _) in rows.items() if cls == "d"] == ["moved"]
    cls, html = rows["nudged"]
    assert cls == "o" and '<span class="s">no drift</span>' in html
    assert "<td>wasserstein_normed</td>" in html.replace("<wbr>", "")
    chip = re.search(r'<span class="t x"[^>]*>ks [^<]*<em>([^<]*)</em>', html)
    assert chip and chip.group(1) == "p adj. 8.54e-6"
    assert "Secondary tests" in page
    # The page reads the report's decision, it does not make one: change the decision in
    # the report object and the page follows.
    by["nudged"].update(status="drift", counts_as_drift=True)
    assert page_rows(rep.to_html())["nudged"][0] == "d"


# --------------------------------------------------------------------------- item 2


@pytest.mark.parametrize("make_current, why", [
    (lambda ref: ref.slice(0, 0), "the current data has no rows"),
    (lambda ref: pa.table({n: pa.nulls(50, ref.schema.field(n).type) for n in ref.column_names}),
     "no values"),
    (lambda ref: pa.table({"other": np.arange(50.0)}), "shares no column with the reference"),
])
def test_item2_nothing_compared_is_untestable(make_current, why):
    ref = small()
    rep = drift(ref, make_current(ref))
    assert rep.status == rep.verdict["status"] == "untestable"
    assert rep.drift is False and rep.verdict["drift"] is False
    assert why in rep.verdict["reason"]
    assert rep.summary().startswith("UNTESTABLE: nothing could be compared")
    assert json.loads(rep.to_json())["verdict"]["status"] == "untestable"
    head, lead = banner(rep.to_html())
    assert "Untestable" in head and rep.summary() == f"UNTESTABLE: {lead}"


def test_item2_missing_all_null_and_new_columns_are_findings():
    ref = small()
    cur = small(seed=2).drop_columns(["d"]).set_column(2, "c", pa.nulls(400, pa.float64()))
    cur = cur.append_column("e", pa.array(np.arange(400.0)))
    rep = drift(ref, cur)
    by = {c["column"]: c for c in rep.columns}
    assert by["d"]["status"] == "missing" and by["d"]["counts_as_drift"] is True
    assert by["c"]["status"] == "all null" and by["c"]["counts_as_drift"] is True
    assert by["e"]["status"] == "new" and by["e"]["counts_as_drift"] is False
    assert by["a"]["status"] == by["b"]["status"] == "no drift"
    assert rep.drifted_columns == ["c", "d"]
    assert (rep.verdict["drifted_columns"], rep.verdict["counted_columns"]) == (2, 4)
    assert rep.status == "drift" and rep.drift  # 2 of 4 reach the 0.5 share
    assert "1 missing from the current data" in rep.summary()
    assert "1 all null" in rep.summary() and "1 new column" in rep.summary()

    # The options: report only, or leave out; new columns can count.
    rep = drift(ref, cur, missing="report", new_columns="drift")
    by = {c["column"]: c for c in rep.columns}
    assert by["d"]["status"] == "missing" and by["d"]["counts_as_drift"] is False
    assert by["c"]["counts_as_drift"] is False and by["e"]["counts_as_drift"] is True
    assert rep.drifted_columns == ["e"] and rep.verdict["counted_columns"] == 3
    rep = drift(ref, cur, missing="ignore", new_columns="ignore")
    assert [c["column"] for c in rep.columns] == ["a", "b"]
    assert set(rep.table.column("column").to_pylist()) == {"a", "b"}
    assert rep.status == "no drift" and rep.verdict["counted_columns"] == 2
    # A selected column that the current data lacks is missing too, not an error.
    rep = drift(ref, cur.to_pandas(), columns=["a", "d"])
    assert [(c["column"], c["status"]) for c in rep.columns] == [("a", "no drift"),
                                                                 ("d", "missing")]
    for kw in ({"missing": "yes"}, {"new_columns": "count"}):
        with pytest.raises(ValueError, match=f"{next(iter(kw))} must be one of"):
            drift(ref, cur, **kw)


# --------------------------------------------------------------------------- item 3


def test_item3_threshold_rule_is_strictly_greater_on_the_page_and_in_the_code():
    ref, cur = nudged(n=3000)
    psi = {r["column"]: r["statistic"] for r in drift(ref, cur, tests=["psi"]).table.to_pylist()}
    at = drift(ref, cur, tests=["psi"], thresholds={"moved": {"psi": psi["moved"]}})
    below = drift(ref, cur, tests=["psi"],
                  thresholds={"moved": {"psi": float(np.nextafter(psi["moved"], 0))}})
    assert {c["column"]: c["status"] for c in at.columns}["moved"] == "no drift"
    assert {c["column"]: c["status"] for c in below.columns}["moved"] == "drift"
    page = below.to_html()
    assert "≥" not in page and "&gt;0.1</td>" in page and f"&gt;{psi['moved']:.4g}</td>" in page
    by = {c["column"]: c for c in below.columns}
    stat, thr = by["moved"]["reason"].split(" > ")  # digits enough to tell them apart
    assert stat.startswith("psi ") and float(stat[4:]) > float(thr)
    assert by["quiet"]["reason"] == f"psi {psi['quiet']:.4g} <= 0.1"
    assert {c["column"]: c["reason"] for c in at.columns}["moved"] == \
        f"psi {psi['moved']:.4g} <= {psi['moved']:.4g}"


def test_item3_summary_says_what_was_decided_and_why():
    ref, cur = nudged()
    rep = drift(ref, cur)
    assert rep.summary() == ("no drift: 1 of 4 columns drifted (25%), below the 50% share "
                             "that declares dataset drift")
    rep = drift(ref, cur, share=0.25)
    assert rep.summary() == ("DRIFT: 1 of 4 columns drifted (25%), at or above the 25% share "
                             "that declares dataset drift")
    # Never "no drift: N of M columns drifted" without the reason.
    for r in (drift(ref, cur), drift(ref, cur, share=0.25)):
        assert "share that declares dataset drift" in r.summary()
        assert r.summary().endswith(banner(r.to_html())[1])


# --------------------------------------------------------------------------- item 4


def test_item4_options_are_validated_once_as_the_docs_say():
    from engine.monitor.drift import check_options

    docs = " ".join((ROOT / "docs" / "monitor.md").read_text(encoding="utf-8").split())
    assert "Keys that name no test and no column are ignored" not in docs
    assert "A key that names neither a known test nor a column is an error" in docs
    ref, cur = small(), small(seed=2)
    for bad, name in (({"agee": {"ks": 0.01}}, "'agee'"), ({"pis": 0.2}, "'pis'")):
        with pytest.raises(ValueError, match=f"thresholds.*{name}"):
            drift(ref, cur, thresholds=bad)
    with pytest.raises(ValueError, match="thresholds.*'agee'"):
        check_options(thresholds={"agee": {"ks": 0.01}}, column_names=["a", "age"])
    # correction="none" (the CLI's spelling) and None are the same, in the API too.
    assert check_options(correction="none")["correction"] is None
    rep_none, rep_null = drift(ref, cur, correction="none"), drift(ref, cur, correction=None)
    assert rep_none.table.equals(rep_null.table) and rep_none.verdict == rep_null.verdict
    assert "`\"none\"` or `None`: no adjustment" in docs
    with pytest.raises(ValueError, match="correction must be"):
        check_options(correction="holm")
    opts = check_options(tests="ks", thresholds={"psi": 1}, alpha=0.01)
    assert opts == {"tests": ["ks"], "thresholds": {"psi": 1.0}, "correction": "bh",
                    "alpha": 0.01, "share": 0.5, "missing": "drift", "new_columns": "report"}
    assert drift(ref, cur, **opts).verdict["alpha"] == 0.01
