"""The decisions of :func:`engine.monitor.drift` and its result, :class:`DriftReport`, which
every output (summary, JSON, HTML, the CLI) reads.

Every rule that decides lives here: each test row's decision (:func:`decide_rows`:
adjusted p-value ``<`` threshold for p-value tests, statistic ``>`` threshold for
distances, after :func:`adjust_pvalues` across columns), then one decision per
column (:func:`decide_columns`), from its primary test row and what the data says
about it (missing from the current data, all null there, new), then the verdict
(:func:`decide_verdict`). Nothing downstream decides again.

========== =================================================================== ==========
status     meaning                                                              counts as
                                                                                drift
========== =================================================================== ==========
drift      the primary test's statistic is above its threshold (p-value tests:  yes
           the adjusted p-value is below it)
no drift   the primary test did not cross its threshold                         no
missing    in the reference, not in the current data                           ``missing=``
all null   the current data has rows but no value in this column, the           ``missing=``
           reference has some
new        in the current data, not in the reference                           ``new_columns=``
untestable could not be tested; ``reason`` says why                             no
========== =================================================================== ==========

The dataset's ``status`` is ``untestable`` when no column could be tested
(nothing was compared: no rows, all null, no shared column, or no test could
decide), else ``drift`` when the drifted share of the counted columns (tested
columns plus findings that count) reaches ``share``, else ``no drift``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ..store.arrow_build import table_from_rows

P_TESTS = {"ks", "cvm", "chi2", "gtest", "mmd"}
DEFAULT_THRESHOLDS = {
    "wasserstein_normed": 0.1, "psi": 0.1, "jensenshannon": 0.1, "jensenshannon_trigrams": 0.1,
    "hellinger": 0.1, "linf": 0.2, "wasserstein": float("nan"),
}
NO_THRESHOLD = {"wasserstein": "raw Wasserstein has no scale-free default threshold; pass "
                               "thresholds={'wasserstein': x} or use wasserstein_normed"}
CORRECTIONS = ("bh", "bonferroni", "none")
TABLE_SCHEMA = pa.schema([
    ("column", pa.string()), ("type", pa.string()), ("test", pa.string()),
    ("statistic", pa.float64()), ("p_value", pa.float64()), ("p_adjusted", pa.float64()),
    ("threshold", pa.float64()), ("drifted", pa.bool_()), ("primary", pa.bool_()),
    ("n_ref", pa.int64()), ("n_cur", pa.int64()), ("reason", pa.string()),
])
MULTIVARIATE = "multivariate"  # the type of the mmd row: evidence, not a column
FINDING_POLICIES = ("drift", "report", "ignore")
_FINDING_WORDS = {"missing": "missing from the current data", "all null": "all null",
                  "new": "new"}


def check_correction(correction) -> str | None:
    """``correction`` checked: ``"bh"``, ``"bonferroni"``, or None for ``"none"`` and None."""
    if correction is not None and correction not in CORRECTIONS:
        raise ValueError(f"correction must be 'bh', 'bonferroni', 'none' or None, "
                         f"got {correction!r}")
    return None if correction == "none" else correction


def adjust_pvalues(p: np.ndarray, method: str | None) -> np.ndarray:
    """Benjamini-Hochberg or Bonferroni adjusted p-values; NaN entries stay NaN.

    Matches ``scipy.stats.false_discovery_control(p, method="bh")`` for BH.
    ``method`` ``"none"`` or ``None`` returns the p-values as they are.

    Examples
    --------
    >>> adjust_pvalues([0.01, 0.04, 0.03], "bh")
    array([0.03, 0.04, 0.04])
    """
    method = check_correction(method)
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0 or method is None:
        out[ok] = p[ok]
        return out
    q = p[ok]
    if method == "bonferroni":
        out[ok] = np.minimum(q * m, 1.0)
    else:
        order = np.argsort(q)
        ranked = q[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        adj = np.empty(m)
        adj[order] = np.minimum(ranked, 1.0)
        out[ok] = adj
    return out


def _threshold(thresholds, column, test, alpha) -> float:
    if thresholds:
        per = thresholds.get(column)
        if isinstance(per, dict) and test in per:
            return float(per[test])
        if test in thresholds and not isinstance(thresholds[test], dict):
            return float(thresholds[test])
    return alpha if test in P_TESTS else DEFAULT_THRESHOLDS.get(test, float("nan"))


def decide_rows(rows: list[dict], thresholds, alpha: float, correction) -> None:
    """Set each row's ``threshold``, ``p_adjusted`` (corrected across columns, per test) and
    ``drifted``: adjusted p-value ``<`` threshold for p-value tests, statistic ``>``
    threshold for distances, None (and a ``reason``) when the row cannot decide."""
    by_test: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        r["threshold"] = _threshold(thresholds, r["column"], r["test"], alpha)
        if r["test"] in P_TESTS and r["p_value"] is not None:
            by_test.setdefault(r["test"], []).append(i)
    for idx in by_test.values():
        adj = adjust_pvalues(np.array([rows[i]["p_value"] for i in idx]), correction)
        for i, a in zip(idx, adj):
            rows[i]["p_adjusted"] = float(a)
    for r in rows:
        r.setdefault("p_adjusted", None)
        stat, thr = r["statistic"], r["threshold"]
        if not r["reason"] and r["test"] != "none" and not math.isfinite(thr):
            r["reason"] = NO_THRESHOLD.get(r["test"], f"{r['test']} has no default threshold; "
                                           f"pass thresholds={{{r['test']!r}: x}}")
        if r["reason"] or r["test"] == "none" or not math.isfinite(thr):
            r["drifted"] = None
        elif r["test"] in P_TESTS:
            p = r["p_adjusted"]
            r["drifted"] = None if p is None or not math.isfinite(p) else bool(p < thr)
        else:
            r["drifted"] = None if not math.isfinite(stat) else bool(stat > thr)
        if r["drifted"] is None and not r["reason"]:
            what = "p-value" if r["test"] in P_TESTS else "statistic"
            r["reason"] = f"{r['test']} gave no finite {what}"


def untestable_reason(cur, names, findings) -> str:
    """Why nothing could be compared, should no column of ``names`` be tested."""
    shared = [n for n in names if n in cur.columns]
    if not shared:
        return "the current data shares no column with the reference"
    if cur.n_rows == 0:
        return "the current data has no rows"
    if all(findings.get(n) == "all null" for n in shared):
        return ("the current data has no values in the columns it shares with the reference "
                "(all null)")
    return f"none of the {len(shared)} shared columns could be tested (see each column's reason)"


def report(rows, findings, dists, meta, untestable: str, *, alpha, correction, share, missing,
           new_columns) -> DriftReport:
    """The :class:`DriftReport` of decided ``rows`` (in report order)."""
    table = table_from_rows(rows, TABLE_SCHEMA)  # Table.from_pylist would import pandas
    columns = decide_columns(rows, findings, missing=missing, new_columns=new_columns,
                             correction=correction)
    verdict = decide_verdict(columns, share=share, alpha=alpha, correction=correction,
                             missing=missing, new_columns=new_columns,
                             untestable_reason=untestable)
    return DriftReport(table, verdict, dists, meta, columns)


def _clean(v):
    """JSON-ready: NaN and inf become None."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _num(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}g}"


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _compared(a: float, b: float, digits: int) -> tuple[str, str]:
    """``a`` and ``b`` with enough digits that unequal numbers do not print the same."""
    while digits < 17 and a != b and _num(a, digits) == _num(b, digits):
        digits += 1
    return _num(a, digits), _num(b, digits)


