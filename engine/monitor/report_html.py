"""The HTML page of a drift report: one self-contained file, no network.

:func:`render_html` draws the decisions of a drift run: a verdict banner (the
verdict's own words), then a table with one row per column (sortable by
clicking a header, filterable by name, status and type): its status and
primary test, the column's secondary tests as evidence (with their p-values),
and an inline SVG overlay of the reference and current distributions. It
decides nothing: each column's status and whether it counts as drift come
from the per-column decisions it is given (:attr:`DriftReport.columns
<engine.monitor.drift_report.DriftReport>`), the banner from the verdict.

The page carries no data beyond those bins (no raw values), and loads nothing:
no scripts, fonts, styles or images from anywhere, and a Content-Security-Policy
that forbids any fetch. Sorting and filtering need the small inline script;
everything else reads without it. The stylesheet and the script are package data
(``engine/monitor/report.css`` and ``report.js``), read once and inlined; this module
only builds the document, and the charts are hand-written SVG drawn by
:mod:`engine.monitor.report_charts`. The table fits a window 1,100 pixels wide
without horizontal scrolling (tests/test_report_browser.py measures it in
Chromium).

The function is independent of the report class: it takes plain data.

Examples
--------
>>> col = {"column": "age", "type": "numeric", "status": "drift", "counts_as_drift": True,
...        "test": "ks", "statistic": 0.21, "p_value": 1e-6, "p_adjusted": 1e-6,
...        "threshold": 0.05, "reason": "ks statistic 0.21, adjusted p 1e-06 < 0.05"}
>>> page = render_html([col], [], {"status": "drift", "reason": "1 of 1 column drifted"},
...                    {"age": {"kind": "numeric", "edges": [0, 30, 60],
...                             "ref": [0, 5, 5, 0], "cur": [0, 2, 8, 0]}})
>>> page.startswith("<!DOCTYPE html>") and "Drift detected" in page
True
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.resources
from collections.abc import Mapping

from .report_charts import BASELINE, chart
from .report_text import esc, is_missing, num, pct

__all__ = ["ASSETS", "render_html"]

_CORRECTIONS = {
    "bh": "Benjamini–Hochberg",
    "fdr_bh": "Benjamini–Hochberg",
    "by": "Benjamini–Yekutieli",
    "fdr_by": "Benjamini–Yekutieli",
    "bonferroni": "Bonferroni",
    "holm": "Holm",
    "sidak": "Šidák",
    "none": "none",
}

# Row class and sort rank: counts as drift, reported but not counted, no drift, untestable.
_RANK = {"d": 0, "f": 1, "o": 2, "u": 3}
_HEADS_VERDICT = {"drift": ("v drift", "!", "Drift detected"),
                  "no drift": ("v ok", "✓", "No drift detected"),
                  "untestable": ("v un", "?", "Untestable")}

def _test_name(name) -> str:
    """A test name that may break after its underscores (wasserstein_normed) in a narrow
    window."""
    return esc(name).replace("_", "_<wbr>")


def _class(c: Mapping) -> str:
    if c.get("counts_as_drift"):
        return "d"
    status = c.get("status")
    if status == "no drift":
        return "o"
    if status == "untestable":
        return "u"
    return "f"  # a finding (missing, all null, new) or evidence reported without counting


def _secondary(columns: list[Mapping], tests) -> dict[str, list[dict]]:
    """Each column's rows of ``tests`` other than the one of its deciding test, in table
    order."""
    rows = tests.to_pylist() if hasattr(tests, "to_pylist") else [dict(r) for r in tests]
    primary = {str(c["column"]): c.get("test") for c in columns}
    out: dict[str, list[dict]] = {}
    for i, r in enumerate(rows):
        if "column" not in r or "test" not in r:
            raise ValueError(f"row {i} of the tests lacks 'column' or 'test': {sorted(r)}")
        name = str(r["column"])
        if r["test"] == primary.get(name):  # a column has one row per test
            continue
        out.setdefault(name, []).append(r)
    return out


def _threshold_cell(c: Mapping) -> str:
    """The rule the column was decided by: adjusted p below the level, or statistic above
    the threshold (the comparisons of :func:`engine.monitor.drift_report.decide_rows`)."""
    thr = c.get("threshold")
    if is_missing(thr) or c.get("status") not in ("drift", "no drift"):
        return '<td data-v="">–</td>'
    has_p = not (is_missing(c.get("p_value")) and is_missing(c.get("p_adjusted")))
    text = f"p&lt;{num(thr)}" if has_p else f"&gt;{num(thr)}"
    return f'<td data-v="{num(thr, 6)}">{text}</td>'


def _p_label(correction) -> str:
    return "p" if correction in (None, "none") else "p adj."


def _secondary_cell(rows: list[dict], correction) -> str:
    parts = []
    for t in rows:
        drifted = t.get("drifted")
        if drifted is None:
            reason = t.get("reason")
            tip = f' title="not tested: {esc(reason)}"' if reason else ' title="not tested"'
            parts.append(f'<span class="t n"{tip}>{_test_name(t["test"])} –</span>')
            continue
        p_adj, p_raw = t.get("p_adjusted"), t.get("p_value")
        p = ""
        if not is_missing(p_adj):
            p = f" <em>{_p_label(correction)} {num(p_adj, 3)}</em>"
        elif not is_missing(p_raw):
            p = f" <em>p {num(p_raw, 3)}</em>"
        cls = "t x" if drifted else "t"
        rule = "crossed its threshold" if drifted else "within its threshold"
        parts.append(f'<span class="{cls}" title="secondary test, {rule}; evidence only">'
                     f'{_test_name(t["test"])} {num(t.get("statistic"))}{p}</span>')
    return "".join(parts)


def _row(i: int, c: Mapping, secondary: list[dict], dist, correction) -> str:
    cls = _class(c)
    status = str(c.get("status") or "–")
    name = str(c["column"])
    decided = status in ("drift", "no drift")
    # The reason is shown where the status alone does not explain the row: not decided by a
    # test, or decided without counting (the multivariate mmd row).
    show = not decided or (status == "drift") != bool(c.get("counts_as_drift"))
    why = f'<div class="why">{esc(c["reason"])}</div>' if show and c.get("reason") else ""
    cells = [f"<td>{i + 1}</td>", f'<td class="c" data-v="{esc(name)}">{esc(name)}{why}</td>',
             f"<td>{esc(c.get('type') or '–')}</td>",
             f'<td data-v="{_RANK[cls]}"><span class="s">{esc(status)}</span></td>',
             f"<td>{_test_name(c.get('test') or '–')}</td>"]
    if decided:
        p_raw = "" if is_missing(c.get("p_value")) else \
            f"<small>p {num(c.get('p_value'), 3)}</small>"
        p_adj = c.get("p_adjusted")
        cells += [f"<td>{num(c.get('statistic'))}</td>",
                  f'<td data-v="{num(p_adj, 6) if not is_missing(p_adj) else ""}">'
                  f"{num(p_adj, 3)}{p_raw if correction not in (None, 'none') else ''}</td>",
                  _threshold_cell(c)]
    else:
        cells += ["<td>–</td>", '<td data-v="">–</td>', '<td data-v="">–</td>']
    cells.append(f'<td class="k">{_secondary_cell(secondary, correction)}</td>')
    cells.append(f'<td class="g">{chart(name, dist)}</td>')
    return f'<tr class="{cls}">{"".join(cells)}</tr>'


# --------------------------------------------------------------------------- page parts


def _fmt_meta_value(v) -> str:
    if isinstance(v, _dt.datetime):
        if v.tzinfo is not None and v.utcoffset() == _dt.timedelta(0):
            return v.strftime("%Y-%m-%d %H:%M:%S UTC")
        return v.isoformat(sep=" ", timespec="seconds")
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return num(v)
    return str(v)


def _header(meta: Mapping, version: str | None) -> str:
    title = meta.get("title") or "Drift report"
    items = []
    for side in ("reference", "current"):
        name = meta.get(side) or meta.get(f"{side}_name")
        rows = meta.get(f"{side}_rows")
        if name is None and rows is None:
            continue
        text = esc(name) if name is not None else ""
        if rows is not None:
            rows_text = f"{rows:,} rows" if isinstance(rows, int) else f"{esc(rows)} rows"
            text = f"{text} · {rows_text}" if text else rows_text
        dot = "r" if side == "reference" else "c"
        label = f'<i class="{dot}"></i>{side.capitalize()}:'
        items.append(f"<div><dt>{label}</dt><dd>{text}</dd></div>")
    created = meta.get("created")
    if created is not None:
        items.append(f"<div><dt>Created:</dt><dd>{esc(_fmt_meta_value(created))}</dd></div>")
    known = {"title", "reference", "current", "reference_name", "current_name",
             "reference_rows", "current_rows", "created", "engine_version", "version"}
    for k, v in meta.items():
        if k in known or v is None:
            continue
        label = str(k).replace("_", " ").capitalize()
        items.append(f"<div><dt>{esc(label)}:</dt><dd>{esc(_fmt_meta_value(v))}</dd></div>")
    if version:
        items.append(f"<div><dt>Engine:</dt><dd>mlops-engine {esc(version)}</dd></div>")
    return f'<header><h1>{esc(title)}</h1><dl class="meta">{"".join(items)}</dl></header>'


def _verdict(verdict: Mapping) -> str:
    """The banner: the verdict's status and its reason, in the words of the summary line."""
    status = verdict.get("status") or "no drift"
    cls, icon, head = _HEADS_VERDICT.get(status, _HEADS_VERDICT["no drift"])
    lead = esc(verdict.get("reason") or "")
    drifted, counted = verdict.get("drifted_columns"), verdict.get("counted_columns")
    share, thr = verdict.get("share"), verdict.get("share_threshold")
    corr, alpha = verdict.get("correction"), verdict.get("alpha")
    tiles = []
    if drifted is not None:
        tiles.append(("Drifted columns", f"{int(drifted):,}"
                      + (f"<small> / {int(counted):,}</small>" if counted is not None else "")))
    if share is not None and status != "untestable":
        tiles.append(("Share drifted", pct(share)))
    if thr is not None:
        tiles.append(("Share threshold", pct(thr)))
    if "correction" in verdict or alpha is not None:
        c_text = _CORRECTIONS.get(str(corr).lower(), str(corr))
        tiles.append(("Correction", esc(c_text)
                      + (f"<small> α = {num(alpha)}</small>" if alpha is not None else "")))
    if verdict.get("untested_columns") is not None:
        tiles.append(("Not tested", f"{int(verdict['untested_columns']):,}"))
    tiles_html = "".join(f"<div><span>{k}</span><b>{v}</b></div>" for k, v in tiles)
    return (
        f'<section class="{cls}"><div class="vh"><span class="ic">{icon}</span><div>'
        f"<h2>{head}</h2><p>{lead}</p></div></div>"
        f'<div class="tiles">{tiles_html}</div></section>'
    )


