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

Default thresholds follow common practice (Evidently's where it has one): p-value
tests drift when the adjusted p-value is below ``alpha`` = 0.05; normed Wasserstein,
PSI, Jensen-Shannon, Hellinger at 0.1; L-infinity at 0.2. P-values are corrected
across columns, per test, with Benjamini-Hochberg (``correction="bh"``, default) or
Bonferroni (``"bonferroni"``) or not at all (``None``). The dataset drifts when the
share of drifted columns (by each column's first test) reaches ``share`` (0.5).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from .drift_blocks import _current_hists, _no_sample_reason, _packed
from .drift_report import TABLE_SCHEMA, DriftReport

P_TESTS = {"ks", "cvm", "chi2", "gtest", "mmd"}
DEFAULT_THRESHOLDS = {
    "wasserstein_normed": 0.1, "psi": 0.1, "jensenshannon": 0.1, "jensenshannon_trigrams": 0.1,
    "hellinger": 0.1, "linf": 0.2, "wasserstein": float("nan"),
}
NUMERIC_TESTS = ("ks", "wasserstein", "wasserstein_normed", "cvm", "psi", "jensenshannon", "hellinger")
CATEGORICAL_TESTS = ("chi2", "gtest", "linf", "jensenshannon", "psi", "hellinger")
TEXT_TESTS = ("jensenshannon", "jensenshannon_trigrams", "hellinger")
KNOWN_TESTS = frozenset(NUMERIC_TESTS) | frozenset(CATEGORICAL_TESTS) | frozenset(TEXT_TESTS) \
    | {"mmd"}
SMALL_SAMPLE = 1000
NO_THRESHOLD = {"wasserstein": "raw Wasserstein has no scale-free default threshold; pass "
                               "thresholds={'wasserstein': x} or use wasserstein_normed"}
HIST_TESTS = ("psi", "jensenshannon", "hellinger")
EXACT_TESTS = ("ks", "wasserstein", "wasserstein_normed", "cvm")


def adjust_pvalues(p: np.ndarray, method: str | None) -> np.ndarray:
    """Benjamini-Hochberg or Bonferroni adjusted p-values; NaN entries stay NaN.

    Matches ``scipy.stats.false_discovery_control(p, method="bh")`` for BH.
    """
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
    elif method == "bh":
        order = np.argsort(q)
        ranked = q[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        adj = np.empty(m)
        adj[order] = np.minimum(ranked, 1.0)
        out[ok] = adj
    else:
        raise ValueError(f"correction must be 'bh', 'bonferroni' or None, got {method!r}")
    return out


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


def _check_tests(tests):
    if tests is None:
        return None
    if isinstance(tests, str):
        tests = [tests]
    for t in tests:
        if t not in KNOWN_TESTS:
            raise ValueError(f"unknown test {t!r}; known tests: {sorted(KNOWN_TESTS)}")
    return list(tests)


def _check_thresholds(thresholds, column_names) -> None:
    """Reject keys of ``thresholds=`` that would be ignored: unknown tests, non-dict columns."""
    if thresholds is None:
        return
    if not isinstance(thresholds, dict):
        raise TypeError(f"thresholds must be a dict, got {type(thresholds).__name__}")

    def number(key, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"thresholds[{key}] must be a number, got {v!r}")

    for key, val in thresholds.items():
        if isinstance(val, dict):
            for t, v in val.items():
                if t not in KNOWN_TESTS:
                    raise ValueError(f"thresholds[{key!r}]: unknown test {t!r}; known tests: "
                                     f"{sorted(KNOWN_TESTS)}")
                number(f"{key!r}][{t!r}", v)
        elif key in KNOWN_TESTS:
            number(repr(key), val)
        elif key in column_names:
            raise ValueError(f"thresholds[{key!r}]: a column's thresholds must be a dict of "
                             f"test -> threshold, e.g. {{{key!r}: {{'psi': 0.2}}}}, got {val!r}")
        else:
            raise ValueError(f"thresholds key {key!r} is neither a known test nor a column "
                             f"with a dict of thresholds; known tests: {sorted(KNOWN_TESTS)}")


def drift(reference, current, *, tests=None, columns=None, types=None, thresholds=None,
          alpha: float = 0.05, correction: str | None = "bh", share: float = 0.5,
          bins: int = 10, mmd_permutations: int = 200, mmd_max_rows: int = 1000,
          seed: int = 0) -> DriftReport:
    """Test every column of ``current`` against ``reference``.

    Parameters
    ----------
    reference, current
        Raw data (Table, DataFrame, 2-D array, mapping of columns) or Profiles.
    tests : list of str, optional
        Test names instead of the per-kind defaults (see the module docstring). A test
        that does not apply to a column's kind is skipped for that column.
    columns : list of str, optional
        Columns to test (default: every column of the reference).
    types : dict, optional
        Column kinds overriding inference: ``{"col": "numeric"|"categorical"|"text"}``.
    thresholds : dict, optional
        ``{"psi": 0.2}`` for every column, or ``{"col": {"psi": 0.2}}`` per column; for
        p-value tests the threshold is the significance level.
    alpha : float
        Significance level of the p-value tests (after correction).
    correction : {"bh", "bonferroni", None}
        Multiple-testing correction across columns, per test.
    share : float
        The dataset drifts when at least this share of tested columns drifted.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = {"a": rng.normal(size=500), "b": rng.normal(size=500)}
    >>> cur = {"a": rng.normal(size=500) + 1.0, "b": rng.normal(size=500)}
    >>> rep = drift(ref, cur)
    >>> rep.drifted_columns, rep.drift
    (['a'], True)
    """
    tests = _check_tests(tests)
    for nm, v, lo, hi in (("alpha", alpha, 0, 1), ("share", share, 0, 1)):
        if not isinstance(v, (int, float)) or not lo < v <= hi:
            raise ValueError(f"{nm} must be in ({lo}, {hi}], got {v!r}")
    if correction not in ("bh", "bonferroni", None):
        raise ValueError(f"correction must be 'bh', 'bonferroni' or None, got {correction!r}")
    from . import drift_blocks

    # raw current data: numeric columns deferred, then sorted and tested in blocks of columns
    ref, cur, blocked = drift_blocks.profiles(reference, current, columns, types, bins)
    names = list(columns) if columns is not None else list(ref.columns)
    _check_thresholds(thresholds, set(ref.columns) | set(cur.columns))
    rows: list[dict] = []
    dists: dict = {}
    numeric, categorical, text = [], [], []
    for name in names:
        if name not in ref.columns:
            raise ValueError(f"column {name!r} is not in the reference")
        rc = ref.columns[name]
        cc = cur.columns.get(name)
        if cc is None:
            rows.append(_untested(name, rc.kind, "column is missing from the current data"))
        elif cc.kind != rc.kind:
            rows.append(_untested(name, rc.kind, f"type differs: {rc.kind} in the reference, "
                                  f"{cc.kind} in the current data"))
        elif rc.kind == "numeric":
            numeric.append(name)
        elif rc.kind == "categorical":
            categorical.append(name)
        elif rc.kind == "text":
            text.append(name)
        else:
            rows.append(_untested(name, rc.kind, getattr(rc, "reason", None) or f"kind {rc.kind!r}"))
    extra = sorted(set(cur.columns) - set(ref.columns)) if columns is None else []
    for name in extra:
        rows.append(_untested(name, cur.columns[name].kind, "column is not in the reference"))
    if blocked:
        rows += drift_blocks.numeric_rows(reference, current, ref, cur, numeric, tests, dists,
                                          columns, types, bins)
    else:
        rows += _numeric_rows(ref, cur, numeric, tests, dists)
    rows += _categorical_rows(ref, cur, categorical, tests, dists)
    rows += _text_rows(ref, cur, text, tests, dists)
    if tests is not None and "mmd" in tests and numeric:
        rows += _mmd_rows(reference, current, numeric, columns, mmd_permutations, mmd_max_rows,
                          seed)
    return _finish(rows, dists, thresholds, alpha, correction, share, ref, cur, names + extra)


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


def _numeric_rows(ref, cur, names, tests, dists, ref_pack=None) -> list[dict]:
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


def _mmd_rows(ref_raw, cur_raw, names, columns, permutations, max_rows, seed) -> list[dict]:
    from .mmd import mmd_permutation_test

    x, y = _numeric_matrix(ref_raw, names, columns), _numeric_matrix(cur_raw, names, columns)
    if x is None or y is None:
        return [_untested("(all numeric)", "multivariate",
                          "MMD needs rows: pass raw data, not profiles") | {"test": "mmd",
                                                                           "primary": False}]
    stat, p, n_x, n_y = mmd_permutation_test(x, y, permutations=permutations, max_rows=max_rows,
                                             seed=seed)
    return [{"column": "(all numeric)", "type": "multivariate", "test": "mmd", "statistic": stat,
             "p_value": p, "threshold": None, "primary": False, "n_ref": n_x, "n_cur": n_y,
             "reason": None}]


def _numeric_matrix(data, names, columns=None):
    """Rows of the numeric columns ``names`` of raw ``data`` (rows with NaN dropped); None for
    a Profile. A 2-D array's columns are named as :func:`profile` names them (``columns=``
    or ``"0"``, ``"1"``, ...)."""
    from .profile import Profile

    if isinstance(data, Profile):
        return None
    if isinstance(data, np.ndarray) and data.ndim == 2:
        labels = list(columns) if columns is not None else [str(i) for i in range(data.shape[1])]
        cols = {n: data[:, i] for i, n in enumerate(labels)}
    elif isinstance(data, dict):
        cols = data
    else:
        t = data if isinstance(data, (pa.Table, pa.RecordBatch)) else pa.Table.from_pandas(data)
        cols = {n: t.column(n).to_numpy(zero_copy_only=False) for n in names}
    m = np.column_stack([np.asarray(cols[n], dtype=np.float64) for n in names])
    return m[np.isfinite(m).all(axis=1)]


def _threshold(thresholds, column, test, alpha) -> float:
    if thresholds:
        per = thresholds.get(column)
        if isinstance(per, dict) and test in per:
            return float(per[test])
        if test in thresholds and not isinstance(thresholds[test], dict):
            return float(thresholds[test])
    return alpha if test in P_TESTS else DEFAULT_THRESHOLDS.get(test, float("nan"))


def _finish(rows, dists, thresholds, alpha, correction, share, ref, cur, order) -> DriftReport:
    import datetime

    from .. import __version__

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
            pa_ = r["p_adjusted"]
            r["drifted"] = None if pa_ is None or not math.isfinite(pa_) else bool(pa_ < thr)
        else:
            r["drifted"] = None if not math.isfinite(stat) else bool(stat > thr)
    pos = {n: i for i, n in enumerate(order)}
    rows.sort(key=lambda r: (pos.get(r["column"], len(pos)), not r["primary"]))
    table = pa.Table.from_pylist(rows, schema=TABLE_SCHEMA)
    prim = [r for r in rows if r["primary"]]
    tested = [r for r in prim if r["drifted"] is not None]
    drifted = sum(1 for r in tested if r["drifted"])
    frac = drifted / len(tested) if tested else 0.0
    verdict = {"drift": bool(tested) and frac >= share, "drifted_columns": drifted,
               "tested_columns": len(tested), "untested_columns": len(prim) - len(tested),
               "share": frac, "share_threshold": share, "correction": correction, "alpha": alpha}
    meta = {"reference_rows": ref.n_rows, "current_rows": cur.n_rows, "engine_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    return DriftReport(table, verdict, dists, meta)