def _decided_reason(r: dict, correction) -> str:
    """Why the primary row decided as it did, in the rule the code applies."""
    if r["p_adjusted"] is not None:
        p = "adjusted p" if correction is not None else "p"
        rel = "<" if r["drifted"] else ">="
        pv, thr = _compared(r["p_adjusted"], r["threshold"], 3)
        return f"{r['test']} statistic {_num(r['statistic'])}, {p} {pv} {rel} {thr}"
    rel = ">" if r["drifted"] else "<="
    stat, thr = _compared(r["statistic"], r["threshold"], 4)
    return f"{r['test']} {stat} {rel} {thr}"


def decide_columns(rows: list[dict], findings: dict[str, str], *, missing: str,
                   new_columns: str, correction) -> list[dict]:
    """One decision per column from its primary row (``rows`` in report order) and the
    ``findings`` (column -> ``"missing"``, ``"all null"``, ``"new"`` or ``"no rows"``)."""
    policy = {"missing": missing, "all null": missing, "new": new_columns}
    out = []
    for r in rows:
        if not r["primary"] and r["type"] != MULTIVARIATE:
            continue
        found = findings.get(r["column"])
        if found == "no rows":
            status, reason = "untestable", "the current data has no rows"
        elif found == "all null":
            status, reason = found, "current column has no values (all null or NaN)"
        elif found in policy:
            status, reason = found, r["reason"]
        elif r["drifted"] is None:
            status, reason = "untestable", r["reason"]
        else:
            status = "drift" if r["drifted"] else "no drift"
            reason = _decided_reason(r, correction)
        if r["type"] == MULTIVARIATE and status != "untestable":
            reason += "; multivariate evidence, not counted in the verdict"
        counts = r["type"] != MULTIVARIATE and (
            status == "drift" or (status in policy and policy[status] == "drift"))
        out.append({"column": r["column"], "type": r["type"], "status": status,
                    "counts_as_drift": counts, "test": r["test"], "statistic": r["statistic"],
                    "p_value": r["p_value"], "p_adjusted": r["p_adjusted"],
                    "threshold": r["threshold"], "n_ref": r["n_ref"], "n_cur": r["n_cur"],
                    "reason": reason})
    return out


