"""The charts of the drift report page: a column's reference and current distributions.

Hand-written inline SVG with integer coordinates and the page's shared CSS classes
(``report.css``), so that a page of 1,000 columns of a dozen bins each
stays well under 2 MB. Numeric columns are drawn as two step outlines over the
reference's quantile bins (the outer bins half as wide and shaded, drawn only when
something falls there); categorical and text columns as paired bars. The numbers of
the bin under the pointer come from ``data-*`` attributes that the page's script
(``report.js``) reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from .report_text import esc, num, pct

__all__ = ["BASELINE", "chart"]

# Chart geometry, in CSS pixels (the SVG has no viewBox: user units are pixels).
_W = 240  # plot width
_TOP = 12  # top of the plot area (room for the scale label above)
BASELINE = 52  # y of the bars' baseline (the page's script highlights down to it)
_LABEL_Y = 64  # baseline of the axis labels
_PLOT_H = BASELINE - _TOP


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
    return round(BASELINE - _PLOT_H * p / top) if top > 0 else BASELINE


def _count(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else num(v, 6)


def _hover_data(xs: list[int], ref: list[float], cur: list[float]) -> str:
    """Attributes the page's script reads to show the numbers of the bin under the pointer:
    slot boundaries and the counts of both sides (far smaller than a <title> per bin)."""
    return (
        f' data-x="{" ".join(map(str, xs))}" data-r="{" ".join(map(_count, ref))}"'
        f' data-c="{" ".join(map(_count, cur))}"'
    )


def _labels_attr(labels: list[str]) -> str:
    return f' data-l="{esc(json.dumps(labels, ensure_ascii=False))}"'


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
    return f'<text x="1" y="9">{pct(top)}</text>'


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
        d_ = [f"M0 {BASELINE}"]
        for j, i in enumerate(keep):
            d_.append(f"V{_y(ps[i], top)}H{xs[j + 1]}")
        d_.append(f"V{BASELINE}Z")
        parts.append(f'<path class="{cls}" d="{"".join(d_)}"/>')
    parts.append(f'<path class="b" d="M0 {BASELINE}H{_W}"/>')
    # Axis labels: the first and the last edge, under their positions.
    if len(edges) >= 2:
        first = keep.index(1) if 1 in keep else 0
        last = keep.index(len(edges) - 1) + 1 if (len(edges) - 1) in keep else n
        parts.append(f'<text x="{xs[first]}" y="{_LABEL_Y}" class="a">{num(edges[0], 3)}</text>')
        parts.append(
            f'<text x="{xs[last]}" y="{_LABEL_Y}" class="z">{num(edges[-1], 3)}</text>'
        )
    parts.append(_scale_label(top))
    parts.append(_empty_note(sum(ref), sum(cur)))
    data = _hover_data(xs, [ref[i] for i in keep], [cur[i] for i in keep])
    if edges:  # the script names the bins from the edges; 'data-u': an underflow slot is drawn
        data += f' data-e="{" ".join(num(e) for e in edges)}"'
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
        if yr < BASELINE:
            rpath.append(f"M{xr} {BASELINE}V{yr}h{half}V{BASELINE}Z")
        if yc < BASELINE:
            cpath.append(f"M{xc} {BASELINE}V{yc}h{half}V{BASELINE}Z")
        # A label under the bars when it fits (at most 6 px a character at 10 px).
        lab = labels[j]
        room = int((w - 6) / 6)
        if room >= 3:
            if len(lab) > room:
                lab = lab[: room - 1] + "…"
            texts.append(f'<text x="{(x0 + x1) // 2}" y="{_LABEL_Y}" class="m">{esc(lab)}</text>')
    parts = []
    if rpath:
        parts.append(f'<path class="R" d="{"".join(rpath)}"/>')
    if cpath:
        parts.append(f'<path class="C" d="{"".join(cpath)}"/>')
    parts.append(f'<path class="b" d="M0 {BASELINE}H{_W}"/>')
    parts += texts
    parts.append(_scale_label(top))
    parts.append(_empty_note(sum(ref), sum(cur)))
    data = _hover_data(xs, ref, cur) + _labels_attr(labels)
    return f"<svg{data}>{''.join(parts)}</svg>"


def chart(name: str, d) -> str:
    """The inline SVG of column ``name``'s distribution ``d`` (see
    :func:`~engine.monitor.report_html.render_html` for its shape), or a note when
    there is none. Raises ValueError naming the column for a malformed ``d``.

    Examples
    --------
    >>> svg = chart("age", {"kind": "numeric", "edges": [0, 30, 60], "ref": [0, 5, 5, 0],
    ...                     "cur": [0, 2, 8, 0]})
    >>> svg.startswith("<svg") and 'data-e="0 30 60"' in svg
    True
    """
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
