"""``drift(reference, current)``: per-column drift tests, corrected p-values, a dataset verdict.

Both sides may be raw data (a ``pyarrow.Table``, a pandas DataFrame, a 2-D NumPy
array or a mapping of columns) or :class:`~engine.monitor.profile.Profile` objects.
A raw side's numeric columns are sorted, NaN dropped
(:func:`~engine.monitor.profile.sorted_profile`; a block of columns at a time when
the current side is raw, see :mod:`engine.monitor.drift_blocks`): its whole column is the
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
"""

from __future__ import annotations

import difflib
import math

import numpy as np

from .drift_blocks import _current_hists, _no_sample_reason, _packed
from .drift_report import (
    FINDING_POLICIES,
    P_TESTS,
    DriftReport,
    _check_correction,
    adjust_pvalues,
    decide_rows,
    report,
    untestable_reason,
)

__all__ = ["DriftReport", "adjust_pvalues", "check_options", "drift"]

NUMERIC_TESTS = ("ks", "wasserstein", "wasserstein_normed", "cvm", "psi", "jensenshannon", "hellinger")
CATEGORICAL_TESTS = ("chi2", "gtest", "linf", "jensenshannon", "psi", "hellinger")
TEXT_TESTS = ("jensenshannon", "jensenshannon_trigrams", "hellinger")
KNOWN_TESTS = frozenset(NUMERIC_TESTS) | frozenset(CATEGORICAL_TESTS) | frozenset(TEXT_TESTS) \
    | {"mmd"}
SMALL_SAMPLE = 1000
HIST_TESTS = ("psi", "jensenshannon", "hellinger")
EXACT_TESTS = ("ks", "wasserstein", "wasserstein_normed", "cvm")


def _as_profile(data, name: str, edges_from=None, columns=None, types=None, bins=10,
                defer=False):
    from .profile import Profile, sorted_profile

    if isinstance(data, Profile):
        return data
    try:
        # Every value, sorted, so the exact tests see the whole column; no more than that.
        return sorted_profile(data, columns=columns, types=types, bins=bins,
                              edges_from=edges_from, defer_numeric=defer)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None


def _check_tests(tests) -> list[str] | None:
    if tests is None:
        return None
    if isinstance(tests, str):
        tests = [tests]
    tests = list(tests)
    if not tests:
        raise ValueError("tests must name at least one test, or be None for the defaults")
    for t in tests:
        if t not in KNOWN_TESTS:
            raise ValueError(f"unknown test {t!r}; known tests: {sorted(KNOWN_TESTS)}")
    return tests


def _threshold_value(key: str, v, test: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"thresholds[{key}] must be a finite number >= 0, got {v!r}")
    if test in P_TESTS and v > 1:
        raise ValueError(f"thresholds[{key}] is the significance level of {test}, a p-value "
                         f"test: expected a number in [0, 1], got {v!r}")
    return float(v)


def _check_thresholds(thresholds, column_names=None) -> dict | None:
    """``thresholds`` with float values; every key must name a known test (a number) or a
    column (a dict of test -> number). Columns are checked when ``column_names`` is given."""
    if thresholds is None:
        return None
    if not isinstance(thresholds, dict):
        raise TypeError(f"thresholds must be a dict, got {type(thresholds).__name__}")
    out: dict = {}
    for key, val in thresholds.items():
        if isinstance(val, dict):
            if column_names is not None and key not in column_names:
                close = difflib.get_close_matches(str(key), sorted(map(str, column_names)), 3)
                hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
                raise ValueError(f"thresholds key {key!r} names neither a known test nor a "
                                 f"column of the data{hint}")
            out[key] = {}
            for t, v in val.items():
                if t not in KNOWN_TESTS:
                    raise ValueError(f"thresholds[{key!r}]: unknown test {t!r}; known tests: "
                                     f"{sorted(KNOWN_TESTS)}")
                out[key][t] = _threshold_value(f"{key!r}][{t!r}", v, t)
        elif key in KNOWN_TESTS:
            out[key] = _threshold_value(repr(key), val, key)
        else:
            close = difflib.get_close_matches(str(key), sorted(KNOWN_TESTS), 3)
            hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
            raise ValueError(f"thresholds key {key!r} is not a known test ({hint}known tests: "
                             f"{sorted(KNOWN_TESTS)}); a column's thresholds must be a dict of "
                             f"test -> threshold, e.g. {{{key!r}: {{'psi': 0.2}}}}, got {val!r}")
    return out


