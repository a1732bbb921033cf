"""The tests of each column kind: one row per (column, test) of a drift run.

:func:`numeric_rows`, :func:`categorical_rows` and :func:`text_rows` run the
kernels of :mod:`engine.kernels.drift` over all columns of a kind at once and
return undecided rows (``statistic``, ``p_value``, ``primary``, ``reason``; the
thresholds and decisions come later, from :mod:`engine.monitor.drift_report`),
plus the binned distributions that the report plots. :func:`numeric_rows_blocked`
runs :func:`numeric_rows` a block of columns at a time.

Why blocks: a raw side's numeric columns are tested with every value, sorted: a
float64 copy of the column. Made for all columns at once, those copies take several
times the (often float32) input. So when the current side is raw, each block of
numeric columns (about :data:`engine.config.DRIFT_BLOCK_BYTES` of float64 sorted
values, both sides) is read, sorted and tested, its rows and histograms kept, and
the block freed. Every number is that of the whole-table path: the tests are per
column, and a column's sorted values, edges and histogram do not depend on the other
columns of its block.

Also here: the packing of a profile's samples for the exact tests (kept for the
profile's next batch) and the rebinning of current histograms onto the reference's
bins, shared by both paths.
"""

from __future__ import annotations

import weakref

import numpy as np

from .. import config
from ..kernels import drift as K
from .drift_options import (
    CATEGORICAL_TESTS,
    EXACT_TESTS,
    HIST_TESTS,
    NUMERIC_TESTS,
    SMALL_SAMPLE,
    TEXT_TESTS,
    applicable,
)
from .drift_sides import as_profile, column_source
from .profile import NumericColumn, Profile, SortedNumericColumn
from .profile_numeric import hist_sorted

__all__ = ["categorical_rows", "numeric_rows", "numeric_rows_blocked", "text_rows",
           "untested_row"]


def untested_row(name, kind, reason) -> dict:
    """The row of a column that no test ran on, and why (``reason``); decided as untestable.

    Examples
    --------
    >>> untested_row("age", "numeric", "column is missing from the current data")["test"]
    'none'
    """
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


def _primary(names, n_ref, n_cur, tests, small_test, large_test) -> list[str]:
    """The deciding test per column: the user's first applicable test, else by sample size."""
    if tests is not None:
        return [tests[0]] * len(names)
    return [small_test if min(a, b) <= SMALL_SAMPLE else large_test for a, b in zip(n_ref, n_cur)]


def numeric_rows(ref, cur, names, tests, dists, counts, ref_pack=None) -> list[dict]:
    """Rows of the numeric columns ``names`` of profiles ``ref`` and ``cur``.

    Their binned distributions go to ``dists`` and their numbers of values
    (reference, current) to ``counts``. ``ref_pack``: the reference's packed
    samples and spread when the caller has them (a slice of the whole
    reference's, see :func:`numeric_rows_blocked`).
    """
    if not names:
        return []
    run = applicable(tests, NUMERIC_TESTS, ("ks", "wasserstein_normed", "psi"))
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
        out["jensenshannon"] = K.jensenshannon_counts_columns(rh, ch)
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


