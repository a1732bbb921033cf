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
everything else reads without it. The charts are hand-written SVG with
integer coordinates and shared CSS classes, so that a page of 1,000 columns of
a dozen bins each stays well under 2 MB. The table fits a window 1,100 pixels
wide without horizontal scrolling (tests/test_report_browser.py measures it in
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
import html
import json
import math
import re
from collections.abc import Mapping

__all__ = ["render_html"]

# Chart geometry, in CSS pixels (the SVG has no viewBox: user units are pixels).
_W = 240  # plot width
_TOP = 12  # top of the plot area (room for the scale label above)
_BASE = 52  # baseline of the bars
_LABEL_Y = 64  # baseline of the axis labels
_PLOT_H = _BASE - _TOP

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

# C0/C1 controls (but tab and newline), and lone surrogates: not allowed in HTML text.
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _esc(value) -> str:
    """Escape any value for HTML text and double-quoted attributes."""
    return html.escape(_BAD_CHARS.sub("\ufffd", str(value)), quote=True)


def _is_missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _num(x, digits: int = 4) -> str:
    """A number for display: '–' when missing or NaN, 4 significant digits."""
    if _is_missing(x):
        return "–"
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    s = f"{x:.{digits}g}"
    if "e" in s:  # 1.2e-05 -> 1.2e-5
        mant, exp = s.split("e")
        s = f"{mant}e{int(exp)}"
    return s


def _pct(p: float) -> str:
    if p == 0:
        return "0%"
    if p < 0.001:
        return "<0.1%"
    return f"{100 * p:.1f}%"


def _test_name(name) -> str:
    """A test name that may break after its underscores (wasserstein_normed) in a narrow
    window."""
    return _esc(name).replace("_", "_<wbr>")


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
    if _is_missing(thr) or c.get("status") not in ("drift", "no drift"):
        return '<td data-v="">–</td>'
    has_p = not (_is_missing(c.get("p_value")) and _is_missing(c.get("p_adjusted")))
    text = f"p&lt;{_num(thr)}" if has_p else f"&gt;{_num(thr)}"
    return f'<td data-v="{_num(thr, 6)}">{text}</td>'


def _p_label(correction) -> str:
    return "p" if correction in (None, "none") else "p adj."


def _secondary_cell(rows: list[dict], correction) -> str:
    parts = []
    for t in rows:
        drifted = t.get("drifted")
        if drifted is None:
            reason = t.get("reason")
            tip = f' title="not tested: {_esc(reason)}"' if reason else ' title="not tested"'
            parts.append(f'<span class="t n"{tip}>{_test_name(t["test"])} –</span>')
            continue
        p_adj, p_raw = t.get("p_adjusted"), t.get("p_value")
        p = ""
        if not _is_missing(p_adj):
            p = f" <em>{_p_label(correction)} {_num(p_adj, 3)}</em>"
        elif not _is_missing(p_raw):
            p = f" <em>p {_num(p_raw, 3)}</em>"
        cls = "t x" if drifted else "t"
        rule = "crossed its threshold" if drifted else "within its threshold"
        parts.append(f'<span class="{cls}" title="secondary test, {rule}; evidence only">'
                     f'{_test_name(t["test"])} {_num(t.get("statistic"))}{p}</span>')
    return "".join(parts)


def _row(i: int, c: Mapping, secondary: list[dict], dist, correction) -> str:
    cls = _class(c)
    status = str(c.get("status") or "–")
    name = str(c["column"])
    decided = status in ("drift", "no drift")
    # The reason is shown where the status alone does not explain the row: not decided by a
    # test, or decided without counting (the multivariate mmd row).
    show = not decided or (status == "drift") != bool(c.get("counts_as_drift"))
    why = f'<div class="why">{_esc(c["reason"])}</div>' if show and c.get("reason") else ""
    cells = [f"<td>{i + 1}</td>", f'<td class="c" data-v="{_esc(name)}">{_esc(name)}{why}</td>',
             f"<td>{_esc(c.get('type') or '–')}</td>",
             f'<td data-v="{_RANK[cls]}"><span class="s">{_esc(status)}</span></td>',
             f"<td>{_test_name(c.get('test') or '–')}</td>"]
    if decided:
        p_raw = "" if _is_missing(c.get("p_value")) else \
            f"<small>p {_num(c.get('p_value'), 3)}</small>"
        p_adj = c.get("p_adjusted")
        cells += [f"<td>{_num(c.get('statistic'))}</td>",
                  f'<td data-v="{_num(p_adj, 6) if not _is_missing(p_adj) else ""}">'
                  f"{_num(p_adj, 3)}{p_raw if correction not in (None, 'none') else ''}</td>",
                  _threshold_cell(c)]
    else:
        cells += ["<td>–</td>", '<td data-v="">–</td>', '<td data-v="">–</td>']
    cells.append(f'<td class="k">{_secondary_cell(secondary, correction)}</td>')
    cells.append(f'<td class="g">{_chart(name, dist)}</td>')
    return f'<tr class="{cls}">{"".join(cells)}</tr>'


# --------------------------------------------------------------------------- charts


def _counts(values, name: str, key: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"distribution of {name!r}: {key!r} must be a list of counts") from None
    if any(not math.isfinite(v) or v < 0 for v in out):
        raise ValueError(f"distribution of {name!r}: {key!r} has negative or non-finite counts")
    return out


def _proportions(counts: list[float]) -> list[float]:
    total = sum(counts)
    return [v / total for v in counts] if total > 0 else [0.0] * len(counts)


def _y(p: float, top: float) -> int:
    return round(_BASE - _PLOT_H * p / top) if top > 0 else _BASE


def _count(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else _num(v, 6)


def _hover_data(xs: list[int], ref: list[float], cur: list[float]) -> str:
    """Attributes the page's script reads to show the numbers of the bin under the pointer:
    slot boundaries and the counts of both sides (far smaller than a <title> per bin)."""
    return (
        f' data-x="{" ".join(map(str, xs))}" data-r="{" ".join(map(_count, ref))}"'
        f' data-c="{" ".join(map(_count, cur))}"'
    )


def _labels_attr(labels: list[str]) -> str:
    return f' data-l="{_esc(json.dumps(labels, ensure_ascii=False))}"'


def _slots(n: int, weights: list[float] | None = None) -> list[int]:
    """x of the n + 1 slot boundaries; slot widths in proportion to weights (equal if None)."""
    if weights is None:
        return [round(_W * i / n) for i in range(n + 1)]
    total, acc, xs = sum(weights), 0.0, [0]
    for w in weights:
        acc += w
        xs.append(round(_W * acc / total))
    return xs


def _scale_label(top: float) -> str:
    return f'<text x="1" y="9">{_pct(top)}</text>'


def _empty_note(rtot: float, ctot: float) -> str:
    if rtot > 0 and ctot > 0:
        return ""
    which = "no reference values" if rtot <= 0 else "no current values"
    if rtot <= 0 and ctot <= 0:
        which = "no values"
    return f'<text x="{_W}" y="9" class="z w">{which}</text>'


def _chart_numeric(name: str, d: Mapping) -> str:
    edges = [float(e) for e in d.get("edges", [])]
    ref = _counts(d["ref"], name, "ref")
    cur = _counts(d["cur"], name, "cur")
    if len(ref) != len(edges) + 1 or len(cur) != len(edges) + 1:
        raise ValueError(
            f"distribution of {name!r}: 'ref' and 'cur' need len(edges) + 1 = {len(edges) + 1} "
            f"counts (below, between and above the edges), got {len(ref)} and {len(cur)}"
        )
    # Under- and overflow slots are drawn only when something falls there.
    keep = list(range(len(ref)))
    if len(ref) > 1 and ref[-1] == 0 and cur[-1] == 0:
        keep.pop()
    if len(keep) > 1 and ref[0] == 0 and cur[0] == 0:
        keep.pop(0)
    rp, cp = _proportions(ref), _proportions(cur)
    top = max([rp[i] for i in keep] + [cp[i] for i in keep] + [0.0])
    n = len(keep)
    # Slots outside the edges are half as wide as the others, and shaded.
    outer = [bool(edges) and (i == 0 or i == len(ref) - 1) for i in keep]
    xs = _slots(n, [0.5 if o else 1.0 for o in outer])
    parts = []
    for j, o in enumerate(outer):
        if o:
            parts.append(
                f'<rect class="o" x="{xs[j]}" y="{_TOP}" width="{xs[j + 1] - xs[j]}" '
                f'height="{_PLOT_H}"/>'
            )
    for cls, ps in (("r", rp), ("c", cp)):
        d_ = [f"M0 {_BASE}"]
        for j, i in enumerate(keep):
            d_.append(f"V{_y(ps[i], top)}H{xs[j + 1]}")
        d_.append(f"V{_BASE}Z")
        parts.append(f'<path class="{cls}" d="{"".join(d_)}"/>')
    parts.append(f'<path class="b" d="M0 {_BASE}H{_W}"/>')
    # Axis labels: the first and the last edge, under their positions.
    if len(edges) >= 2:
        first = keep.index(1) if 1 in keep else 0
        last = keep.index(len(edges) - 1) + 1 if (len(edges) - 1) in keep else n
        parts.append(f'<text x="{xs[first]}" y="{_LABEL_Y}" class="a">{_num(edges[0], 3)}</text>')
        parts.append(
            f'<text x="{xs[last]}" y="{_LABEL_Y}" class="z">{_num(edges[-1], 3)}</text>'
        )
    parts.append(_scale_label(top))
    parts.append(_empty_note(sum(ref), sum(cur)))
    data = _hover_data(xs, [ref[i] for i in keep], [cur[i] for i in keep])
    if edges:  # the script names the bins from the edges; 'data-u': an underflow slot is drawn
        data += f' data-e="{" ".join(_num(e) for e in edges)}"'
        data += ' data-u=""' if keep[0] == 0 else ""
    else:
        data += _labels_attr(["all values"])
    return f"<svg{data}>{''.join(parts)}</svg>"


def _chart_bars(name: str, d: Mapping) -> str:
    labels = [str(v) for v in d.get("labels", [])]
    ref = _counts(d["ref"], name, "ref")
    cur = _counts(d["cur"], name, "cur")
    if not (len(labels) == len(ref) == len(cur)):
        raise ValueError(
            f"distribution of {name!r}: 'labels', 'ref' and 'cur' differ in length "
            f"({len(labels)}, {len(ref)}, {len(cur)})"
        )
    if not labels:
        return '<span class="na">no categories</span>'
    rp, cp = _proportions(ref), _proportions(cur)
    top = max(rp + cp)
    n = len(labels)
    xs = _slots(n)
    rpath, cpath, texts = [], [], []
    for j in range(n):
        x0, x1 = xs[j], xs[j + 1]
        w = x1 - x0
        pad = max(1, round(w * 0.12)) if w >= 6 else 0
        half = max(1, (w - 2 * pad) // 2)
        xr, xc = x0 + pad, x0 + pad + half
        yr, yc = _y(rp[j], top), _y(cp[j], top)
        if yr < _BASE:
            rpath.append(f"M{xr} {_BASE}V{yr}h{half}V{_BASE}Z")
        if yc < _BASE:
            cpath.append(f"M{xc} {_BASE}V{yc}h{half}V{_BASE}Z")
        # A label under the bars when it fits (at most 6 px a character at 10 px).
        lab = labels[j]
        room = int((w - 6) / 6)
        if room >= 3:
            if len(lab) > room:
                lab = lab[: room - 1] + "…"
            texts.append(f'<text x="{(x0 + x1) // 2}" y="{_LABEL_Y}" class="m">{_esc(lab)}</text>')
    parts = []
    if rpath:
        parts.append(f'<path class="R" d="{"".join(rpath)}"/>')
    if cpath:
        parts.append(f'<path class="C" d="{"".join(cpath)}"/>')
    parts.append(f'<path class="b" d="M0 {_BASE}H{_W}"/>')
    parts += texts
    parts.append(_scale_label(top))
    parts.append(_empty_note(sum(ref), sum(cur)))
    data = _hover_data(xs, ref, cur) + _labels_attr(labels)
    return f"<svg{data}>{''.join(parts)}</svg>"


def _chart(name: str, d) -> str:
    if d is None:
        return '<span class="na">no distribution</span>'
    if not isinstance(d, Mapping) or "ref" not in d or "cur" not in d:
        raise ValueError(f"distribution of {name!r} must be a mapping with 'ref' and 'cur' counts")
    kind = d.get("kind", "numeric")
    if kind == "numeric":
        return _chart_numeric(name, d)
    if kind in ("categorical", "text"):
        return _chart_bars(name, d)
    raise ValueError(f"distribution of {name!r}: unknown kind {kind!r}")


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
        return _num(v)
    return str(v)


def _header(meta: Mapping, version: str | None) -> str:
    title = meta.get("title") or "Drift report"
    items = []
    for side in ("reference", "current"):
        name = meta.get(side) or meta.get(f"{side}_name")
        rows = meta.get(f"{side}_rows")
        if name is None and rows is None:
            continue
        text = _esc(name) if name is not None else ""
        if rows is not None:
            rows_text = f"{rows:,} rows" if isinstance(rows, int) else f"{_esc(rows)} rows"
            text = f"{text} · {rows_text}" if text else rows_text
        dot = "r" if side == "reference" else "c"
        label = f'<i class="{dot}"></i>{side.capitalize()}:'
        items.append(f"<div><dt>{label}</dt><dd>{text}</dd></div>")
    created = meta.get("created")
    if created is not None:
        items.append(f"<div><dt>Created:</dt><dd>{_esc(_fmt_meta_value(created))}</dd></div>")
    known = {"title", "reference", "current", "reference_name", "current_name",
             "reference_rows", "current_rows", "created", "engine_version", "version"}
    for k, v in meta.items():
        if k in known or v is None:
            continue
        label = str(k).replace("_", " ").capitalize()
        items.append(f"<div><dt>{_esc(label)}:</dt><dd>{_esc(_fmt_meta_value(v))}</dd></div>")
    if version:
        items.append(f"<div><dt>Engine:</dt><dd>mlops-engine {_esc(version)}</dd></div>")
    return f'<header><h1>{_esc(title)}</h1><dl class="meta">{"".join(items)}</dl></header>'


def _verdict(verdict: Mapping) -> str:
    """The banner: the verdict's status and its reason, in the words of the summary line."""
    status = verdict.get("status") or "no drift"
    cls, icon, head = _HEADS_VERDICT.get(status, _HEADS_VERDICT["no drift"])
    lead = _esc(verdict.get("reason") or "")
    drifted, counted = verdict.get("drifted_columns"), verdict.get("counted_columns")
    share, thr = verdict.get("share"), verdict.get("share_threshold")
    corr, alpha = verdict.get("correction"), verdict.get("alpha")
    tiles = []
    if drifted is not None:
        tiles.append(("Drifted columns", f"{int(drifted):,}"
                      + (f"<small> / {int(counted):,}</small>" if counted is not None else "")))
    if share is not None and status != "untestable":
        tiles.append(("Share drifted", _pct(share)))
    if thr is not None:
        tiles.append(("Share threshold", _pct(thr)))
    if "correction" in verdict or alpha is not None:
        c_text = _CORRECTIONS.get(str(corr).lower(), str(corr))
        tiles.append(("Correction", _esc(c_text)
                      + (f"<small> α = {_num(alpha)}</small>" if alpha is not None else "")))
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

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f6f7f9;color:#1f2937;
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1500px;margin:0 auto;padding:24px 28px 40px}
@media (max-width:1200px){main{padding:20px 16px 32px}}
header h1{margin:0 0 6px;font-size:22px;font-weight:650;letter-spacing:-.01em}
dl.meta{display:flex;flex-wrap:wrap;gap:4px 28px;margin:0 0 18px;color:#4b5563;font-size:13px}
dl.meta div{display:flex;gap:6px;align-items:center}
dl.meta dt{color:#6b7280;display:flex;align-items:center;gap:5px}
dl.meta dd{margin:0;font-weight:550;color:#111827}
i.r,i.c{display:inline-block;width:10px;height:10px;border-radius:2px}
i.r{background:#3b82f6}
i.c{background:#f97316}
.v{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:16px;
border-radius:10px;padding:18px 22px;margin-bottom:22px;border:1px solid}
.v.drift{background:#fef2f2;border-color:#fecaca}
.v.ok{background:#f0fdf4;border-color:#bbf7d0}
.v.un{background:#fffbeb;border-color:#fde68a}
.vh{display:flex;align-items:center;gap:14px}
.vh h2{margin:0;font-size:22px;font-weight:700}
.vh p{margin:2px 0 0;color:#374151}
.ic{display:flex;align-items:center;justify-content:center;width:40px;height:40px;border-radius:50%;
color:#fff;font-weight:800;font-size:22px;flex:none}
.drift h2{color:#b91c1c}.drift .ic{background:#dc2626}
.ok h2{color:#15803d}.ok .ic{background:#16a34a}
.un h2{color:#b45309}.un .ic{background:#d97706}
.tiles{display:flex;flex-wrap:wrap;gap:10px}
.tiles div{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:7px 14px;
min-width:112px}
.tiles span{display:block;font-size:11px;text-transform:uppercase;letter-spacing:.04em;
color:#6b7280}
.tiles b{font-size:18px;font-weight:650;white-space:nowrap}
.tiles small{font-size:12px;font-weight:500;color:#6b7280}
.bar{display:flex;flex-wrap:wrap;align-items:center;gap:10px 14px;margin:0 0 10px}
.bar input,.bar select{font:inherit;padding:6px 10px;border:1px solid #d1d5db;border-radius:6px;
background:#fff}
.bar input{width:260px}
.bar .cnt{color:#6b7280;font-size:13px}
.lg{margin-left:auto;display:flex;align-items:center;gap:6px;font-size:13px;color:#374151}
.lg i{margin-left:8px}
.lg em{margin-left:12px;color:#6b7280;font-size:12px}
.tw{background:#fff;border:1px solid #e5e7eb;border-radius:10px;overflow:clip}
@media (max-width:1060px){.tw{overflow:auto}}
table{border-collapse:collapse;width:100%;font-size:13px}
th{position:sticky;top:0;z-index:1;background:#f9fafb;text-align:left;font-weight:600;color:#374151;
padding:9px 8px;border-bottom:1px solid #e5e7eb;white-space:nowrap;user-select:none}
th[data-t]{cursor:pointer}
th[data-t]:hover{background:#f1f5f9}
th[data-t]::after{content:"\\2195";display:inline-block;color:#c0c6cf;margin-left:4px;font-size:11px}
th[aria-sort=ascending]::after{content:"\\25B2";color:#2563eb}
th[aria-sort=descending]::after{content:"\\25BC";color:#2563eb}
td{padding:6px 8px;border-bottom:1px solid #f0f1f3;vertical-align:middle;
font-variant-numeric:tabular-nums;white-space:nowrap}
td.c,td.k{white-space:normal}
td:nth-child(1){color:#9ca3af;width:1%}
td.c{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-weight:600;
overflow-wrap:anywhere;max-width:240px}
td:nth-child(n+6):nth-child(-n+8),th:nth-child(n+6):nth-child(-n+8){text-align:right}
td:nth-child(7) small{display:block;color:#9ca3af;font-size:11px}
td:nth-child(5) wbr{display:none}
@media (max-width:1200px){th,td:nth-child(5){white-space:normal}td:nth-child(5) wbr{display:inline}}
td.k{max-width:230px;min-width:120px}
td.g{width:1%;padding:3px 8px}
tr.d td{background:#fff5f5}
tr.d td:first-child{box-shadow:inset 3px 0 #dc2626}
tr.u td{color:#6b7280;background:#fafafa}
tr.f td{background:#fffbeb}
tr.f td:first-child{box-shadow:inset 3px 0 #f59e0b}
tr:hover td{background:#f3f6fb}
tr.d:hover td{background:#ffecec}
.s{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;
white-space:nowrap}
.d .s{background:#fee2e2;color:#b91c1c}
.o .s{background:#dcfce7;color:#15803d}
.u .s{background:#e5e7eb;color:#4b5563}
.f .s{background:#fef3c7;color:#92400e}
.why{font:italic 12px system-ui,sans-serif;color:#6b7280;margin-top:2px}
.t{display:inline-block;margin:1px 4px 1px 0;padding:0 6px;border-radius:4px;background:#f3f4f6;
color:#374151;font-size:12px;border:1px solid transparent}
.t em{font-style:normal;color:#6b7280;white-space:nowrap}
.t.x{background:#fff;border:1px dashed #fca5a5;color:#b91c1c}
.t.n{color:#9ca3af}
.na{color:#9ca3af;font-size:12px}
td.g svg{display:block;width:240px;height:68px;overflow:visible}
svg text{font:10px system-ui,sans-serif;fill:#6b7280}
svg .a{text-anchor:start}
svg .z{text-anchor:end}
svg .m{text-anchor:middle}
svg .w{fill:#b45309;font-style:italic}
svg .r{fill:#3b82f6;fill-opacity:.32;stroke:#3b82f6;stroke-width:1}
svg .c{fill:none;stroke:#ea580c;stroke-width:2;stroke-linejoin:round}
svg .R{fill:#3b82f6;fill-opacity:.75}
svg .C{fill:#f97316;fill-opacity:.85}
svg .b{stroke:#9ca3af;stroke-width:1;fill:none}
svg .o{fill:#eef0f3}
#hl{position:fixed;pointer-events:none;background:rgba(15,23,42,.08);border-radius:2px}
#tt{position:fixed;pointer-events:none;z-index:9;background:#111827;color:#f9fafb;border-radius:6px;
padding:6px 10px;font-size:12px;line-height:1.5;box-shadow:0 4px 14px rgba(0,0,0,.18);
white-space:nowrap}
#tt b{display:block;font-weight:600;margin-bottom:2px}
#tt i{margin-right:6px}
#tt u{text-decoration:none;color:#9ca3af;margin-left:4px}
footer{margin-top:16px;color:#9ca3af;font-size:12px}
tr[hidden]{display:none}
@media print{th{position:static}.bar input,.bar select{display:none}}
"""

# Sorting (click or Enter on a header; numbers sort numerically, '–' last), filtering
# (name, status, type), '#sort=K' / '#sort=-K' in the URL to open the page sorted, and the
# tooltip of the charts (bin under the pointer: its range or label, share and count per side).
_JS = """
(function(){
var T=document.getElementById("cols"),B=T.tBodies[0],H=T.tHead.rows[0].cells;
var q=document.getElementById("q"),fs=document.getElementById("fs"),
ft=document.getElementById("ft"),
n=document.getElementById("n"),each=Array.prototype.forEach;
function key(r,i,num){var c=r.cells[i],v=c.getAttribute("data-v");if(v===null)v=c.textContent;
if(num){v=parseFloat(v);return isNaN(v)?null:v}return v}
function sort(i,dir){var h=H[i],num=h.getAttribute("data-t")==="n";
if(!dir)dir=h.getAttribute("aria-sort")==="ascending"?-1:1;
for(var j=0;j<H.length;j++)H[j].removeAttribute("aria-sort");
h.setAttribute("aria-sort",dir>0?"ascending":"descending");
var rows=Array.prototype.map.call(B.rows,function(r,k){return[key(r,i,num),k,r]});
rows.sort(function(a,b){if(a[0]===null||b[0]===null){
if(a[0]===b[0])return a[1]-b[1];return a[0]===null?1:-1}
var c=num?a[0]-b[0]:a[0].localeCompare(b[0],undefined,{numeric:true,sensitivity:"base"});
return c*dir||a[1]-b[1]});
var f=document.createDocumentFragment();rows.forEach(function(x){f.appendChild(x[2])});
B.appendChild(f)}
each.call(H,function(h,i){if(!h.getAttribute("data-t"))return;h.tabIndex=0;
h.onclick=function(){sort(i)};
h.onkeydown=function(e){if(e.key==="Enter"||e.key===" "){e.preventDefault();sort(i)}}});
function filt(){var s=q.value.trim().toLowerCase(),st=fs.value,ty=ft.value,k=0;
each.call(B.rows,function(r){var c=r.cells[1],nm=c.getAttribute("data-v");
if(nm===null)nm=c.textContent;var ok=(!s||nm.toLowerCase().indexOf(s)>=0)&&(!st||r.className===st)&&
(!ty||r.cells[2].textContent===ty);r.hidden=!ok;if(ok)k++});n.textContent=k.toLocaleString("en-US")}
q.oninput=fs.onchange=ft.onchange=filt;
var m=/sort=(-?)(\\d+)/.exec(location.hash);
if(m&&H[+m[2]]&&H[+m[2]].getAttribute("data-t"))sort(+m[2],m[1]?-1:1);
filt();
var tt=document.getElementById("tt"),hl=document.getElementById("hl"),
sp=tt.getElementsByTagName("span");
function nums(s,k){var v=s.getAttribute("data-"+k);return v?v.split(" ").map(Number):[]}
function sum(a){return a.reduce(function(x,y){return x+y},0)}
function info(s){if(s._i)return s._i;var X=nums(s,"x"),R=nums(s,"r"),C=nums(s,"c"),
e=s.getAttribute("data-e"),L=[];if(e!==null){e=e.split(" ");var u=s.hasAttribute("data-u")?1:0;
for(var i=0;i<R.length;i++){var j=i-u;L.push(j<0?"below "+e[0]:j>=e.length-1?
"above "+e[e.length-1]:e[j]+" to "+e[j+1])}}
else{try{L=JSON.parse(s.getAttribute("data-l"))}catch(x){}}
return s._i={X:X,R:R,C:C,L:L,r:sum(R),c:sum(C)}}
function pct(v,t){if(!t)return "–";var p=v/t;
return p===0?"0%":p<0.001?"<0.1%":(100*p).toFixed(1)+"%"}
function cnt(v){return v.toLocaleString("en-US")}
function hide(){tt.hidden=true;hl.hidden=true}
document.addEventListener("mousemove",function(ev){
var t=ev.target,s=t.closest?t.closest("td.g svg"):null;
if(!s||!s.hasAttribute("data-x")){if(!tt.hidden)hide();return}
var d=info(s),b=s.getBoundingClientRect(),x=ev.clientX-b.left,i=0;if(!d.R.length)return;
while(i<d.R.length-1&&x>=d.X[i+1])i++;
tt.firstChild.textContent=d.L[i]===undefined?"":d.L[i];
sp[0].textContent="reference "+pct(d.R[i],d.r);sp[1].textContent=cnt(d.R[i]);
sp[2].textContent="current "+pct(d.C[i],d.c);sp[3].textContent=cnt(d.C[i]);
tt.hidden=false;var w=tt.offsetWidth,h=tt.offsetHeight,l=ev.clientX+14,y=ev.clientY+16;
if(l+w>innerWidth-6)l=ev.clientX-14-w;if(y+h>innerHeight-6)y=ev.clientY-16-h;
tt.style.left=l+"px";tt.style.top=y+"px";hl.hidden=false;hl.style.left=b.left+d.X[i]+"px";
hl.style.top=b.top+"px";hl.style.width=d.X[i+1]-d.X[i]+"px";hl.style.height="@PLOT_H@px"});
addEventListener("scroll",hide,{passive:true});
document.documentElement.setAttribute("data-ready","1");
})();
""".replace("@PLOT_H@", str(_BASE))

_TOOLTIP = (
    '<div id="hl" hidden></div><div id="tt" role="tooltip" hidden><b></b>'
    '<div><i class="r"></i><span></span><u><span></span> rows</u></div>'
    '<div><i class="c"></i><span></span><u><span></span> rows</u></div></div>'
)

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; form-action 'none'; base-uri 'none'"
)


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
    type_opts = "".join(f'<option value="{_esc(t)}">{_esc(t)}</option>' for t in types)
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
    foot = (f"Generated by mlops-engine{' ' + _esc(version) if version else ''}. "
            "Self-contained page: the bins of each column, no raw values, nothing loaded.")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_esc(title)} – {_esc(status)}</title>"
        f"<style>{_CSS}</style></head>\n<body><main>"
        f"{_header(meta, version)}{_verdict(verdict)}{toolbar}"
        f'<div class="tw"><table id="cols"><thead><tr>{heads}</tr></thead><tbody>\n'
        f"{body}\n</tbody></table></div><footer>{foot}</footer></main>"
        f"{_TOOLTIP}<script>{_JS}</script></body></html>\n"
    )
