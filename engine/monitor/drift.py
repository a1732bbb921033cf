"""``drift(reference, current)``: per-column drift tests, corrected p-values, a dataset verdict.

Both sides may be raw data (a ``pyarrow.Table``, a pandas DataFrame, a 2-D NumPy
array or a mapping of columns) or :class:`~engine.monitor.profile.Profile` objects.
A raw side's numeric columns are sorted, NaN dropped
(:func:`~engine.monitor.profile.sorted_profile`; a block of columns at a time when
the current side is raw, see :mod:`engine.monitor.drift_rows`): its whole column is the
"sample", so the exact tests see every value, and the numbers equal those of its
exact profile (``profile(data, sample_size=None)``) without computing the rest
of one. The current side is binned on the reference's quantile edges. With a
stored reference profile (the production case), only the current batch is
sorted; the reference's samples are packed once and kept on the Profile object
for the next batch.

Tests by column kind (``tests=`` picks others by name):

============  ========================================  =================================
kind          default tests (first one decides)          also available
============  ========================================  =================================
numeric       ``ks`` if either side has <= 1000 values,  ``wasserstein``, ``cvm``,
              else ``wasserstein_normed``; plus ``psi``  ``jensenshannon``, ``hellinger``
categorical   ``chi2`` if either side has <= 1000         ``gtest``, ``linf``, ``psi``,
              values, else ``jensenshannon``              ``hellinger``
text          ``jensenshannon`` on the script histogram,  ``hellinger``
              ``jensenshannon_trigrams``
============  ========================================  =================================

Default thresholds follow common practice (Evidently's where it has one): a p-value
test drifts when the adjusted p-value is below ``alpha`` = 0.05; a distance drifts
when its statistic is above (``>``) its threshold: normed Wasserstein, PSI,
Jensen-Shannon, Hellinger at 0.1, L-infinity at 0.2. P-values are corrected
across columns, per test, with Benjamini-Hochberg (``correction="bh"``, default) or
Bonferroni (``"bonferroni"``) or not at all (``"none"`` or ``None``). Each column is
decided once, by its primary (first) test and the schema findings (see
:mod:`engine.monitor.drift_report`); the dataset drifts when the share of drifted
columns reaches ``share`` (0.5), and is ``untestable`` when no column could be tested.

The path of a run, module by module: the options are checked
(:mod:`~engine.monitor.drift_options`), both sides become profiles
(:mod:`~engine.monitor.drift_sides`), each column kind is tested at once
(:mod:`~engine.monitor.drift_rows`; MMD in :mod:`~engine.monitor.mmd`), the rows,
columns and verdict are decided (:mod:`~engine.monitor.drift_report`), and the
report renders itself (JSON, or :mod:`~engine.monitor.report_html`).
"""

from __future__ import annotations

import datetime

from ..progress import Progress
from .drift_options import (  # noqa: F401  (public names of this module before the split)
    CATEGORICAL_TESTS,
    EXACT_TESTS,
    HIST_TESTS,
    KNOWN_TESTS,
    NUMERIC_TESTS,
    SMALL_SAMPLE,
    TEXT_TESTS,
    check_options,
    check_thresholds,
)
from .drift_report import DriftReport, adjust_pvalues, decide_rows, report, untestable_reason
from .drift_rows import (
    categorical_rows,
    numeric_rows,
    numeric_rows_blocked,
    text_rows,
    untested_row,
)
from .drift_sides import side_profiles

__all__ = ["DriftReport", "adjust_pvalues", "check_options", "drift"]


