"""The HTML page of a drift report: structure, escaping, size, self-containment. The page
draws the report's per-column decisions; it decides nothing. (In a real browser:
tests/test_report_browser.py.)"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest

from engine.monitor.report_html import render_html

FIELDS = ["column", "type", "test", "statistic", "p_value", "p_adjusted", "threshold", "drifted",
          "primary", "reason"]
SCHEMA = pa.schema([("column", pa.string()), ("type", pa.string()), ("test", pa.string()),
                    ("statistic", pa.float64()), ("p_value", pa.float64()),
                    ("p_adjusted", pa.float64()), ("threshold", pa.float64()),
                    ("drifted", pa.bool_()), ("primary", pa.bool_()), ("reason", pa.string())])
VERDICT = {"status": "drift", "drift": True,
           "reason": "2 of 4 columns drifted (50%), at or above the 50% share that declares "
                     "dataset drift",
           "drifted_columns": 2, "counted_columns": 4, "tested_columns": 4, "untested_columns": 1,
           "share": 0.5, "share_threshold": 0.5, "correction": "bh", "alpha": 0.05}
EVIL = "<script>alert(\"x\")</script> & 'q' ü 列 \u200b"


def row(column, test="ks", type="numeric", statistic=0.1, p_value=0.5, p_adjusted=0.6,
        threshold=0.05, drifted=False, primary=True, reason=None):
    """One test row of the report's table."""
    return dict(column=column, type=type, test=test, statistic=statistic, p_value=p_value,
                p_adjusted=p_adjusted, threshold=threshold, drifted=drifted, primary=primary,
                reason=reason)


def col(r, status=None, counts=None, reason=None):
    """The decision of a column, from its primary row (what DriftReport.columns holds)."""
    if status is None:
        status = {True: "drift", False: "no drift", None: "untestable"}[r["drifted"]]
    counts = status == "drift" if counts is None else counts
    return {"column": r["column"], "type": r["type"], "status": status,
            "counts_as_drift": counts, "test": r["test"], "statistic": r["statistic"],
            "p_value": r["p_value"], "p_adjusted": r["p_adjusted"], "threshold": r["threshold"],
            "reason": reason if reason is not None else r["reason"]}


def table(rows):
    return pa.table({f: [r[f] for r in rows] for f in FIELDS}, schema=SCHEMA)


def render(rows, verdict=None, dists=None, meta=None, columns=None):
    """The page of test ``rows``; each column decided by its primary row unless ``columns``."""
    if columns is None:
        columns = [col(r) for r in rows if r["primary"]]
    return render_html(columns, rows, verdict or {}, dists or {}, meta)


def numeric(n_bins=12, seed=0, under=0, over=0):
    rng = np.random.default_rng(seed)
    edges = np.linspace(-3, 3, n_bins + 1).tolist()
    ref = [under] + rng.integers(0, 1000, n_bins).tolist() + [over]
    cur = [0] + rng.integers(0, 1000, n_bins).tolist() + [over]
    return {"kind": "numeric", "edges": edges, "ref": ref, "cur": cur}


def sample():
    """(columns, test rows, verdict, distributions, meta) of a small report."""
    rows = [
        row("age", statistic=0.31, p_value=1e-9, p_adjusted=4e-9, drifted=True),
        row("age", test="wasserstein_normed", statistic=0.42, p_value=None, p_adjusted=None,
            threshold=0.1, drifted=True, primary=False),
        row("income", statistic=float("nan"), p_value=None, p_adjusted=None, drifted=None,
            reason="current column has no values"),
        row("plan", test="chi2", type="categorical", statistic=12.5, p_value=0.002,
            p_adjusted=0.004, drifted=True),
        row("comment", test="chi2", type="text", statistic=1.5, p_value=0.4, p_adjusted=0.5),
        row("score", statistic=0.01, p_value=0.9, p_adjusted=0.95),
    ]
    dists = {
        "age": numeric(over=7),
        "income": {"kind": "numeric", "edges": [0.0, 1.0, 2.0], "ref": [0, 5, 5, 0],
                   "cur": [0, 0, 0, 0]},
        "plan": {"kind": "categorical", "labels": ["free", "pro", "(other)", "(unseen)"],
                 "ref": [50, 30, 20, 0], "cur": [20, 30, 20, 30]},
        "comment": {"kind": "text", "labels": ["Latin", "Cyrillic", "Han"], "ref": [90, 5, 5],
                    "cur": [85, 10, 5]},
        "score": numeric(seed=3),
    }
    meta = {"title": "Nightly drift", "reference": "train@3f2a", "reference_rows": 20000,
            "current": "prod@8b0e", "current_rows": 15000, "created": "2024-06-02 07:30 UTC",
            "engine_version": "0.1.0"}
    columns = [col(r) for r in rows if r["primary"]]
    return columns, table(rows), dict(VERDICT), dists, meta