_HEADS = [
    # (label, sort type: n numeric, s text, "" not sortable, extra attributes)
    ("#", "n", ""),
    ("Column", "s", ""),
    ("Type", "s", ""),
    ("Status", "n", ' aria-sort="ascending"'),
    ("Test", "s", ' title="the primary test, which decides the column"'),
    ("Statistic", "n", ""),
    ("p adj.", "n", ' title="the p-value after the correction (the raw p-value below it)"'),
    ("Threshold", "n", ' title="drift when the adjusted p-value is below it (p&lt;), or the '
     'statistic above it (&gt;)"'),
    ("Secondary tests", "", ' title="evidence only: the primary test decides the column"'),
]

_LEGEND = (
    '<span class="lg"><i class="r"></i>reference <i class="c"></i>current'
    "<em>share of rows per bin</em></span>"
)

#: The page's stylesheet and script: files of this package (package data, listed in
#: pyproject.toml and MANIFEST.in), inlined so that the page stays one file that loads
#: nothing.
ASSETS = ("report.css", "report.js")

_TOOLTIP = (
    '<div id="hl" hidden></div><div id="tt" role="tooltip" hidden><b></b>'
    '<div><i class="r"></i><span></span><u><span></span> rows</u></div>'
    '<div><i class="c"></i><span></span><u><span></span> rows</u></div></div>'
)

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; form-action 'none'; base-uri 'none'"
)