def check_options(*, tests=None, thresholds=None, correction: str | None = "bh",
                  alpha: float = 0.05, share: float = 0.5, missing: str = "drift",
                  new_columns: str = "report", column_names=None) -> dict:
    """Validate and normalize the options of :func:`drift` (the CLI calls this too).

    Parameters
    ----------
    tests, thresholds, correction, alpha, share, missing, new_columns
        As for :func:`drift`.
    column_names : iterable of str, optional
        The columns of the data: then a ``thresholds`` key that names neither a
        known test nor one of them is an error (without it, only per-test keys
        and the tests inside per-column dicts are checked).

    Returns
    -------
    dict
        ``tests`` (list or None), ``thresholds`` (float values, or None),
        ``correction`` (``"bh"``, ``"bonferroni"`` or None for ``"none"``),
        ``alpha``, ``share``, ``missing``, ``new_columns``: keyword arguments
        ready for :func:`drift`.

    Raises
    ------
    ValueError, TypeError
        Naming the argument (and the key of ``thresholds``) and what was expected.

    Examples
    --------
    >>> check_options(tests="ks", correction="none")["tests"], check_options(correction="none")["correction"]
    (['ks'], None)
    """
    for nm, v in (("alpha", alpha), ("share", share)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise ValueError(f"{nm} must be a number in (0, 1], got {v!r}")
    for nm, v in (("missing", missing), ("new_columns", new_columns)):
        if v not in FINDING_POLICIES:
            raise ValueError(f"{nm} must be one of {', '.join(map(repr, FINDING_POLICIES))}, "
                             f"got {v!r}")
    names = None if column_names is None else set(column_names)
    return {"tests": _check_tests(tests), "thresholds": _check_thresholds(thresholds, names),
            "correction": _check_correction(correction), "alpha": float(alpha),
            "share": float(share), "missing": missing, "new_columns": new_columns}


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
    from ..progress import Progress
    from . import drift_blocks

    # raw current data: numeric columns deferred, then sorted and tested in blocks of columns
    ref, cur, blocked = drift_blocks.profiles(reference, current, columns, types, bins)
    names = list(columns) if columns is not None else list(ref.columns)
    opts["thresholds"] = _check_thresholds(opts["thresholds"], set(ref.columns) | set(cur.columns))
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
            rows.append(_untested(name, rc.kind, why))
            bar.advance(1)
        for name in extra:
            findings[name] = "new"
            rows.append(_untested(name, cur.columns[name].kind, "column is not in the reference"))
            bar.advance(1)
        numeric = by_kind["numeric"]
        if blocked:
            rows += drift_blocks.numeric_rows(reference, current, ref, cur, numeric, tests, dists,
                                              counts, columns, types, bins, tick=bar.advance)
        else:
            rows += _numeric_rows(ref, cur, numeric, tests, dists, counts)
            bar.advance(len(numeric))
        rows += _categorical_rows(ref, cur, by_kind["categorical"], tests, dists)
        bar.advance(len(by_kind["categorical"]))
        rows += _text_rows(ref, cur, by_kind["text"], tests, dists)
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
                rows.append(_untested(name, kind, f"no test of tests={tests} applies to {kind} "
                                      "columns"))


def _untested(name, kind, reason) -> dict:
    return {"column": name, "type": kind, "test": "none", "statistic": float("nan"),
            "p_value": None, "threshold": float("nan"), "primary": True, "n_ref": 0,
            "n_cur": 0, "reason": reason}


def _stat_rows(names, kind, test, res, primary_mask) -> list[dict]:
    out = []
    for j, name in enumerate(names):
        p = None if res.pvalue is None else float(res.pvalue[j])
        out.append({"column": name, "type": kind, "test": test,
                    "statistic": float(res.statistic[j]), "p_value": p, "threshold": None,
                    "primary": bool(primary_mask[j]), "n_ref": int(res.n_ref[j]),
                    "n_cur": int(res.n_cur[j]), "reason": res.reason[j]})
    return out


def _applicable(tests, allowed, default) -> list[str]:
    if tests is None:
        return list(default)
    return [t for t in tests if t in allowed]


def _primary(names, n_ref, n_cur, tests, small_test, large_test) -> list[str]:
    """The deciding test per column: the user's first applicable test, else by sample size."""
    if tests is not None:
        return [tests[0]] * len(names)
    return [small_test if min(a, b) <= SMALL_SAMPLE else large_test for a, b in zip(n_ref, n_cur)]


def _numeric_rows(ref, cur, names, tests, dists, counts, ref_pack=None) -> list[dict]:
    """Rows of the numeric columns ``names``; their binned distributions go to ``dists``
    and their numbers of values (reference, current) to ``counts``."""
    from ..kernels import drift as K

    if not names:
        return []
    run = _applicable(tests, NUMERIC_TESTS, ("ks", "wasserstein_normed", "psi"))
    if not run:
        return []

    out = {}
    if {"ks", "wasserstein", "wasserstein_normed", "cvm"} & set(run):
        r, r_std = ref_pack if ref_pack is not None else _packed(ref, names, std=True)
        c, _ = _packed(cur, names)
        res = K.numeric_drift_columns(r, c, ref_std=r_std)
        out = {"ks": res["ks_2samp"], "wasserstein": res["wasserstein"],
               "wasserstein_normed": res["wasserstein_normed"], "cvm": res["cvm_2samp"]}
    cur_hists, unbinned = _current_hists(ref, cur, names)
    rh = np.stack([np.asarray(ref.columns[n].hist, dtype=np.float64) for n in names])
    ch = np.stack(cur_hists)
    if "psi" in run:
        out["psi"] = K.psi_counts_columns(rh, ch)
    if "jensenshannon" in run:
        out["jensenshannon"] = K.js_counts_columns(rh, ch)
    if "hellinger" in run:
        out["hellinger"] = K.hellinger_counts_columns(rh, ch)
    n_ref = [int(ref.columns[n].count) for n in names]
    n_cur = [int(cur.columns[n].count) for n in names]
    counts.update(zip(names, zip(n_ref, n_cur)))
    prim = _primary(names, n_ref, n_cur, run if tests is not None else None, "ks",
                    "wasserstein_normed")
    no_sample = {}
    for n in names:
        why = _no_sample_reason(ref.columns[n], "reference") \
            or _no_sample_reason(cur.columns[n], "current")
        if why:
            no_sample[n] = why
    for j, n in enumerate(names):
        # Without a sample the exact tests cannot run: a histogram test decides instead.
        if n in no_sample and prim[j] in EXACT_TESTS:
            ok = [t for t in run if t in HIST_TESTS and n not in unbinned]
            if ok:
                prim[j] = ok[0]
    rows = []
    for t in run:
        if t in out:
            rows += _stat_rows(names, "numeric", t, out[t], [p == t for p in prim])
    for r in rows:
        if r["test"] in HIST_TESTS and r["column"] in unbinned:
            r.update(statistic=float("nan"), p_value=None, reason=unbinned[r["column"]])
        elif r["test"] in EXACT_TESTS and r["column"] in no_sample:
            r.update(statistic=float("nan"), p_value=None, reason=no_sample[r["column"]])
    for n, h in zip(names, cur_hists):
        if n in unbinned:
            continue  # the current histogram is over other bins: nothing to plot against
        col = ref.columns[n]
        dists[n] = {"kind": "numeric", "edges": np.asarray(col.edges).tolist(),
                    "ref": np.asarray(col.hist).tolist(), "cur": h.astype(np.int64).tolist()}
    return rows


def _count_pairs(ref_counts: list[dict], cur_counts: list[dict]):
    """Aligned count vectors over the union of labels, per column."""
    labels, rv, cv = [], [], []
    for rc, cc in zip(ref_counts, cur_counts):
        lab = list(dict.fromkeys([*rc, *cc]))
        labels.append(lab)
        rv.append(np.array([rc.get(x, 0) for x in lab], dtype=np.float64))
        cv.append(np.array([cc.get(x, 0) for x in lab], dtype=np.float64))
    return labels, rv, cv


def _cat_counts(col) -> dict:
    d = {str(k): int(v) for k, v in col.counts.items()}
    if getattr(col, "other", 0):
        d["(other)"] = int(col.other)
    return d


def _categorical_rows(ref, cur, names, tests, dists) -> list[dict]:
    from ..kernels import drift as K

    run = _applicable(tests, CATEGORICAL_TESTS, ("chi2", "jensenshannon"))
    if not names or not run:
        return []
    labels, rv, cv = _count_pairs([_cat_counts(ref.columns[n]) for n in names],
                                  [_cat_counts(cur.columns[n]) for n in names])
    fn = {"chi2": K.chi2_columns, "gtest": K.gtest_columns, "linf": K.linf_columns,
          "jensenshannon": K.js_counts_columns, "psi": K.psi_counts_columns,
          "hellinger": K.hellinger_counts_columns}
    n_ref = [int(v.sum()) for v in rv]
    n_cur = [int(v.sum()) for v in cv]
    prim = _primary(names, n_ref, n_cur, run if tests is not None else None, "chi2", "jensenshannon")
    rows = []
    for t in run:
        rows += _stat_rows(names, "categorical", t, fn[t](rv, cv), [p == t for p in prim])
    for n, lab, a, b in zip(names, labels, rv, cv):
        top = np.argsort(-(a + b), kind="stable")[:30]
        dists[n] = {"kind": "categorical", "labels": [lab[i] for i in top],
                    "ref": a[top].astype(int).tolist(), "cur": b[top].astype(int).tolist()}
    return rows


def _text_rows(ref, cur, names, tests, dists) -> list[dict]:
    from ..kernels import drift as K

    run = _applicable(tests, TEXT_TESTS, ("jensenshannon", "jensenshannon_trigrams"))
    if not names or not run:
        return []
    labels, rv, cv = _count_pairs([{k: int(v) for k, v in ref.columns[n].scripts.items()} for n in names],
                                  [{k: int(v) for k, v in cur.columns[n].scripts.items()} for n in names])
    rows = []
    prim = [run[0]] * len(names)
    for t in run:
        if t == "jensenshannon":
            res = K.js_counts_columns(rv, cv)
        elif t == "hellinger":
            res = K.hellinger_counts_columns(rv, cv)
        else:
            rt = [np.asarray(ref.columns[n].trigrams, dtype=np.float64) for n in names]
            ct = [np.asarray(cur.columns[n].trigrams, dtype=np.float64) for n in names]
            res = K.js_counts_columns(rt, ct)
        rows += _stat_rows(names, "text", t, res, [p == t for p in prim])
    for n, lab, a, b in zip(names, labels, rv, cv):
        dists[n] = {"kind": "text", "labels": lab, "ref": a.astype(int).tolist(),
                    "cur": b.astype(int).tolist()}
    return rows


def _finish(rows, dists, findings, opts, ref, cur, order, why) -> DriftReport:
    import datetime

    from .. import __version__

    decide_rows(rows, opts["thresholds"], opts["alpha"], opts["correction"])
    pos = {n: i for i, n in enumerate(order)}
    rows.sort(key=lambda r: (pos.get(r["column"], len(pos)), not r["primary"]))
    meta = {"reference_rows": ref.n_rows, "current_rows": cur.n_rows, "engine_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    return report(rows, findings, dists, meta, why, **{k: opts[k] for k in (
        "alpha", "correction", "share", "missing", "new_columns")})