class StrictParser(HTMLParser):
    """html.parser with a tag stack: end tags must close the innermost open element."""

    VOID = {"meta", "input", "br", "hr", "img", "link", "col", "wbr", "source", "area", "base"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.ids, self.text = [], [], [], []
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.append((tag, dict(attrs)))
        self.ids += [v for k, v in attrs if k == "id"]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> StrictParser:
    p = StrictParser()
    p.feed(page)
    p.close()
    return p


def body_rows(page: str) -> list[str]:
    tbody = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr class=\"[dfuo]\">.*?</tr>", tbody, flags=re.S)


def names_of(rows: list[str]) -> list[str]:
    return [re.search(r'<td class="c"[^>]*>([^<]*)', r).group(1) for r in rows]


# --------------------------------------------------------------------------- structure


def test_structure_verdict_rows_and_sortable_headers():
    columns, t, verdict, dists, meta = sample()
    page = render_html(columns, t, verdict, dists, meta)
    assert page.startswith("<!DOCTYPE html>")
    # The verdict comes before the table, in the verdict's own words.
    assert page.index("Drift detected") < page.index("<table")
    assert f"<p>{verdict['reason']}</p>" in page
    assert "Benjamini–Hochberg" in page and "α = 0.05" in page
    assert "2<small> / 4</small>" in page  # drifted of counted columns
    # One row per column (age has two tests, merged), drifted ones first.
    rows = body_rows(page)
    assert len(rows) == 5
    assert [r[11] for r in rows] == ["d", "d", "o", "o", "u"]
    assert names_of(rows) == ["age", "plan", "comment", "score", "income"]
    # Sortable headers (data-t), the initial sort shown, a filter box and the script.
    assert page.count('<th data-t="') == 8
    assert 'aria-sort="ascending"' in page
    assert '<input id="q" type="search"' in page
    assert "<script>" in page and "localeCompare" in page
    # The header shows the metadata.
    for text in ("Nightly drift", "train@3f2a", "20,000 rows", "prod@8b0e", "15,000 rows",
                 "2024-06-02 07:30 UTC", "mlops-engine 0.1.0"):
        assert text in page
    # Deterministic: the same input gives the same page.
    assert render_html(columns, t, verdict, dists, meta) == page


def test_verdict_banner_of_each_status():
    t = [row("a"), row("b"), row("c", drifted=None, reason="constant")]
    page = render(t, {"status": "no drift", "reason": "0 of 2 columns drifted (0%), below "
                      "the 50% share that declares dataset drift"})
    assert "No drift detected" in page and "Drift detected" not in page
    assert "<p>0 of 2 columns drifted (0%), below the 50% share" in page
    assert 'class="v ok"' in page and "<title>Drift report – no drift</title>" in page
    page = render([], {"status": "untestable",
                       "reason": "nothing could be compared: the current data has no rows"})
    assert 'class="v un"' in page and "<h2>Untestable</h2>" in page
    assert "<p>nothing could be compared: the current data has no rows</p>" in page