def drift(reference, current, *, tests=None, columns=None, types=None, thresholds=None,
          alpha: float = 0.05, correction: str | None = "bh", share: float = 0.5,
          missing: str = "drift", new_columns: str = "report", bins: int = 10,
          mmd_permutations: int = 200, mmd_max_rows: int = 1000, seed: int = 0,
          progress: bool | None = None) -> DriftReport:
    """Test every column of ``current`` against ``reference``.

    Parameters
    ----------
    reference, current
        Raw data (Table, DataFrame, 2-D array, mapping of columns) or Profiles.
    tests : list of str, optional
        Test names instead of the per-kind defaults (see the module docstring). A test
        that does not apply to a column's kind is skipped for that column; a column
        that none applies to is untestable.
    columns : list of str, optional
        Columns to test (default: every column of the reference, and the current's
        new ones).
    types : dict, optional
        Column kinds overriding inference: ``{"col": "numeric"|"categorical"|"text"}``.
    thresholds : dict, optional
        ``{"psi": 0.2}`` for every column, or ``{"col": {"psi": 0.2}}`` per column; for
        p-value tests the threshold is the significance level. A key that names
        neither a known test nor a column is an error.
    alpha : float
        Significance level of the p-value tests (after correction).
    correction : {"bh", "bonferroni", "none", None}
        Multiple-testing correction across columns, per test.
    share : float
        The dataset drifts when at least this share of counted columns drifted.
    missing : {"drift", "report", "ignore"}
        A column missing from the current data, or all null there (while the
        reference has values): ``"drift"`` counts it as a drifted column,
        ``"report"`` lists it without counting it, ``"ignore"`` leaves it out.
    new_columns : {"report", "drift", "ignore"}
        The same for a column of the current data that the reference lacks.
    progress : bool, optional
        A progress bar on stderr, per column: ``None`` when stderr is a terminal.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = {"a": rng.normal(size=500), "b": rng.normal(size=500)}
    >>> cur = {"a": rng.normal(size=500) + 1.0, "b": rng.normal(size=500)}
    >>> rep = drift(ref, cur)
    >>> rep.drifted_columns, rep.status
    (['a'], 'drift')
    """
    opts = check_options(tests=tests, thresholds=thresholds, correction=correction, alpha=alpha,
                         share=share, missing=missing, new_columns=new_columns)
    if progress is not None and not isinstance(progress, bool):
        raise ValueError(f"progress must be True, False or None, got {progress!r}")
    tests = opts["tests"]
    # raw current data: numeric columns deferred, then sorted and tested in blocks of columns
    ref, cur, blocked = side_profiles(reference, current, columns, types, bins)
    names = list(columns) if columns is not None else list(ref.columns)
    opts["thresholds"] = check_thresholds(opts["thresholds"], set(ref.columns) | set(cur.columns))
    extra = sorted(set(cur.columns) - set(ref.columns)) if columns is None else []
    rows: list[dict] = []
    dists: dict = {}
    findings: dict[str, str] = {}
    counts: dict[str, tuple] = {}  # column -> (values in the reference, in the current data)
    by_kind: dict[str, list] = {"numeric": [], "categorical": [], "text": []}
    with Progress(len(names) + len(extra), "drift", enabled=progress, unit="columns") as bar:
        for name in names:
            if name not in ref.columns:
                raise ValueError(f"column {name!r} is not in the reference")
            rc, cc = ref.columns[name], cur.columns.get(name)
            if cc is not None and rc.kind in by_kind and cc.kind == rc.kind:
                by_kind[rc.kind].append(name)
                if rc.kind != "numeric":  # numeric counts come with the block (deferred here)
                    counts[name] = (rc.count, cc.count)
                continue
            if cc is None:
                findings[name] = "missing"
                why = "column is missing from the current data"
            elif cc.kind != rc.kind and getattr(cc, "count", None) == 0:
                counts[name] = (getattr(rc, "count", 0), 0)
                why = "current column has no values"
            elif cc.kind != rc.kind:
                why = f"type differs: {rc.kind} in the reference, {cc.kind} in the current data"
            else:
                why = getattr(rc, "reason", None) or f"kind {rc.kind!r}"
            rows.append(untested_row(name, rc.kind, why))
            bar.advance(1)
        for name in extra:
            findings[name] = "new"
            rows.append(untested_row(name, cur.columns[name].kind, "column is not in the reference"))
            bar.advance(1)
        numeric = by_kind["numeric"]
        if blocked:
            rows += numeric_rows_blocked(reference, current, ref, cur, numeric, tests, dists,
                                         counts, columns, types, bins, tick=bar.advance)
        else:
            rows += numeric_rows(ref, cur, numeric, tests, dists, counts)
            bar.advance(len(numeric))
        rows += categorical_rows(ref, cur, by_kind["categorical"], tests, dists)
        bar.advance(len(by_kind["categorical"]))
        rows += text_rows(ref, cur, by_kind["text"], tests, dists)
        bar.advance(len(by_kind["text"]))
    _untested_kinds(rows, by_kind, tests)
    if tests is not None and "mmd" in tests and numeric:
        from .mmd import mmd_rows

        rows += mmd_rows(reference, current, numeric, columns, mmd_permutations, mmd_max_rows,
                         seed)
    for name, (n_ref, n_cur) in counts.items():
        if cur.n_rows > 0 and n_cur == 0 and n_ref > 0:
            findings[name] = "all null"
    why = untestable_reason(cur, names, findings)
    if cur.n_rows == 0:
        findings.update({n: "no rows" for n in names if n in cur.columns})
    policy = {"missing": opts["missing"], "all null": opts["missing"], "new": opts["new_columns"]}
    dropped = {n for n, f in findings.items() if policy.get(f) == "ignore"}
    rows = [r for r in rows if r["column"] not in dropped]
    order = [n for n in names + extra if n not in dropped]
    return _finish(rows, {k: v for k, v in dists.items() if k not in dropped}, findings, opts,
                   ref, cur, order, why)


def _untested_kinds(rows, by_kind, tests) -> None:
    """A row for each column that no test of ``tests=`` applies to: untestable, not silent."""
    seen = {r["column"] for r in rows}
    for kind, names in by_kind.items():
        for name in names:
            if name not in seen:
                rows.append(untested_row(name, kind, f"no test of tests={tests} applies to "
                                         f"{kind} columns"))


def _finish(rows, dists, findings, opts, ref, cur, order, why) -> DriftReport:
    from .. import __version__

    decide_rows(rows, opts["thresholds"], opts["alpha"], opts["correction"])
    pos = {n: i for i, n in enumerate(order)}
    rows.sort(key=lambda r: (pos.get(r["column"], len(pos)), not r["primary"]))
    meta = {"reference_rows": ref.n_rows, "current_rows": cur.n_rows, "engine_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    return report(rows, findings, dists, meta, why, **{k: opts[k] for k in (
        "alpha", "correction", "share", "missing", "new_columns")})