@functools.cache
def _asset(name: str) -> str:
    """The text of the package data file ``name`` (one of :data:`ASSETS`), without its leading
    ``/* */`` comment: that is for whoever edits the file, and the page carries no
    comments. Read once per process."""
    text = importlib.resources.files(__package__).joinpath(name).read_text("utf-8")
    if text.startswith("/*"):
        text = text[text.index("*/") + 2:].lstrip("\n")
    return text


@functools.cache
def _script() -> str:
    """The page's script, with the chart geometry it needs (the bars' baseline)."""
    return _asset("report.js").replace("@PLOT_H@", str(BASELINE))


def _engine_version() -> str | None:
    try:
        from engine import __version__

        return __version__
    except Exception:  # pragma: no cover - the module is used outside the package
        return None


def render_html(columns, tests, verdict: Mapping, distributions: Mapping,
                meta: Mapping | None = None) -> str:
    """Render a drift report as one self-contained HTML page.

    Parameters
    ----------
    columns : sequence of mappings
        The decision per column, in report order (what
        :attr:`DriftReport.columns <engine.monitor.drift_report.DriftReport>`
        holds): ``column``, ``type``, ``status`` (``drift``, ``no drift``,
        ``missing``, ``all null``, ``new``, ``untestable``), ``counts_as_drift``,
        ``test`` (the primary test), ``statistic``, ``p_value``, ``p_adjusted``,
        ``threshold`` and ``reason``. Drawn as they are: a row is red when it
        counts as drift, amber when it is a finding reported without counting,
        grey when untestable.
    tests : pyarrow.Table (or RecordBatch, or a sequence of mappings)
        One row per (column, test) (:attr:`DriftReport.table`) with ``column``,
        ``test``, ``statistic``, ``p_value``, ``p_adjusted``, ``drifted``,
        ``reason`` and ``primary``: the rows that are not a column's primary
        test are shown beside it as secondary evidence, with their p-values.
    verdict : mapping
        ``status``, ``reason`` (the banner's sentence), ``drifted_columns``,
        ``counted_columns``, ``untested_columns``, ``share``,
        ``share_threshold``, ``correction`` and ``alpha``; a missing key is left
        out of the banner.
    distributions : mapping
        Column name -> ``{"kind": "numeric", "edges": [...], "ref": [...],
        "cur": [...]}`` with ``len(edges) + 1`` counts each (below the first
        edge, between consecutive edges, above the last), or ``{"kind":
        "categorical" | "text", "labels": [...], "ref": [...], "cur": [...]}``.
        Counts are drawn as proportions of each side. A column without an
        entry gets no chart.
    meta : mapping, optional
        ``title``, ``reference`` / ``current`` (names), ``reference_rows`` /
        ``current_rows``, ``created`` (str or datetime), ``engine_version``;
        any other key is shown as a labelled value in the header.

    Returns
    -------
    str
        The page (UTF-8 text; write it with ``encoding="utf-8"``).

    Raises
    ------
    ValueError
        A column without ``column``, a test row without ``column`` or
        ``test``, or a malformed distribution (lengths that do not match,
        negative counts, an unknown kind).
    """
    meta = dict(meta or {})
    verdict = dict(verdict or {})
    columns = [dict(c) for c in columns]
    for i, c in enumerate(columns):
        if "column" not in c:
            raise ValueError(f"column {i} lacks 'column' (its name): {sorted(c)}")
    secondary = _secondary(columns, tests)
    corr = verdict.get("correction", "")  # None or "none": p-values shown as not adjusted
    # Counted drift first, then reported findings, clean, untestable; report order within.
    order = sorted(range(len(columns)), key=lambda i: (_RANK[_class(columns[i])], i))
    version = meta.get("engine_version") or meta.get("version") or _engine_version()
    title = meta.get("title") or "Drift report"
    status = verdict.get("status") or "no drift"

    heads = "".join(
        f'<th data-t="{t}"{extra}>{label}</th>' if t else f"<th{extra}>{label}</th>"
        for label, t, extra in _HEADS
    )
    heads += "<th>Reference vs current</th>"
    body = "\n".join(
        _row(i, columns[i], secondary.get(str(columns[i]["column"]), []),
             distributions.get(str(columns[i]["column"])), corr)
        for i in order
    )
    types = sorted({str(c["type"]) for c in columns if c.get("type")})
    type_opts = "".join(f'<option value="{esc(t)}">{esc(t)}</option>' for t in types)
    n = len(columns)
    toolbar = (
        '<div class="bar"><input id="q" type="search" placeholder="Filter columns by name…" '
        'aria-label="Filter columns by name">'
        '<select id="fs" aria-label="Status"><option value="">All statuses</option>'
        '<option value="d">Counts as drift</option><option value="f">Reported, not counted'
        '</option><option value="o">No drift</option><option value="u">Untestable</option>'
        "</select>"
        f'<select id="ft" aria-label="Type"><option value="">All types</option>{type_opts}</select>'
        f'<span class="cnt"><span id="n">{n:,}</span> of {n:,} columns</span>{_LEGEND}</div>'
    )
    foot = (f"Generated by mlops-engine{' ' + esc(version) if version else ''}. "
            "Self-contained page: the bins of each column, no raw values, nothing loaded.")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)} – {esc(status)}</title>"
        f"<style>\n{_asset('report.css')}</style></head>\n<body><main>"
        f"{_header(meta, version)}{_verdict(verdict)}{toolbar}"
        f'<div class="tw"><table id="cols"><thead><tr>{heads}</tr></thead><tbody>\n'
        f"{body}\n</tbody></table></div><footer>{foot}</footer></main>"
        f"{_TOOLTIP}<script>\n{_script()}</script></body></html>\n"
    )