def test_the_page_draws_the_given_decisions_and_secondary_tests_as_evidence():
    rows = [
        row("x", statistic=0.02, p_value=0.3, p_adjusted=0.4, drifted=False),
        row("x", test="wasserstein_normed", statistic=0.25, p_value=None, p_adjusted=None,
            threshold=0.1, drifted=np.bool_(True), primary=False),
        row("x", test="psi", statistic=float("nan"), p_value=None, p_adjusted=None,
            threshold=0.2, drifted=None, primary=False, reason="reference is constant"),
    ]
    page = render(rows)  # a list of mappings works too
    (r,) = body_rows(page)
    # A secondary test that drifted does not make the column drifted: the primary decides.
    assert r.startswith('<tr class="o">') and '<span class="s">no drift</span>' in r
    assert "<td>ks</td><td>0.02</td>" in r and '<td data-v="0.4">0.4<small>p 0.3</small></td>' in r
    assert '<td data-v="0.05">p&lt;0.05</td>' in r
    # The secondary tests: statistic and p-value, a drifted one outlined, an untested one.
    assert re.search(r'<span class="t x" title="secondary test, crossed its threshold; '
                     r'evidence only">wasserstein_<wbr>normed 0.25</span>', r)
    assert 'title="not tested: reference is constant">psi –</span>' in r
    chips = [row("y", statistic=0.3, p_value=1e-9, p_adjusted=2e-9, drifted=True, primary=False),
             row("y", test="wasserstein_normed", statistic=0.05, p_value=None, p_adjusted=None,
                 threshold=0.1, drifted=False)]
    (r,) = body_rows(render(chips))
    assert "ks 0.3 <em>p adj. 2e-9</em></span>" in r and '<td data-v="0.1">&gt;0.1</td>' in r
    (r,) = body_rows(render(chips, {"correction": None}))
    assert "ks 0.3 <em>p 2e-9</em></span>" in r
    # Whatever the decision says, the page shows: a finding counted, one reported.
    findings = [row("gone", test="none", statistic=float("nan"), p_value=None, p_adjusted=None,
                    threshold=float("nan"), drifted=None, reason="column is missing"),
                row("extra", test="none", statistic=float("nan"), p_value=None,
                    p_adjusted=None, threshold=float("nan"), drifted=None,
                    reason="column is not in the reference")]
    page = render(findings, columns=[col(findings[0], "missing", True),
                                     col(findings[1], "new", False)])
    rows = body_rows(page)
    assert [r[11] for r in rows] == ["d", "f"]
    assert '<span class="s">missing</span>' in rows[0] and '<span class="s">new</span>' in rows[1]
    assert '<div class="why">column is not in the reference</div>' in rows[1]


def test_column_kinds_and_not_tested():
    columns, t, verdict, dists, meta = sample()
    page = render_html(columns, t, verdict, dists, meta)
    rows = dict(zip(names_of(body_rows(page)), body_rows(page)))
    # numeric: step paths for both sides, edge labels, hover data with the over-flow slot
    age = rows["age"]
    assert '<path class="r" d="M0 52' in age and '<path class="c" d="M0 52' in age
    assert '<rect class="o"' in age  # the overflow slot (7 rows above the last edge) is shaded
    assert 'data-e="-3 -2.5 -2' in age and "data-u" not in age
    x = [int(v) for v in re.search(r'data-x="([^"]*)"', age).group(1).split()]
    assert x[0] == 0 and x[-1] == 240 and len(x) == 14  # 12 bins + overflow, no underflow
    assert x[-1] - x[-2] < x[1] - x[0]  # the overflow slot is narrower
    # categorical: bars, labels under them, the labels in the hover data
    plan = rows["plan"]
    assert '<path class="R"' in plan and '<path class="C"' in plan
    assert ">free</text>" in plan and ">(unseen)</text>" in plan
    labels = json.loads(re.search(r'data-l="([^"]*)"', plan).group(1).replace("&quot;", '"'))
    assert labels == ["free", "pro", "(other)", "(unseen)"]
    assert "<td>categorical</td>" in plan and "<td>chi2</td>" in plan
    # text: the same bars, by script
    assert ">Cyrillic</text>" in rows["comment"] and "<td>text</td>" in rows["comment"]
    # untestable: grey row, its reason, dashes, and the chart says the current side is empty
    inc = rows["income"]
    assert inc.startswith('<tr class="u">')
    assert '<div class="why">current column has no values</div>' in inc
    assert '<span class="s">untestable</span>' in inc
    assert inc.count("<td>–</td>") == 1 and inc.count('<td data-v="">–</td>') == 2
    assert "no current values" in inc
    assert not re.search(r"\bnan\b", page.split("<script>")[0], flags=re.I)


