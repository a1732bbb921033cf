"""The numeric columns of :func:`engine.monitor.drift` a block of columns at a time.

A raw side's numeric columns are tested with every value, sorted: a float64 copy
of the column. Made for all columns at once, those copies take several times the
(often float32) input. When the current side is raw, :func:`drift` instead takes
the kinds of all columns from profiles whose numeric columns are deferred (not
read), then for each block of numeric columns (about
:data:`engine.config.DRIFT_BLOCK_BYTES` of float64 sorted values, both sides)
builds the sorted profiles of those columns only, runs the tests, keeps the
result rows and the histograms, and frees the block. Every number is that of the
whole-table path: the tests are per column, and a column's sorted values, edges
and histogram do not depend on the other columns of its block.

Also here: the packing of a profile's samples for the exact tests (kept on the
profile) and the rebinning of current histograms, shared by both paths.
"""

from __future__ import annotations

import numpy as np

from .. import config


def profiles(reference, current, columns, types, bins):
    """``(ref, cur, blocked)``: the profiles :func:`drift` compares. ``blocked``: the raw
    sides' numeric columns are :class:`DeferredNumericColumn` (see :func:`numeric_rows`)."""
    from .drift import _as_profile
    from .profile import Profile

    cur_columns = _present(current, columns)
    if config.DRIFT_BLOCK_BYTES is None or isinstance(current, Profile):
        ref = _as_profile(reference, "reference", columns=columns, types=types, bins=bins)
        cur = _as_profile(current, "current", edges_from=ref, columns=cur_columns, types=types,
                          bins=bins)
        return ref, cur, False
    ref = _as_profile(reference, "reference", columns=columns, types=types, bins=bins,
                      defer=True)
    cur = _as_profile(current, "current", edges_from=ref, columns=cur_columns, types=types,
                      bins=bins, defer=True)
    return ref, cur, True


def _present(data, columns):
    """The names of ``columns`` that raw ``data`` has (all of them for a 2-D array, whose
    columns ``columns=`` names): a selected column missing from the current data is a
    finding of :func:`drift`, not an error."""
    import pyarrow as pa

    if columns is None or isinstance(data, np.ndarray) or isinstance(columns, str):
        return columns
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        have = set(data.column_names)
    elif hasattr(data, "columns") and hasattr(data, "iloc"):  # a pandas DataFrame
        have = {str(c) for c in data.columns}
    elif hasattr(data, "keys"):
        have = set(data.keys())
    else:
        return columns  # not raw data of a known shape: profiling says what is wrong
    return [c for c in columns if c in have]


def _source(data, columns):
    """Raw data that ``columns=<some names>`` selects from: a 2-D array as a mapping of
    its columns (views: ``columns=`` names a 2-D array's columns, it does not select)."""
    if isinstance(data, np.ndarray) and data.ndim == 2:
        names = list(columns) if columns is not None else [str(j) for j in range(data.shape[1])]
        return {n: data[:, j] for j, n in enumerate(names)}
    return data


def numeric_rows(reference, current, ref, cur, names, tests, dists, counts, columns, types,
                 bins, tick=None) -> list[dict]:
    """Result rows of the numeric columns ``names``, one block of columns at a time.

    ``ref``/``cur`` come from :func:`profiles`; a reference given as a Profile is
    used as it is (its packed samples are made, or found, once for all ``names``
    and sliced per block), a raw one is read a block at a time like the current.
    ``dists`` and ``counts`` collect what :func:`~engine.monitor.drift._numeric_rows`
    gives of each block; ``tick(n)``, if given, is called after each block of ``n``
    columns (a progress bar).
    """
    from .drift import EXACT_TESTS, NUMERIC_TESTS, _applicable, _as_profile, _numeric_rows
    from .profile import Profile

    if not names or not _applicable(tests, NUMERIC_TESTS, ("ks",)):
        return []
    ref_raw = not isinstance(reference, Profile)
    per_column = 8 * max(1, (ref.n_rows if ref_raw else 0) + cur.n_rows)
    per = max(1, int(config.DRIFT_BLOCK_BYTES) // per_column)
    full = None
    if not ref_raw and set(_applicable(tests, NUMERIC_TESTS, EXACT_TESTS)) & set(EXACT_TESTS):
        full = _packed(ref, names, std=True)  # kept on the profile for the next batch
    ref_src, cur_src = _source(reference, columns), _source(current, columns)
    rows = []
    for i in range(0, len(names), per):
        block = names[i:i + per]
        sub = {k: v for k, v in types.items() if k in set(block)} if types else None
        if ref_raw:
            rb = _as_profile(ref_src, "reference", columns=block, types=sub, bins=bins)
        else:
            rb = ref
        cb = _as_profile(cur_src, "current", edges_from=rb, columns=block, types=sub, bins=bins)
        pack = _slice(full, i, i + len(block)) if full is not None else None
        rows += _numeric_rows(rb, cb, block, tests, dists, counts, ref_pack=pack)
        del rb, cb, pack
        if tick is not None:
            tick(len(block))
    return rows


def _slice(full, a: int, b: int):
    """Columns ``a:b`` of a packed ``(SortedColumns, std)`` (views, no copy)."""
    from ..kernels import drift as K

    pack, sd = full
    o = pack.offsets
    sub = K.SortedColumns(pack.values[o[a]:o[b]], o[a:b + 1] - o[a], pack.nan_counts[a:b])
    return sub, (None if sd is None else sd[a:b])


def _no_sample_reason(col, side) -> str | None:
    """Why the exact tests cannot run on a profile column that keeps no sample, else None."""
    from .profile import NumericColumn

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
    from .profile import NumericColumn, SortedNumericColumn
    from .profile_numeric import _hist_sorted

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
                h = _hist_sorted(np.asarray(cc.sample, dtype=np.float64), re_).astype(np.float64)
            else:
                h = np.zeros(len(re_) + 1)
                unbinned[n] = ("histogram edges differ from the reference's and the current "
                               "profile's sample is not complete, so it cannot be rebinned; "
                               "build the current profile with edges_from=<reference>")
        hists.append(h)
    return hists, unbinned


_PACKS_KEPT = 4  # packings of different column lists kept per profile


def _packed(p, names, std=False):
    """``(SortedColumns, std or None)`` of the samples of columns ``names`` of profile ``p``.

    A raw side's sorted pack is used as it is when it holds exactly these
    columns. A profile's samples are packed (and their spread computed) once
    and kept on it, so that every later batch compared with the same
    reference skips both; the kept pack is used only while the profile's
    columns still hold the very sample arrays it was made of.
    """
    from ..kernels import drift as K
    from .profile import SortedNumericColumn

    cols = [p.columns[n] for n in names]
    if all(isinstance(c, SortedNumericColumn) for c in cols):
        pack = cols[0].pack
        if pack.n_columns == len(cols) and all(c.pack is pack and c.index == j
                                              for j, c in enumerate(cols)):
            return pack, None
    key = tuple(names)
    samples = [c.sample for c in cols]
    nans = [int(c.nans) for c in cols]
    kept = p._derived.setdefault("packs", {})
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
