"""How the drift report page writes values: HTML escaping, numbers, shares.

Shared by the page (:mod:`engine.monitor.report_html`) and its charts
(:mod:`engine.monitor.report_charts`), so that a number reads the same in the table,
the banner and a chart.

Examples
--------
>>> num(1.23456e-05), num(float("nan")), pct(0.0004), esc("<a & b>")
('1.235e-5', '–', '<0.1%', '&lt;a &amp; b&gt;')
"""

from __future__ import annotations

import html
import math
import re

__all__ = ["esc", "is_missing", "num", "pct"]

# C0/C1 controls (but tab and newline), and lone surrogates: not allowed in HTML text.
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def esc(value) -> str:
    """Escape any value for HTML text and double-quoted attributes."""
    return html.escape(_BAD_CHARS.sub("\ufffd", str(value)), quote=True)


def is_missing(x) -> bool:
    """True for None and NaN: shown as '–'."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def num(x, digits: int = 4) -> str:
    """A number for display: '–' when missing or NaN, 4 significant digits."""
    if is_missing(x):
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


def pct(p: float) -> str:
    """A share for display: one decimal, '<0.1%' for a tiny one, '0%' for none."""
    if p == 0:
        return "0%"
    if p < 0.001:
        return "<0.1%"
    return f"{100 * p:.1f}%"