def test_nan_statistic_and_missing_values_render_as_dash():
    page = render([row("a", statistic=float("nan"), p_value=None, p_adjusted=None,
                       threshold=None, drifted=False)])
    (r,) = body_rows(page)
    assert "<td>ks</td><td>–</td><td data-v=\"\">–</td><td data-v=\"\">–</td>" in r
    assert "nan" not in r.lower()
    assert '<span class="na">no distribution</span>' in r


def test_number_formatting():
    page = render([row("a", statistic=0.000012345, p_value=1.5e-300, p_adjusted=0.0),
                   row("b", statistic=float("inf"), p_value=1.0, p_adjusted=1.0)],
                  {"correction": "bh"})
    assert "<td>1.234e-5</td><td data-v=\"0\">0<small>p 1.5e-300</small></td>" in page
    assert "<td>∞</td><td data-v=\"1\">1<small>p 1</small></td>" in page


# --------------------------------------------------------------------------- escaping


def test_user_strings_are_escaped():
    rows = [row(EVIL, type="categorical", test="chi2<>", drifted=True),
            row("a&b\"c'd", drifted=None, reason="<b>bad</b> & \"worse\""),
            row("a&b\"c'd", test="psi<i>", drifted=None, primary=False, reason="<u>why</u>")]
    dists = {EVIL: {"kind": "categorical", "labels": ["<i>x</i>", "\"q\"&'", "ü列"],
                    "ref": [1, 2, 3], "cur": [3, 2, 1]}}
    meta = {"title": "<title>T</title>", "reference": "</script><script>alert(1)</script>",
            "extra_note": "<x>"}
    page = render(table(rows), {"correction": "<bh>", "reason": "<em>r</em>"}, dists, meta,
                  columns=[col(r) for r in rows if r["primary"]])
    # No injected markup anywhere: only the page's own <script> and <title>.
    assert page.count("<script>") == 1 and page.count("</script>") == 1
    assert "<i>x</i>" not in page and "<b>bad</b>" not in page and "<x>" not in page
    assert "<em>r</em>" not in page and "<u>why</u>" not in page and "psi<i>" not in page
    assert page.count("<title>") == 1
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;q&#x27; ü 列" in page
    p = parse(page)
    assert not p.errors and not p.stack
    text = "".join(p.text)
    # The parsed text holds the original strings (column name, reason, title, meta).
    for s in (EVIL, "a&b\"c'd", "<b>bad</b> & \"worse\"", "<title>T</title>",
              "</script><script>alert(1)</script>", "<x>", "<bh>", "chi2<>", "<em>r</em>"):
        assert s in text, s
    # The hover labels of the categorical chart round-trip through the attribute as JSON.
    svgs = [a for tag, a in p.attrs if tag == "svg" and "data-l" in a]
    assert json.loads(svgs[0]["data-l"]) == ["<i>x</i>", "\"q\"&'", "ü列"]
    # The script only ever reads user strings through attributes and textContent.
    script = page.split("<script>")[1]
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


def test_control_characters_and_lone_surrogates_are_replaced():
    name = "a\x00b\x1bc\ud800d"
    page = render([row(name)])  # (pyarrow cannot hold a lone surrogate)
    assert "a\ufffdb\ufffdc\ufffdd" in page
    page.encode("utf-8")  # strict: no lone surrogate left


# --------------------------------------------------------------------------- self-contained