def decide_verdict(columns: list[dict], *, share: float, alpha: float, correction,
                   missing: str, new_columns: str, untestable_reason: str) -> dict:
    """The dataset's verdict from the per-column decisions (see the module docstring)."""
    cols = [c for c in columns if c["type"] != MULTIVARIATE]
    tested = [c for c in cols if c["status"] in ("drift", "no drift")]
    counted = tested + [c for c in cols if c["status"] not in ("drift", "no drift")
                        and c["counts_as_drift"]]
    drifted = sum(c["counts_as_drift"] for c in counted)
    frac = drifted / len(counted) if counted else 0.0
    if not tested:
        status = "untestable"
        reason = f"nothing could be compared: {untestable_reason}"
    else:
        status = "drift" if frac >= share else "no drift"
        reason = _reason(cols, counted, drifted, frac, share, status)
    return {"status": status, "drift": status == "drift", "reason": reason,
            "drifted_columns": drifted, "counted_columns": len(counted),
            "tested_columns": len(tested), "untested_columns": len(cols) - len(tested),
            "share": frac, "share_threshold": share, "correction": correction, "alpha": alpha,
            "missing": missing, "new_columns": new_columns}


def _reason(cols, counted, drifted, frac, share, status) -> str:
    counted_findings = {}
    for c in counted:
        if c["status"] in _FINDING_WORDS:
            counted_findings[c["status"]] = counted_findings.get(c["status"], 0) + 1
    inner = _pct(frac)
    if counted_findings:
        inner += "; " + ", ".join(f"{n} {_FINDING_WORDS[s]}" for s, n in counted_findings.items())
    where = "at or above" if status == "drift" else "below"
    text = (f"{drifted} of {_plural(len(counted), 'column')} drifted ({inner}), {where} the "
            f"{_pct(share)} share that declares dataset drift")
    reported = [c for c in cols if c["status"] in _FINDING_WORDS and not c["counts_as_drift"]]
    notes = []
    for s in _FINDING_WORDS:
        n = sum(c["status"] == s for c in reported)
        if n:
            noun = _plural(n, "new column") if s == "new" else \
                f"{_plural(n, 'column')} {_FINDING_WORDS[s]}"
            notes.append(f"{noun} reported, not counted")
    n_untestable = sum(c["status"] == "untestable" for c in cols)
    if n_untestable:
        notes.append(f"{_plural(n_untestable, 'column')} could not be tested")
    return "; ".join([text, *notes])


@dataclass
class DriftReport:
    """The result of :func:`drift`.

    Attributes
    ----------
    table : pyarrow.Table
        One row per (column, test): ``column, type, test, statistic, p_value,
        p_adjusted, threshold, drifted, primary, n_ref, n_cur, reason``. ``drifted``
        is null and ``reason`` says why when a test could not decide.
    verdict : dict
        ``status`` (``"drift"``, ``"no drift"`` or ``"untestable"``), ``drift``
        (bool: status is ``"drift"``), ``reason`` (the decision in words),
        ``drifted_columns``, ``counted_columns``, ``tested_columns``,
        ``untested_columns``, ``share``, and the settings ``share_threshold``,
        ``correction``, ``alpha``, ``missing``, ``new_columns``.
    distributions : dict
        Per column, the binned reference and current distributions (for plots).
    meta : dict
        ``reference_rows``, ``current_rows``, ``engine_version``, ``created``.
    columns : list of dict
        The one decision per column (see the module docstring): ``column, type,
        status, counts_as_drift, test`` (the primary test) ``, statistic,
        p_value, p_adjusted, threshold, n_ref, n_cur, reason``.
    """

    table: pa.Table
    verdict: dict
    distributions: dict = field(repr=False, default_factory=dict)
    meta: dict = field(default_factory=dict)
    columns: list = field(repr=False, default_factory=list)

    @property
    def status(self) -> str:
        """``"drift"``, ``"no drift"`` or ``"untestable"`` (nothing could be compared)."""
        return self.verdict["status"]

    @property
    def drift(self) -> bool:
        return bool(self.verdict["drift"])

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the columns that count as drifted, in report order."""
        return [c["column"] for c in self.columns if c["counts_as_drift"]]

    def to_dict(self) -> dict:
        tests = [{k: _clean(v) for k, v in r.items()} for r in self.table.to_pylist()]
        columns = [{k: _clean(v) for k, v in c.items()} for c in self.columns]
        return {"format": "mlops-engine drift report", "format_version": 1,
                "verdict": self.verdict, "meta": self.meta, "columns": columns, "tests": tests}

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

        html = render_html(self.columns, self.table, self.verdict, self.distributions, self.meta)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(html)
        return html

    def summary(self) -> str:
        """The verdict and why, in one line: ``no drift: 2 of 8 columns drifted (25%), below
        the 50% share that declares dataset drift``."""
        word = {"drift": "DRIFT", "untestable": "UNTESTABLE"}.get(self.status, self.status)
        return f"{word}: {self.verdict['reason']}"
