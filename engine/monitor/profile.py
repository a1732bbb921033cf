"""Reference profiles of tabular data: one vectorized pass, exact merges, a versioned format.

:func:`profile` summarizes every column of a table in a :class:`Profile`. The
parts that add up (counts, moments, histograms, value counts, script and
trigram counts) merge exactly, so profiles of batches, or of the shards of an
MPI job, combine into the profile of all the data; the bounded sample merges
into a sample that is still uniform.

Columns and their kinds
-----------------------
``numeric`` (:class:`NumericColumn`)
    Integers, floats and decimals. ``count`` is the number of values that are
    neither null nor NaN (finite values plus infinities); ``nulls``, ``nans``,
    ``posinf``, ``neginf`` count the rest. ``min``, ``max``, ``mean`` and
    ``m2`` (sum of squared deviations) are over the finite values only, so
    they stay finite. ``edges`` are the ``bins + 1`` quantiles (NumPy's
    ``linear`` method) of the finite values, ``hist`` the counts of the
    ``bins + 2`` bins of :func:`engine.kernels.drift.histogram_columns`:
    below ``edges[0]``, ``[e_{b-1}, e_b)`` (the last one closed) and above
    ``edges[-1]``. ``sample`` is a uniform sample of at most ``sample_size``
    of the counted values, sorted ascending (all of them when ``count <=
    sample_size``, which keeps drift tests of small references exact).
``categorical`` (:class:`CategoricalColumn`)
    Booleans (as ``"true"``/``"false"``), dictionary (pandas ``category``)
    columns of non-strings, all-null columns, and short or low-cardinality
    strings. Values are counted as strings (Arrow's cast: ``1``, ``1.5``).
``text`` (:class:`TextColumn`)
    Longer, high-cardinality strings: length statistics, characters per
    Unicode script and hashed character-trigram counts (see
    :mod:`engine.monitor.text`).
``invalid`` (:class:`InvalidColumn`)
    A column that cannot be profiled as asked (a string column declared
    numeric that holds ``"abc"``; a timestamp, binary or nested column) gets a
    ``reason`` instead of an exception, so that a report can show "not
    tested" for it and still cover the others.

Type inference for strings: categorical when the number of distinct values is
at most ``max(50, 1% of the non-null values)``; otherwise text when the mean
length is at least 20 characters or more than half of the values contain
whitespace; otherwise (IDs, codes, names) categorical. ``types=`` overrides
the inference per column. A profile built with ``edges_from=`` takes the kind
of the reference's column where the column's type allows it (a string column
follows the reference's choice between categorical and text; an all-null
column takes any kind), so that a batch is comparable to its reference; a
string column whose reference is numeric (or the reverse) keeps its own kind,
and the kind mismatch shows the change of type.

Merge rules
-----------
``a.merge(b)`` needs the same columns with the same kinds (order from ``a``).

* numeric: counts add, min/max combine, mean and ``m2`` combine with Chan et
  al.'s pairwise formula (Chan, Golub & LeVeque 1979); histograms add and
  need identical ``edges`` (profile batches with ``edges_from=reference``);
  samples merge by random key: every counted value gets an independent
  uniform 64-bit key and a sample keeps the ``sample_size`` values with the
  smallest keys, so the union of two samples cut to the smallest keys is a
  uniform sample of the union (a bottom-k sketch).
* categorical: a column keeps exact counts of all its values while it has at
  most ``10 * top_k`` distinct values; past that it keeps the ``top_k`` most
  frequent (ties by value) and adds the rest to ``other``
  (``truncated=True``). Merging adds counts and applies the same rule, so the
  merge of two untruncated profiles equals the profile of the concatenated
  data. Once truncated, counts of kept values are lower bounds and
  ``n_distinct`` is a lower bound.
* text: counts add, length moments as for numeric columns.

Keys for the sample come from a generator seeded by ``seed``, the column
name and a fingerprint of the column's values (and the MPI rank), so that
separately profiled batches draw independent keys while a profile stays
reproducible. Merging a profile with itself reuses the same keys (the sample
then holds pairs of equal values); give each batch its own data, or seed.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(1000, 2))
>>> p = profile(x[:600], columns=["a", "b"]).merge(
...     profile(x[600:], columns=["a", "b"], edges_from=profile(x[:600], columns=["a", "b"])))
>>> p.n_rows, p["a"].count, bool(abs(p["a"].mean - x[:, 0].mean()) < 1e-12)
(1000, 1000, True)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engine.progress import Progress

from .profile_base import (  # noqa: F401  (public names of this module before the split)
    BLOCK_BYTES,
    CATEGORY_CAP_FACTOR,
    FORMAT,
    INFER_DISTINCT_RATIO,
    INFER_MIN_DISTINCT,
    INFER_TEXT_MIN_LENGTH,
    KINDS,
    MPI_MESSAGE_BYTES,
    InvalidColumn,
)
from .profile_categorical import CategoricalColumn, categorical_from_counts, value_counts
from .profile_format import ColumnProfile, Profile
from .profile_inputs import check_int, check_types, columns_of, decide_kinds
from .profile_mpi import (
    agree_invalid,
    allreduce_profile,
    check_comm,
    collective_check,
    fill_histograms,
)
from .profile_numeric import (
    DeferredNumericColumn,
    NumericColumn,
    SortedNumericColumn,
    deferred_numeric_columns,
    numeric_columns,
    quantile_edges,
    sorted_numeric_columns,
)
from .profile_text import TextColumn, text_column


def profile(data, *, columns=None, types=None, sample_size: int | None = 100_000, bins: int = 10,
            top_k: int = 100, trigram_buckets: int = 4096, edges_from: Profile | None = None,
            seed: int = 0, comm=None, progress: bool | None = None) -> Profile:
    """Profile every column of ``data`` in one vectorized pass.

    Parameters
    ----------
    data : pyarrow.Table, pyarrow.RecordBatch, pandas.DataFrame, 2-D ndarray or mapping
        A mapping is column name -> 1-D array, list, pandas Series or Arrow
        array. A 2-D array's columns are named ``"0"``, ``"1"``, ... unless
        ``columns`` names them.
    columns : list of str, optional
        Names of a 2-D array's columns; for other inputs, the columns to
        profile (in this order).
    types : dict of str to {"numeric", "categorical", "text"}, optional
        Kinds that override the inference (see the module docstring).
    sample_size : int or None
        Bound of each numeric column's uniform sample (0: no sample; None: no
        bound, every value is kept).
    bins : int
        Quantile bins of numeric histograms (plus the two outer bins).
    top_k : int
        Categories kept by a truncated categorical column.
    trigram_buckets : int
        Hash buckets of text columns' trigram counts.
    edges_from : Profile, optional
        A reference profile: its histogram edges and trigram buckets are
        used, and its columns' kinds where the column's type allows (see the
        module docstring), so that this profile can be compared with (and
        merged into) it.
    seed : int
        Seeds the sample keys (mixed with the column name, a fingerprint of
        its values and the MPI rank).
    comm : mpi4py communicator, optional
        Each rank passes its shard of the rows; every rank returns the
        profile of all of them. Additive parts are reduced over ranks (a
        binomial tree of merges, then a broadcast); numeric edges that no
        ``edges_from`` fixes are the quantiles of the merged sample (exact
        when all ranks together hold at most ``sample_size`` values per
        column), after which histograms are counted locally and summed.
    progress : bool or None
        A progress bar over the columns on stderr: ``None`` draws it only when stderr
        is a terminal (and, under MPI, on rank 0 only), ``False`` never.

    Returns
    -------
    Profile

    Examples
    --------
    >>> p = profile({"x": [1.0, 2.0, float("nan"), None], "c": ["a", "b", "a", None]})
    >>> p["x"].count, p["x"].nans, p["x"].nulls, p["c"].counts
    (2, 1, 1, {'a': 2, 'b': 1})
    """
    return _build(data, columns, types, sample_size, bins, top_k, trigram_buckets, edges_from,
                  seed, comm, lean=False, progress=progress)


def sorted_profile(data, *, columns=None, types=None, bins: int = 10,
                   edges_from: Profile | None = None, defer_numeric: bool = False) -> Profile:
    """What :func:`engine.monitor.drift` needs of raw data: :func:`profile`, lean for numbers.

    Numeric columns become :class:`SortedNumericColumn` (every value, sorted
    in one parallel pass over all columns; counts; the histogram over
    ``edges_from``'s edges or the data's quantiles) instead of
    :class:`NumericColumn`: no moments, sample keys or copies per column.
    Other kinds are profiled as :func:`profile` does. Not mergeable or
    serializable; for the drift tests only. With ``defer_numeric=True`` the numeric
    columns are not read at all: each is a :class:`DeferredNumericColumn` (numeric
    columns whose values do not cast to numbers are still found and made invalid).
    """
    return _build(data, columns, types, None, bins, 100, 4096, edges_from, 0, None,
                  lean="defer" if defer_numeric else True)


def _build(data, columns, types, sample_size, bins, top_k, trigram_buckets, edges_from, seed,
           comm, lean, progress=False) -> Profile:
    if sample_size is not None:
        sample_size = check_int(sample_size, "sample_size", 0)
    bins = check_int(bins, "bins", 1)
    top_k = check_int(top_k, "top_k", 1)
    trigram_buckets = check_int(trigram_buckets, "trigram_buckets", 1)
    seed = check_int(seed, "seed", 0)
    if edges_from is not None and not isinstance(edges_from, Profile):
        raise TypeError(f"edges_from must be a Profile, got {type(edges_from).__name__}")
    rank = 0
    if comm is not None:
        check_comm(comm)
        rank = comm.Get_rank()
    err = None
    try:
        cols, n_rows = columns_of(data, columns)
        types = check_types(types, cols)
    except (TypeError, ValueError) as exc:
        if comm is None:
            raise
        err, cols, n_rows = exc, [], 0
    if comm is not None:
        collective_check(comm, err, [c.name for c in cols])
    with Progress(len(cols), "profile", enabled=False if rank else progress,
                  unit="columns") as bar:
        prof = _profile_columns(cols, n_rows, types, sample_size, bins, top_k, trigram_buckets,
                                edges_from, seed, comm, rank, lean, bar)
    if comm is not None:
        prof = allreduce_profile(prof, comm)
        fill_histograms(prof, [c for c in cols if prof.columns[c.name].kind == "numeric"],
                        bins, comm)
    return prof


def _profile_columns(cols, n_rows, types, sample_size, bins, top_k, trigram_buckets, edges_from,
                     seed, comm, rank, lean, bar) -> Profile:
    """The profile of this process's rows (before any MPI reduction)."""
    kinds, stats = decide_kinds(cols, types, edges_from, comm)

    ref = edges_from.columns if edges_from is not None else {}
    edges, buckets = {}, {}
    for c in cols:
        r = ref.get(c.name)
        if kinds[c.name] == "numeric":
            edges[c.name] = r.edges if isinstance(r, (NumericColumn, SortedNumericColumn)) \
                and len(r.edges) else (np.zeros(0) if comm is not None else None)
        buckets[c.name] = len(r.trigrams) if isinstance(r, TextColumn) else trigram_buckets

    numeric = [c for c in cols if kinds[c.name] == "numeric"]
    if lean == "defer":
        out = deferred_numeric_columns(numeric)
    elif lean:
        out = sorted_numeric_columns(numeric, edges, bins)
    else:
        out = numeric_columns(numeric, n_rows, edges, bins, sample_size, seed, rank, bar)
    for c in cols:
        kind = kinds[c.name]
        try:
            if kind == "categorical":
                vc = stats[c.name]["vc"] if c.name in stats else value_counts(c.arrow_array())
                out[c.name] = categorical_from_counts(c.name, c.dtype, vc, c.nulls, top_k)
            elif kind == "text":
                out[c.name] = text_column(c.name, c.dtype, c.arrow_array(), buckets[c.name])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            out[c.name] = InvalidColumn(c.name, c.dtype, c.n - c.nulls, c.nulls,
                                        f"declared {kind} but its {c.dtype} values cannot be "
                                        f"read as strings ({exc})")
        if kind == "invalid":
            out[c.name] = InvalidColumn(c.name, c.dtype, c.n - c.nulls, c.nulls,
                                        f"columns of type {c.dtype} are not profiled; cast the "
                                        "column or name its kind in types=")
        if kind != "numeric":
            bar.advance(1)
    params = {"sample_size": sample_size, "bins": bins, "top_k": top_k,
              "trigram_buckets": trigram_buckets, "seed": seed}
    if comm is not None:
        agree_invalid(out, cols, comm)
    return Profile(n_rows, {c.name: out[c.name] for c in cols}, params)


__all__ = [
    "CATEGORY_CAP_FACTOR",
    "CategoricalColumn",
    "ColumnProfile",
    "DeferredNumericColumn",
    "InvalidColumn",
    "NumericColumn",
    "Profile",
    "SortedNumericColumn",
    "TextColumn",
    "profile",
    "quantile_edges",
]