def test_no_network_references():
    columns, t, verdict, dists, meta = sample()
    page = render_html(columns, t, verdict, dists, meta)
    low = page.lower()
    assert "http://" not in low and "https://" not in low and "//" not in re.sub(
        r"<script>.*?</script>", "", low, flags=re.S)
    p = parse(page)
    for tag, attrs in p.attrs:
        assert not {"src", "href", "srcset", "action", "xlink:href"} & set(attrs), (tag, attrs)
    assert not {"link", "img", "iframe", "object", "embed", "use", "image"} & set(p.tags)
    assert "@import" not in low and "url(" not in low and "@font-face" not in low
    # A Content-Security-Policy forbids any fetch anyway.
    assert "default-src &#x27;none&#x27;" in page or "default-src 'none'" in page


def test_valid_html():
    columns, t, verdict, dists, meta = sample()
    page = render_html(columns, t, verdict, dists, meta)
    p = parse(page)
    assert p.errors == [] and p.stack == []
    assert len(p.ids) == len(set(p.ids))
    assert p.tags[:4] == ["html", "head", "meta", "meta"]
    assert page.count("<svg") == page.count("</svg>") == 5
    # Every table row has as many cells as the header.
    heads = len(re.findall(r"<th[ >]", page))
    for r in body_rows(page):
        assert r.count("<td") == heads


# --------------------------------------------------------------------------- size


def thousand_columns():
    rng = np.random.default_rng(1)
    rows, dists = [], {}
    for i in range(1000):
        name = f"feature_{i:04d}"
        rows.append(row(name, statistic=float(rng.random() * 0.1), p_value=float(rng.random()),
                        p_adjusted=float(rng.random()), drifted=bool(i % 10 == 0),
                        primary=False))
        rows.append(row(name, test="wasserstein_normed", statistic=float(rng.random() * 0.2),
                        p_value=None, p_adjusted=None, threshold=0.1, drifted=bool(i % 7 == 0)))
        # 12 bins plus under- and overflow counts on both sides (the widest numeric chart).
        edges = np.sort(rng.normal(size=13)) * 1.2345
        dists[name] = {"kind": "numeric", "edges": edges.tolist(),
                       "ref": rng.integers(1, 50_000, 14).tolist(),
                       "cur": rng.integers(1, 50_000, 14).tolist()}
    return rows, dists


def test_size_of_1000_columns_under_2mb(capsys):
    rows, dists = thousand_columns()
    page = render(table(rows), {"status": "drift", "correction": "bh", "alpha": 0.05,
                                "share_threshold": 0.5}, dists,
                  {"title": "1,000 columns", "reference": "ref", "current": "cur"},
                  columns=[col(r) for r in rows if r["primary"]])
    size = len(page.encode("utf-8"))
    with capsys.disabled():
        print(f"\n1,000 numeric columns x 12 bins, 2 tests each: {size:,} bytes")
    assert size < 2_000_000
    assert len(body_rows(page)) == 1000
    assert page.count("<svg") == 1000


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("dist, match", [
    ({"kind": "numeric", "edges": [0, 1], "ref": [1, 2], "cur": [1, 2, 3]}, "len\\(edges\\) \\+ 1"),
    ({"kind": "categorical", "labels": ["a"], "ref": [1, 2], "cur": [1, 2]}, "differ in length"),
    ({"kind": "numeric", "edges": [0, 1], "ref": [1, -2, 3], "cur": [1, 2, 3]}, "negative"),
    ({"kind": "histogram", "ref": [1], "cur": [1]}, "unknown kind"),
    ({"kind": "numeric", "edges": [0, 1]}, "mapping with 'ref' and 'cur'"),
])
def test_malformed_distributions_raise(dist, match):
    with pytest.raises(ValueError, match=match):
        render([row("a")], dists={"a": dist})


def test_missing_fields_raise():
    with pytest.raises(ValueError, match="'column' or 'test'"):
        render_html([], [{"column": "a"}], {}, {})
    with pytest.raises(ValueError, match="lacks 'column'"):
        render_html([{"status": "drift"}], [], {}, {})


