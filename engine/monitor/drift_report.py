"""The result of :func:`engine.monitor.drift`: :class:`DriftReport` and its table's schema."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

TABLE_SCHEMA = pa.schema([
    ("column", pa.string()), ("type", pa.string()), ("test", pa.string()),
    ("statistic", pa.float64()), ("p_value", pa.float64()), ("p_adjusted", pa.float64()),
    ("threshold", pa.float64()), ("drifted", pa.bool_()), ("primary", pa.bool_()),
    ("n_ref", pa.int64()), ("n_cur", pa.int64()), ("reason", pa.string()),
])


@dataclass
class DriftReport:
    """The result of :func:`drift`.

    Attributes
    ----------
    table : pyarrow.Table
        One row per (column, test): ``column, type, test, statistic, p_value,
        p_adjusted, threshold, drifted, primary, n_ref, n_cur, reason``. ``drifted``
        is null and ``reason`` says why when a column could not be tested.
    verdict : dict
        ``drift`` (bool), ``drifted_columns``, ``tested_columns``, ``share``,
        ``share_threshold``, ``correction``, ``alpha``.
    distributions : dict
        Per column, the binned reference and current distributions (for plots).
    """

    table: pa.Table
    verdict: dict
    distributions: dict = field(repr=False, default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def drift(self) -> bool:
        return bool(self.verdict["drift"])

    @property
    def drifted_columns(self) -> list[str]:
        t = self.table.filter(pc.and_(self.table["primary"],
                                      pc.fill_null(self.table["drifted"], False)))
        return t.column("column").to_pylist()

    def to_dict(self) -> dict:
        rows = []
        for r in self.table.to_pylist():
            rows.append({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                         for k, v in r.items()})
        return {"format": "mlops-engine drift report", "format_version": 1,
                "verdict": self.verdict, "meta": self.meta, "tests": rows}

    def to_json(self, path=None, indent: int | None = 1) -> str:
        """The report as JSON (NaN and inf become null); also written to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w") as f:
                f.write(text)
        return text

    def to_html(self, path=None) -> str:
        """A self-contained HTML page (no network); also written to ``path`` if given."""
        from .report_html import render_html

        html = render_html(self.table, self.verdict, self.distributions, self.meta)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(html)
        return html

    def summary(self) -> str:
        v = self.verdict
        word = "DRIFT" if v["drift"] else "no drift"
        return (f"{word}: {v['drifted_columns']} of {v['tested_columns']} columns drifted "
                f"(share {v['share']:.2f}, threshold {v['share_threshold']:.2f}, "
                f"correction {v['correction']})")