def numeric_rows_blocked(reference, current, ref, cur, names, tests, dists, counts, columns,
                         types, bins, tick=None) -> list[dict]:
    """Result rows of the numeric columns ``names``, one block of columns at a time.

    ``ref``/``cur`` come from :func:`~engine.monitor.drift_sides.side_profiles` (numeric
    columns deferred); a reference given as a Profile is used as it is (its packed
    samples are made, or found, once for all ``names`` and sliced per block), a raw
    one is read a block at a time like the current. ``dists`` and ``counts`` collect
    what :func:`numeric_rows` gives of each block; ``tick(n)``, if given, is called after each block of ``n``
    columns (a progress bar).
    """
    if not names or not applicable(tests, NUMERIC_TESTS, ("ks",)):
        return []
    ref_raw = not isinstance(reference, Profile)
    per_column = 8 * max(1, (ref.n_rows if ref_raw else 0) + cur.n_rows)
    per = max(1, int(config.DRIFT_BLOCK_BYTES) // per_column)
    full = None
    if not ref_raw and set(applicable(tests, NUMERIC_TESTS, EXACT_TESTS)) & set(EXACT_TESTS):
        full = _packed(ref, names, std=True)  # kept for the profile's next batch
    ref_src, cur_src = column_source(reference, columns), column_source(current, columns)
    rows = []
    for i in range(0, len(names), per):
        block = names[i:i + per]
        sub = {k: v for k, v in types.items() if k in set(block)} if types else None
        if ref_raw:
            rb = as_profile(ref_src, "reference", columns=block, types=sub, bins=bins)
        else:
            rb = ref
        cb = as_profile(cur_src, "current", edges_from=rb, columns=block, types=sub, bins=bins)
        pack = _slice(full, i, i + len(block)) if full is not None else None
        rows += numeric_rows(rb, cb, block, tests, dists, counts, ref_pack=pack)
        del rb, cb, pack
        if tick is not None:
            tick(len(block))
    return rows


def _slice(full, a: int, b: int):
    """Columns ``a:b`` of a packed ``(SortedColumns, std)`` (views, no copy)."""
    pack, sd = full
    o = pack.offsets
    sub = K.SortedColumns(pack.values[o[a]:o[b]], o[a:b + 1] - o[a], pack.nan_counts[a:b])
    return sub, (None if sd is None else sd[a:b])


def _no_sample_reason(col, side) -> str | None:
    """Why the exact tests cannot run on a profile column that keeps no sample, else None."""
    if isinstance(col, NumericColumn) and col.count > 0 and len(col.sample) == 0:
        return (f"{side} profile keeps no sample (sample_size={col.sample_size}): exact tests "
                "need one")
    return None


def _current_hists(ref, cur, names):
    """Current histograms over the reference's bins, and ``{column: reason}`` where impossible.

    A current profile built without ``edges_from=<reference>`` has bins of its own:
    it is rebinned from its sample when that holds every value (exact), else its
    histogram tests are not run.
    """
    hists, unbinned = [], {}
    for n in names:
        rc, cc = ref.columns[n], cur.columns[n]
        re_, ce = np.asarray(rc.edges, dtype=np.float64), np.asarray(cc.edges, dtype=np.float64)
        h = np.asarray(cc.hist, dtype=np.float64)
        if re_.shape != ce.shape or not np.array_equal(re_, ce, equal_nan=True):
            if not len(re_):
                h = np.zeros(len(np.asarray(rc.hist)))
            elif isinstance(cc, SortedNumericColumn) or (
                    isinstance(cc, NumericColumn) and cc.sample_is_complete):
                h = hist_sorted(np.asarray(cc.sample, dtype=np.float64), re_).astype(np.float64)
            else:
                h = np.zeros(len(re_) + 1)
                unbinned[n] = ("histogram edges differ from the reference's and the current "
                               "profile's sample is not complete, so it cannot be rebinned; "
                               "build the current profile with edges_from=<reference>")
        hists.append(h)
    return hists, unbinned


_PACKS_KEPT = 4  # packings of different column lists kept per profile
# What drift() derives from a profile and keeps for its next batch: profile -> {column
# names: [samples, nan counts, SortedColumns, std]}, checked against the profile's columns
# on every use; an entry goes with its profile.
_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _packed(p, names, std=False):
    """``(SortedColumns, std or None)`` of the samples of columns ``names`` of profile ``p``.

    A raw side's sorted pack is used as it is when it holds exactly these
    columns. A profile's samples are packed (and their spread computed) once
    and kept for it (``_KEPT``), so that every later batch compared with the same
    reference skips both; the kept pack is used only while the profile's
    columns still hold the very sample arrays it was made of.
    """
    cols = [p.columns[n] for n in names]
    if all(isinstance(c, SortedNumericColumn) for c in cols):
        pack = cols[0].pack
        if pack.n_columns == len(cols) and all(c.pack is pack and c.index == j
                                              for j, c in enumerate(cols)):
            return pack, None
    key = tuple(names)
    samples = [c.sample for c in cols]
    nans = [int(c.nans) for c in cols]
    kept = _KEPT.setdefault(p, {})
    hit = kept.get(key)
    if hit is not None and hit[1] == nans and all(a is b for a, b in zip(hit[0], samples)):
        if std and hit[3] is None:
            hit[3] = K.std_columns(hit[2])
        return hit[2], hit[3]
    vals = [np.asarray(v, dtype=np.float64) for v in samples]
    offs = np.zeros(len(vals) + 1, dtype=np.int64)
    offs[1:] = np.cumsum([len(v) for v in vals])
    values = np.concatenate(vals) if vals else np.zeros(0)
    pack = K.SortedColumns.from_packed(values, offs, np.array(nans, dtype=np.int64),
                                       assume_sorted=True)
    sd = K.std_columns(pack) if std else None
    while len(kept) >= _PACKS_KEPT:
        kept.pop(next(iter(kept)))
    kept[key] = [samples, nans, pack, sd]
    return pack, sd


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


def categorical_rows(ref, cur, names, tests, dists) -> list[dict]:
    run = applicable(tests, CATEGORICAL_TESTS, ("chi2", "jensenshannon"))
    if not names or not run:
        return []
    labels, rv, cv = _count_pairs([_cat_counts(ref.columns[n]) for n in names],
                                  [_cat_counts(cur.columns[n]) for n in names])
    fn = {"chi2": K.chi2_columns, "gtest": K.gtest_columns, "linf": K.linf_columns,
          "jensenshannon": K.jensenshannon_counts_columns, "psi": K.psi_counts_columns,
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


def text_rows(ref, cur, names, tests, dists) -> list[dict]:
    run = applicable(tests, TEXT_TESTS, ("jensenshannon", "jensenshannon_trigrams"))
    if not names or not run:
        return []
    labels, rv, cv = _count_pairs([{k: int(v) for k, v in ref.columns[n].scripts.items()} for n in names],
                                  [{k: int(v) for k, v in cur.columns[n].scripts.items()} for n in names])
    rows = []
    prim = [run[0]] * len(names)
    for t in run:
        if t == "jensenshannon":
            res = K.jensenshannon_counts_columns(rv, cv)
        elif t == "hellinger":
            res = K.hellinger_counts_columns(rv, cv)
        else:
            rt = [np.asarray(ref.columns[n].trigrams, dtype=np.float64) for n in names]
            ct = [np.asarray(cur.columns[n].trigrams, dtype=np.float64) for n in names]
            res = K.jensenshannon_counts_columns(rt, ct)
        rows += _stat_rows(names, "text", t, res, [p == t for p in prim])
    for n, lab, a, b in zip(names, labels, rv, cv):
        dists[n] = {"kind": "text", "labels": lab, "ref": a.astype(int).tolist(),
                    "cur": b.astype(int).tolist()}
    return rows