def test_degenerate_distributions():
    dists = {
        "empty": {"kind": "numeric", "edges": [], "ref": [5], "cur": [0]},
        "one_edge": {"kind": "numeric", "edges": [1.0], "ref": [3, 0], "cur": [0, 4]},
        "zeros": {"kind": "categorical", "labels": ["a", "b"], "ref": [0, 0], "cur": [0, 0]},
        "nocat": {"kind": "categorical", "labels": [], "ref": [], "cur": []},
        "many": {"kind": "categorical", "labels": [f"c{i}" for i in range(300)],
                 "ref": list(range(300)), "cur": list(range(300, 0, -1))},
    }
    page = render([row(k) for k in dists], dists=dists)
    p = parse(page)
    assert not p.errors
    assert "no current values" in page and ">no values<" in page and "no categories" in page
    assert '"all values"' in page.replace("&quot;", '"')
    assert not re.search(r"\bnan\b", page.split("<script>")[0], flags=re.I)


def test_thousand_column_page_stays_small():
    # Speed is for bench/, never a timed assertion here; the size budget is deterministic.
    rows, dists = thousand_columns()
    page = render(rows, dists=dists)
    assert len(page.encode()) < 2_000_000
    assert page.count("<svg") >= 1000


# --------------------------------------------------------------------------- package data


def _asset_text(name):
    """The asset as installed (importlib.resources), without the comment for its editors."""
    import importlib.resources

    text = importlib.resources.files("engine.monitor").joinpath(name).read_text("utf-8")
    assert text.startswith("/*"), f"{name}: expected a leading /* */ comment for its editors"
    return text[text.index("*/") + 2:].lstrip("\n")


def test_stylesheet_and_script_are_package_data_inlined_in_the_page():
    from engine.monitor.report_charts import BASELINE
    from engine.monitor.report_html import ASSETS

    assert ASSETS == ("report.css", "report.js")
    css, js = (_asset_text(n) for n in ASSETS)
    assert "tr.d td{" in css and "function sort(" in js and "@PLOT_H@" in js
    page = render([row("a")], dists={"a": {"kind": "numeric", "edges": [0, 1],
                                           "ref": [0, 3, 0], "cur": [0, 2, 1]}})
    assert f"<style>\n{css}</style>" in page
    assert f"<script>\n{js.replace('@PLOT_H@', str(BASELINE))}</script>" in page
    assert "@PLOT_H@" not in page and "/*" not in page  # placeholders filled, editors' notes out


def test_assets_are_in_the_wheel_and_the_sdist():
    """pyproject.toml's package-data puts them in a wheel (setuptools' own file list), and
    MANIFEST.in in an sdist; without them an installed page has no style and no script."""
    import fnmatch
    import os

    pytest.importorskip("tomllib")  # Python >= 3.11, as setuptools reads pyproject.toml
    dist_mod = pytest.importorskip("setuptools.dist")
    pyproject = pytest.importorskip("setuptools.config.pyprojecttoml")
    from engine.monitor.report_html import ASSETS

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    here = os.getcwd()
    os.chdir(root)  # setuptools resolves the package directories from the working directory
    try:
        dist = pyproject.apply_configuration(dist_mod.Distribution(), "pyproject.toml")
        dist.include_package_data = False  # package-data alone, no egg-info written
        build_py = dist.get_command_obj("build_py")
        build_py.ensure_finalized()
        data = {pkg: names for pkg, _src, _build, names in build_py.data_files}
    finally:
        os.chdir(here)
    assert set(ASSETS) <= set(data.get("engine.monitor", ())), data.get("engine.monitor")
    with open(os.path.join(root, "MANIFEST.in"), encoding="utf-8") as f:
        lines = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]

    def in_sdist(path):
        for cmd, *args in lines:
            if cmd == "include" and any(fnmatch.fnmatch(path, a) for a in args):
                return True
            if cmd == "recursive-include" and path.startswith(args[0].rstrip("/") + "/") \
                    and any(fnmatch.fnmatch(os.path.basename(path), a) for a in args[1:]):
                return True
            if cmd == "graft" and path.startswith(args[0].rstrip("/") + "/"):
                return True
        return False

    for name in ASSETS:
        assert in_sdist(f"engine/monitor/{name}"), f"MANIFEST.in does not include {name}"
