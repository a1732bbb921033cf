"""Profiles of tabular data (engine.monitor.profile): exact merges, uniform samples, format v1.

``tests/golden/profile_v1.arrow`` was written by ``python tests/test_profile.py``
(format_version 1). A change that breaks ``test_golden_v1`` changes the
format: it needs a new format_version and a reader for the old one, not a new
fixture.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys

import numpy as np
import pyarrow as pa
import pytest

from engine.kernels import usable_backends
from engine.kernels.drift import histogram_columns
from engine.monitor import text as T
from engine.monitor.profile import (
    CategoricalColumn,
    InvalidColumn,
    NumericColumn,
    Profile,
    TextColumn,
    profile,
    quantile_edges,
)

# the numeric column kind's module: its histograms and sampler are tested directly
PN = importlib.import_module("engine.monitor.profile_numeric")
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "profile_v1.arrow")
HIST_BACKENDS = usable_backends("histogram")


def rel_close(a, b, rtol=1e-12):
    if (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rtol * max(abs(a), abs(b), 1e-300)


def assert_mergeable_equal(a: Profile, b: Profile, *, sample: bool = True):
    """Everything that merges exactly is equal (moments to 1e-12 relative); samples too if asked."""
    assert a.n_rows == b.n_rows
    assert list(a.columns) == list(b.columns)
    for name, x in a.columns.items():
        y = b[name]
        assert x.kind == y.kind, name
        assert (x.count, x.nulls) == (y.count, y.nulls), name
        if isinstance(x, NumericColumn):
            assert (x.nans, x.posinf, x.neginf) == (y.nans, y.posinf, y.neginf), name
            assert rel_close(x.min, y.min, 0) and rel_close(x.max, y.max, 0), name
            assert rel_close(x.mean, y.mean) and rel_close(x.m2, y.m2), (name, x.m2, y.m2)
            np.testing.assert_array_equal(x.edges, y.edges)
            np.testing.assert_array_equal(x.hist, y.hist)
            assert x.hist.sum() == (x.count if np.isfinite(x.edges[0]) else 0)
            if sample:
                np.testing.assert_array_equal(x.sample, y.sample)
        elif isinstance(x, CategoricalColumn):
            assert x.counts == y.counts and list(x.counts) == list(y.counts), name
            assert (x.other, x.n_distinct, x.truncated) == (y.other, y.n_distinct, y.truncated)
        elif isinstance(x, TextColumn):
            assert (x.empty, x.len_min, x.len_max) == (y.empty, y.len_min, y.len_max), name
            assert rel_close(x.len_mean, y.len_mean) and rel_close(x.len_m2, y.len_m2), name
            assert x.scripts == y.scripts and x.script_values == y.script_values, name
            np.testing.assert_array_equal(x.trigrams, y.trigrams)
        else:
            assert x.reason == y.reason


def assert_identical(a: Profile, b: Profile):
    assert_mergeable_equal(a, b)
    for name, x in a.columns.items():
        if isinstance(x, NumericColumn):
            np.testing.assert_array_equal(x.sample_keys, b[name].sample_keys)
            assert x.sample_size == b[name].sample_size
    assert a.params == b.params


def mixed_table(n=2000, seed=0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[rng.random(n) < 0.05] = np.nan
    x[rng.random(n) < 0.02] = np.inf
    x[rng.random(n) < 0.02] = -np.inf
    xnull = rng.random(n) < 0.03
    k = rng.integers(-5, 50, size=n)
    colors = np.array(["red", "green", "blue", "żółty", "紅"])[rng.integers(0, 5, size=n)]
    cnull = rng.random(n) < 0.1
    words = ["hola", "mundo", "привет", "мир", "你好", "世界", "señor", "καλημέρα", ""]
    txt = [" ".join(rng.choice(words, size=rng.integers(0, 6))) for _ in range(n)]
    tnull = rng.random(n) < 0.05
    return pa.table({
        "x": pa.array(x, mask=xnull),
        "k": pa.array(k),
        "color": pa.array(colors, mask=cnull),
        "txt": pa.array(txt, mask=tnull),
        "flag": pa.array(rng.random(n) < 0.3),
    })


MIXED_TYPES = {"txt": "text"}


# ---------------------------------------------------------------------------
# Numeric columns: agreement with the drift kernels and NumPy
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", HIST_BACKENDS)
@pytest.mark.parametrize("bins", [1, 4, 10])
def test_hist_matches_drift_kernels(backend, bins):
    rng = np.random.default_rng(bins)
    x = rng.normal(size=(3000, 4))
    x[::7, 0] = np.nan
    x[::11, 1], x[::13, 1] = np.inf, -np.inf
    x[:, 2] = np.round(x[:, 2])  # heavy ties, tied edges
    x[:, 3] = 1.5  # constant
    y = rng.normal(size=(1500, 4)) * 1.3 + 0.2
    y[::5, 3] = 1.5
    y[::17, 0] = np.inf
    ref = profile(x, bins=bins)
    cur = profile(y, edges_from=ref)
    h = histogram_columns(x, y, bins, backend=backend)
    for j in range(4):
        np.testing.assert_array_equal(ref[str(j)].edges, h.edges[j])
        np.testing.assert_array_equal(ref[str(j)].hist, h.ref_counts[j])
        np.testing.assert_array_equal(cur[str(j)].hist, h.cur_counts[j])
        np.testing.assert_array_equal(cur[str(j)].edges, ref[str(j)].edges)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000])
def test_quantile_edges_equal_numpy(n):
    rng = np.random.default_rng(n)
    for x in (rng.normal(size=n) * 1e6, rng.integers(0, 3, size=n).astype(float),
              np.full(n, -7.25), rng.standard_cauchy(size=n)):
        s = np.sort(x)
        for bins in (1, 3, 10, 64):
            np.testing.assert_array_equal(quantile_edges(s, bins),
                                          np.quantile(x, np.linspace(0, 1, bins + 1)))
    assert np.isnan(quantile_edges(np.zeros(0), 4)).all()


def test_hist_unsorted_equals_sorted():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=5000), 1)
    x[::9] = np.nan
    x[::31] = np.inf
    x[::37] = -np.inf
    fin = np.sort(x[np.isfinite(x)])
    for edges in (quantile_edges(fin, 10), np.array([0.0, 0.0, 0.5, 0.5]), np.array([2.0, 2.0]),
                  np.array([-9.0, 9.0])):
        sv = np.sort(x[~np.isnan(x)])
        np.testing.assert_array_equal(PN.hist_unsorted(x, edges), PN.hist_sorted(sv, edges))


def test_numeric_counts_nan_inf_null():
    x = pa.array([1.0, None, np.nan, np.inf, -np.inf, -np.inf, 2.0, 4.0, None, np.nan, 3.0])
    c = profile({"x": x})["x"]
    assert (c.count, c.nulls, c.nans, c.posinf, c.neginf) == (7, 2, 2, 1, 2)
    assert c.n_rows == 11 and c.n_finite == 4
    assert (c.min, c.max, c.mean) == (1.0, 4.0, 2.5)
    assert c.m2 == pytest.approx(5.0) and c.var == pytest.approx(1.25)
    assert c.std == pytest.approx(math.sqrt(1.25))
    np.testing.assert_array_equal(c.sample, [-np.inf, -np.inf, 1.0, 2.0, 3.0, 4.0, np.inf])
    assert c.hist[0] == 2 and c.hist[-1] == 1 and c.hist.sum() == 7
    # ints with nulls
    k = profile({"k": pa.array([3, None, 1, 2**40])})["k"]
    assert (k.count, k.nulls, k.nans, k.min, k.max) == (3, 1, 0, 1.0, float(2**40))


def test_empty_one_row_constant():
    e = profile(np.zeros((0, 2)))
    assert e.n_rows == 0 and list(e.columns) == ["0", "1"]
    c = e["0"]
    assert (c.count, c.nulls, c.nans) == (0, 0, 0)
    assert math.isnan(c.min) and math.isnan(c.mean) and c.m2 == 0.0 and math.isnan(c.var)
    assert np.isnan(c.edges).all() and c.hist.tolist() == [0] * 12 and len(c.sample) == 0
    e2 = profile({"s": pa.array([], pa.string()), "t": pa.array([], pa.string())},
                 types={"t": "text"})
    assert e2["s"].kind == "categorical" and e2["s"].counts == {} and e2["s"].count == 0
    assert e2["t"].count == 0 and e2["t"].len_min is None and math.isnan(e2["t"].len_mean)
    assert profile({}).n_rows == 0 and len(profile({})) == 0
    assert e.merge(e).n_rows == 0

    one = profile({"x": [2.5]}, bins=4)["x"]
    assert one.edges.tolist() == [2.5] * 5 and one.hist.tolist() == [0, 0, 0, 0, 1, 0]
    assert (one.var, one.min, one.max) == (0.0, 2.5, 2.5)

    const = profile({"x": np.full(1000, -3.0)}, bins=5)["x"]
    assert const.hist.tolist() == [0, 0, 0, 0, 0, 1000, 0]
    assert const.var == 0.0 and const.mean == -3.0
    cur = profile({"x": np.array([-4.0, -3.0, -3.0, 9.0])}, edges_from=profile({"x": np.full(3, -3.0)}))
    assert cur["x"].hist.tolist()[0] == 1 and cur["x"].hist.tolist()[-2:] == [2, 1]

    allnan = profile({"x": np.full(5, np.nan)})["x"]
    assert (allnan.count, allnan.nans) == (0, 5) and np.isnan(allnan.edges).all()
    infonly = profile({"x": np.array([np.inf, -np.inf, np.inf])})["x"]
    assert (infonly.count, infonly.posinf, infonly.neginf) == (3, 2, 1)
    assert np.isnan(infonly.edges).all() and infonly.hist.sum() == 0  # as the drift kernels


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, np.int64, np.uint32])
def test_numeric_dtypes(dtype):
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(500, 3)) * 20).astype(dtype)
    p = profile(x)
    ref = profile(x.astype(np.float64))
    assert_mergeable_equal(p, ref)
    assert p["0"].dtype == np.dtype(dtype).name
    np.testing.assert_array_equal(p["1"].sample, np.sort(x[:, 1].astype(np.float64)))


def test_input_is_not_modified():
    rng = np.random.default_rng(6)
    x = np.asfortranarray(rng.normal(size=(300, 3)))
    before = x.copy()
    profile(x)
    profile({"a": x[:, 0], "b": x[:, 1]})
    np.testing.assert_array_equal(x, before)


# ---------------------------------------------------------------------------
# Merges
# ---------------------------------------------------------------------------


def test_merge_equals_profile_of_concatenation():
    t = mixed_table(3000)
    ref = profile(t, types=MIXED_TYPES)
    parts = [t.slice(0, 1000), t.slice(1000, 1500), t.slice(2500)]
    profs = [profile(p, types=MIXED_TYPES, edges_from=ref) for p in parts]
    merged = profs[0].merge(profs[1]).merge(profs[2])
    # the reference's own edges are those of all the data: every mergeable part is equal,
    # and with n <= sample_size the merged sample is all the values, as the full profile's
    assert_mergeable_equal(merged, ref)
    other_order = profs[2].merge(profs[0].merge(profs[1]))
    assert_mergeable_equal(other_order, merged)
    np.testing.assert_array_equal(other_order["x"].sample_keys, merged["x"].sample_keys)
    assert merged["txt"].kind == "text" and merged["color"].kind == "categorical"
    assert merged["flag"].counts.keys() == {"true", "false"}
    assert merged["k"].kind == "numeric"
    for c in merged.columns.values():
        assert c.n_rows == merged.n_rows


def test_merge_moments_large_offset():
    rng = np.random.default_rng(8)
    x = 1e9 + rng.normal(size=20000)
    a, b = x[:7000], x[7000:]
    ref = profile({"x": x})
    m = profile({"x": a}, edges_from=ref).merge(profile({"x": b}, edges_from=ref))
    assert rel_close(m["x"].mean, x.mean()) and rel_close(m["x"].var, x.var(), 1e-9)
    assert rel_close(ref["x"].var, x.var(), 1e-12)


def test_merge_needs_same_edges_and_columns():
    rng = np.random.default_rng(9)
    a = profile({"x": rng.normal(size=100), "y": rng.normal(size=100)})
    b = profile({"x": rng.normal(size=100), "y": rng.normal(size=100)})
    with pytest.raises(ValueError, match="column 'x'.*edges differ.*edges_from"):
        a.merge(b)
    with pytest.raises(ValueError, match="different columns.*'z'"):
        a.merge(profile({"x": [1.0], "z": [2.0]}))
    with pytest.raises(ValueError, match="column 'x'.*numeric.*categorical"):
        a.merge(profile({"x": ["u"] * 100, "y": rng.normal(size=100)}, edges_from=None,
                        types={"x": "categorical"}))
    with pytest.raises(TypeError, match="other must be a Profile"):
        a.merge({"x": 1})
    t1 = profile({"t": ["ab cd"] * 3}, types={"t": "text"}, trigram_buckets=8)
    t2 = profile({"t": ["ab cd"] * 3}, types={"t": "text"}, trigram_buckets=16)
    with pytest.raises(ValueError, match="column 't': trigram buckets differ"):
        t1.merge(t2)


# ---------------------------------------------------------------------------
# The bounded sample
# ---------------------------------------------------------------------------


def test_sample_bounded_sorted_and_uniform():
    from scipy import stats

    rng = np.random.default_rng(10)
    x = rng.gamma(2.0, size=50_000)
    c = profile({"x": x}, sample_size=2000, seed=3)["x"]
    assert len(c.sample) == 2000 and len(c.sample_keys) == 2000 and not c.sample_is_complete
    assert np.all(c.sample[1:] >= c.sample[:-1])
    assert np.isin(c.sample, x).all()
    assert stats.ks_2samp(c.sample, x).pvalue > 1e-3
    # a merge of unequal batches from different distributions stays uniform over the union
    ref = profile({"x": np.concatenate([x, x + 100])}, sample_size=2000)
    a = profile({"x": x[:30_000]}, sample_size=2000, edges_from=ref)
    b = profile({"x": 100 + x[30_000:40_000]}, sample_size=2000, edges_from=ref)
    m = a.merge(b)["x"]
    assert len(m.sample) == 2000 and np.all(m.sample[1:] >= m.sample[:-1])
    share = np.mean(m.sample >= 100)  # expected 10000 / 40000
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 2000)
    union = np.concatenate([x[:30_000], 100 + x[30_000:40_000]])
    assert stats.ks_2samp(m.sample, union).pvalue > 1e-3
    keys = set(m.sample_keys.tolist())
    assert keys <= set(a["x"].sample_keys.tolist()) | set(b["x"].sample_keys.tolist())
    # the merged sample keeps the smallest keys of the union
    allk = np.concatenate([a["x"].sample_keys, b["x"].sample_keys])
    assert max(keys) == np.sort(allk)[1999]


def test_sample_inclusion_probabilities_are_equal():
    # every value of 12 is kept with probability 4/12, whatever its value or position
    sv = np.arange(12.0)
    hits = np.zeros(12)
    trials = 3000
    for t in range(trials):
        v, _ = PN._sample_sorted(sv, 4, np.random.default_rng(t))
        hits[v.astype(int)] += 1
    expected = trials * 4 / 12
    chi2 = np.sum((hits - expected) ** 2 / expected)
    assert chi2 < 35  # chi-square with 11 dof: P(> 35) < 3e-4


def test_sample_complete_when_small_and_zero_size():
    x = np.array([3.0, -1.0, 2.0, 2.0, np.nan, -0.0, 0.0])
    c = profile({"x": x}, sample_size=10)["x"]
    assert c.sample_is_complete and c.sample.tolist() == [-1.0, 0.0, 0.0, 2.0, 2.0, 3.0]
    assert not np.signbit(c.sample[c.sample == 0]).any()  # one spelling of zero
    z = profile({"x": x}, sample_size=0)["x"]
    assert len(z.sample) == 0 and z.count == 6
    m = profile({"x": x}, sample_size=10).merge(profile({"x": x}, sample_size=3))
    assert len(m["x"].sample) == 3 and m["x"].sample_size == 3
    big = np.random.default_rng(0).normal(size=300_000)
    u = profile({"x": big}, sample_size=None)
    assert u["x"].sample_size is None and u["x"].sample_is_complete
    np.testing.assert_array_equal(u["x"].sample, np.sort(big))
    assert Profile.from_bytes(u.to_bytes())["x"].sample_size is None
    assert u.merge(u)["x"].sample_size is None and len(u.merge(u)["x"].sample) == 600_000
    ub = u.merge(profile({"x": big}, sample_size=1000, edges_from=u))["x"]
    assert ub.sample_size == 1000 and len(ub.sample) == 1000


def test_profile_is_deterministic_and_seeded():
    t = mixed_table(500)
    a = profile(t, types=MIXED_TYPES, sample_size=50)
    b = profile(t, types=MIXED_TYPES, sample_size=50)
    assert a.to_bytes() == b.to_bytes()
    c = profile(t, types=MIXED_TYPES, sample_size=50, seed=1)
    assert not np.array_equal(a["x"].sample_keys, c["x"].sample_keys)
    # two batches with the same seed still draw different keys (fingerprint of the values)
    rng = np.random.default_rng(0)
    p1, p2 = profile({"x": rng.normal(size=100)}), profile({"x": rng.normal(size=100)})
    assert not set(p1["x"].sample_keys.tolist()) & set(p2["x"].sample_keys.tolist())


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------


def test_all_input_types_agree():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(11)
    x = rng.normal(size=(400, 3))
    names = ["a", "b", "c"]
    base = profile(x, columns=names)
    chunked = pa.table({n: pa.chunked_array([x[:100, j], x[100:, j]]) for j, n in enumerate(names)})
    inputs = [
        np.asfortranarray(x),
        pa.table({n: x[:, j] for j, n in enumerate(names)}),
        chunked,
        pa.RecordBatch.from_pydict({n: x[:, j] for j, n in enumerate(names)}),
        pd.DataFrame(x, columns=names),
        {n: x[:, j] for j, n in enumerate(names)},
        {n: x[:, j].tolist() for j, n in enumerate(names)},
        {n: pd.Series(x[:, j]) for j, n in enumerate(names)},
        {n: pa.array(x[:, j]) for j, n in enumerate(names)},
    ]
    for data in inputs:
        p = profile(data, columns=names if isinstance(data, np.ndarray) else None)
        assert_identical(p, base)
    sel = profile(chunked, columns=["c", "a"])
    assert list(sel.columns) == ["c", "a"]
    assert_identical(sel, profile(x[:, [2, 0]], columns=["c", "a"]))


def test_pandas_dtypes():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({
        "f": [1.0, np.nan, 3.0, 4.0],
        "i": pd.array([1, None, 3, 4], dtype="Int64"),
        "cat": pd.Categorical(["a", "b", "a", None]),
        "obj": ["x", None, "y", np.nan],
        "b": [True, False, True, True],
        "ts": pd.to_datetime(["2024-01-01", "2024-01-02", None, "2024-01-04"]),
    })
    p = profile(df)
    assert p["f"].kind == "numeric" and (p["f"].nans, p["f"].nulls) == (1, 0)
    assert p["i"].kind == "numeric" and (p["i"].nulls, p["i"].count) == (1, 3)
    assert p["cat"].kind == "categorical" and p["cat"].counts == {"a": 2, "b": 1}
    assert p["cat"].nulls == 1
    assert p["obj"].counts == {"x": 1, "y": 1} and p["obj"].nulls == 2
    assert p["b"].counts == {"true": 3, "false": 1}
    assert p["ts"].kind == "invalid" and "timestamp" in p["ts"].reason
    assert p["ts"].nulls == 1 and p["ts"].count == 3
    pts = profile(df[["ts"]], types={"ts": "numeric"})["ts"]
    assert pts.kind == "numeric" and pts.count == 3 and pts.nulls == 1


def test_numpy_object_and_string_arrays():
    m = np.array([["a", "1"], ["b", "2"], ["a", "3"]])
    p = profile(m, columns=["s", "n"], types={"n": "numeric"})
    assert p["s"].counts == {"a": 2, "b": 1} and p["n"].mean == 2.0
    o = profile({"o": np.array(["u", None, "v", float("nan")], dtype=object)})["o"]
    assert o.counts == {"u": 1, "v": 1} and o.nulls == 2
    b = profile(np.array([[True, False], [True, True]]))
    assert b["0"].counts == {"true": 2} and b["1"].counts == {"true": 1, "false": 1}
    assert profile(np.array([[True], [False]]), types={"0": "numeric"})["0"].mean == 0.5


def test_bad_inputs():
    with pytest.raises(TypeError, match="data must be a pyarrow.Table"):
        profile("not a table")
    with pytest.raises(TypeError, match="data must be"):
        profile(Profile(0, {}))
    with pytest.raises(ValueError, match="must be 2-D"):
        profile(np.zeros(5))
    with pytest.raises(ValueError, match="must be 2-D"):
        profile(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="columns has 1 names but data has 2 columns"):
        profile(np.zeros((3, 2)), columns=["a"])
    with pytest.raises(ValueError, match="duplicate"):
        profile(np.zeros((3, 2)), columns=["a", "a"])
    with pytest.raises(TypeError, match="columns must be a list"):
        profile(np.zeros((3, 2)), columns="ab")
    with pytest.raises(ValueError, match=r"columns \['z'\] are not in data"):
        profile({"a": [1.0]}, columns=["z"])
    with pytest.raises(ValueError, match="column 'b' has 2 values but other columns have 1"):
        profile({"a": [1.0], "b": [1.0, 2.0]})
    with pytest.raises(TypeError, match="column 'a' must be a 1-D array"):
        profile({"a": 3.0})
    with pytest.raises(ValueError, match="column 'a' must be 1-D"):
        profile({"a": np.zeros((2, 2))})
    with pytest.raises(TypeError, match="column 'a': cannot read its values"):
        profile({"a": [1.0, "x"]})
    with pytest.raises(TypeError, match="keys must be column names"):
        profile({1: [1.0]})
    with pytest.raises(ValueError, match=r"types\['a'\] must be one of"):
        profile({"a": [1.0]}, types={"a": "float"})
    with pytest.raises(ValueError, match="types names column 'q'"):
        profile({"a": [1.0]}, types={"q": "text"})
    with pytest.raises(TypeError, match="types must be a mapping"):
        profile({"a": [1.0]}, types=["a"])
    with pytest.raises(ValueError, match="bins must be >= 1"):
        profile({"a": [1.0]}, bins=0)
    with pytest.raises(ValueError, match="sample_size must be >= 0"):
        profile({"a": [1.0]}, sample_size=-1)
    with pytest.raises(TypeError, match="top_k must be an integer"):
        profile({"a": [1.0]}, top_k=2.5)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        profile({"a": [1.0]}, seed=-3)
    with pytest.raises(TypeError, match="edges_from must be a Profile"):
        profile({"a": [1.0]}, edges_from={"a": [0.0, 1.0]})
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        profile({"a": [1.0]}, comm=object())
    with pytest.raises(KeyError, match="no column 'zz'"):
        profile({"a": [1.0]})["zz"]


# ---------------------------------------------------------------------------
# Kinds and types=
# ---------------------------------------------------------------------------


def test_string_kind_inference():
    rng = np.random.default_rng(12)
    n = 3000
    low = rng.choice(["a", "b", "c"], size=n)
    codes = [f"ID{v:07d}" for v in rng.integers(0, 10**7, size=n)]  # short, unique
    sentences = [f"this is sentence number {i}" for i in range(n)]  # long, unique
    short_words = [f"ab {i}" for i in range(n)]  # short but mostly with spaces
    p = profile({"low": low, "codes": codes, "sent": sentences, "short": short_words})
    assert [p[c].kind for c in ("low", "codes", "sent", "short")] == \
        ["categorical", "categorical", "text", "text"]
    assert p["codes"].truncated and p["codes"].other > 0 and len(p["codes"].counts) == 100
    # types= overrides; edges_from's kinds win over inference
    q = profile({"sent": sentences}, types={"sent": "categorical"})
    assert q["sent"].kind == "categorical"
    cur = profile({"low": [f"new words {i}" for i in range(n)]},
                  edges_from=profile({"low": low}))
    assert cur["low"].kind == "categorical"
    # ... but a reference never changes a column's type: strings stay strings, nulls follow
    num_ref = profile({"a": np.arange(5.0), "b": np.arange(5.0), "c": ["x y z w"] * 5},
                      types={"c": "text"})
    cur = profile({"a": [str(i) for i in range(5)], "b": [None] * 5, "c": [None] * 5},
                  edges_from=num_ref)
    assert cur["a"].kind == "categorical" and cur["b"].kind == "numeric"
    assert cur["b"].nulls == 5 and cur["c"].kind == "text" and cur["c"].nulls == 5


def test_types_override_and_invalid():
    p = profile({"n": ["1.5", "2", None, "nan"], "bad": ["1", "abc", "2", None],
                 "num_as_cat": np.array([1, 2, 2, 3]), "num_as_text": np.array([10, 200, 3, 4])},
                types={"n": "numeric", "bad": "numeric", "num_as_cat": "categorical",
                       "num_as_text": "text"})
    assert p["n"].kind == "numeric" and (p["n"].count, p["n"].nulls, p["n"].nans) == (2, 1, 1)
    assert isinstance(p["bad"], InvalidColumn) and "declared numeric" in p["bad"].reason
    assert "abc" in p["bad"].reason and (p["bad"].count, p["bad"].nulls) == (3, 1)
    assert p["num_as_cat"].counts == {"2": 2, "1": 1, "3": 1}
    assert p["num_as_text"].kind == "text" and p["num_as_text"].len_max == 3
    inv = p["bad"].merge(p["bad"])
    assert inv.count == 6 and inv.kind == "invalid"
    nested = profile({"l": pa.array([[1], [2, 3]])})["l"]
    assert nested.kind == "invalid" and "list" in nested.reason
    forced = profile({"l": pa.array([[1], [2, 3]]), "b": pa.array([b"ab", b"\xff"]),
                      "ok": pa.array([b"ab", b"cd"])},
                     types={"l": "categorical", "b": "text", "ok": "categorical"})
    assert forced["l"].kind == "invalid" and "declared categorical" in forced["l"].reason
    assert forced["b"].kind == "invalid" and "UTF8" in forced["b"].reason
    assert forced["ok"].counts == {"ab": 1, "cd": 1}


# ---------------------------------------------------------------------------
# Categorical columns
# ---------------------------------------------------------------------------


def test_categorical_top_k_and_other():
    vals = [f"v{i}" for i in range(30) for _ in range(30 - i)]  # v0 x30, v1 x29, ...
    p = profile({"c": vals}, top_k=2, types={"c": "categorical"})["c"]  # cap 20 < 30 distinct
    assert p.truncated and p.counts == {"v0": 30, "v1": 29}
    assert p.other == len(vals) - 59 and p.n_distinct == 30 and p.count == len(vals)
    q = profile({"c": vals}, top_k=3, types={"c": "categorical"})["c"]  # cap 30: exact
    assert not q.truncated and len(q.counts) == 30 and q.other == 0
    assert q.top() == {"v0": 30, "v1": 29, "v2": 28} and list(q.top(1)) == ["v0"]
    # ties ordered by value
    t = profile({"c": ["b", "a", "c", "a", "b"]})["c"]
    assert list(t.counts.items()) == [("a", 2), ("b", 2), ("c", 1)]


def test_categorical_merge_rules():
    rng = np.random.default_rng(13)
    a = [f"v{i}" for i in rng.integers(0, 15, size=400)]
    b = [f"v{i}" for i in rng.integers(10, 28, size=300)]
    kw = dict(top_k=2, types={"c": "categorical"})  # cap 20: each side exact, the union not
    m = profile({"c": a}, **kw).merge(profile({"c": b}, **kw))["c"]
    full = profile({"c": a + b}, **kw)["c"]
    assert m.truncated and full.truncated
    assert (m.counts, m.other, m.n_distinct) == (full.counts, full.other, full.n_distinct)
    # a truncated side: counts of kept values are lower bounds, n_distinct a lower bound
    ta = profile({"c": [f"x{i}" for i in range(50)] + ["y"] * 10}, **kw)["c"]
    assert ta.truncated and ta.counts["y"] == 10
    tb = profile({"c": ["z"] * 3}, **kw)["c"]
    tm = ta.merge(tb)
    assert tm.truncated and tm.count == 63 and sum(tm.counts.values()) + tm.other == 63
    assert tm.n_distinct >= 51


def test_categorical_unseen_and_alignment():
    ref = profile({"c": ["es", "es", "en", None]})["c"]
    cur = profile({"c": ["es", "ru", "ru", "en", "zh"]})["c"]
    assert cur.unseen(ref) == {"ru": 2, "zh": 1}
    cats, r, c = ref.aligned_counts(cur)
    assert cats == ["es", "en", "ru", "zh", "<other>"]
    assert r.tolist() == [2, 1, 0, 0, 0] and c.tolist() == [1, 1, 2, 1, 0]


# ---------------------------------------------------------------------------
# Text columns
# ---------------------------------------------------------------------------


def _splitmix64(x: int) -> int:
    m = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def naive_trigrams(values, buckets):
    out = np.zeros(buckets, np.int64)
    for v in values:
        for i in range(len(v) - 2):
            key = (ord(v[i]) << 42) | (ord(v[i + 1]) << 21) | ord(v[i + 2])
            out[_splitmix64(key) % buckets] += 1
    return out


def test_text_scripts_of_known_strings():
    ru, es, zh = "Привет, как дела?", "¡Hola! ¿Cómo está, señor?", "你好，世界。今天天气很好"
    p = profile({"q": [ru, es, zh, None, "", "Καλημέρα", "שלום", "مرحبا", "नमस्ते", "สวัสดี",
                       "안녕하세요", "ひらがな", "カタカナ", "Ꭰ"]}, types={"q": "text"})["q"]
    s = p.scripts
    assert s["Cyrillic"] == sum(ch.isalpha() for ch in ru)
    assert s["Latin"] == sum(ch.isalpha() for ch in es)
    assert s["Han"] == 10 and s["Greek"] == 8 and s["Hebrew"] == 4 and s["Arabic"] == 5
    assert s["Devanagari"] == 6 and s["Thai"] == 6 and s["Hangul"] == 5
    assert s["Hiragana"] == 4 and s["Katakana"] == 4 and s["Other"] == 1  # Cherokee
    assert s["Common"] == 4 + 8 + 2  # ", ?" and 2 spaces; "¡!¿,?" and 3 spaces; "，。"
    assert p.script_values["Latin"] == 1 and p.script_values["Common"] == 3
    assert (p.count, p.nulls, p.empty, p.len_min, p.len_max) == (13, 1, 1, 0, len(es))
    assert p.chars == sum(len(v) for v in [ru, es, zh, "", "Καλημέρα", "שלום", "مرحبا",
                                           "नमस्ते", "สวัสดี", "안녕하세요", "ひらがな", "カタカナ", "Ꭰ"])
    only = {k: v for k, v in profile({"q": ["Привет мир"] * 60}, types={"q": "text"})["q"]
            .scripts.items() if v}
    assert only == {"Cyrillic": 540, "Common": 60}
    es_only = profile({"q": ["hola señor"]}, types={"q": "text"})["q"].scripts
    assert es_only["Latin"] == 9 and es_only["Cyrillic"] == 0


def test_text_trigrams_and_lengths_match_naive():
    t = mixed_table(800)
    vals = [v for v in t.column("txt").to_pylist() if v is not None]
    p = profile(t, types=MIXED_TYPES, trigram_buckets=64)["txt"]
    np.testing.assert_array_equal(p.trigrams, naive_trigrams(vals, 64))
    lens = np.array([len(v) for v in vals], dtype=float)
    assert p.count == len(vals) and rel_close(p.len_mean, lens.mean())
    assert rel_close(p.len_m2, ((lens - lens.mean()) ** 2).sum())
    assert p.len_var == pytest.approx(lens.var())
    # small decode chunks: same counts
    old = T.CHUNK_BYTES
    try:
        T.CHUNK_BYTES = 64
        q = profile(t, types=MIXED_TYPES, trigram_buckets=64)["txt"]
    finally:
        T.CHUNK_BYTES = old
    np.testing.assert_array_equal(q.trigrams, p.trigrams)
    assert q.scripts == p.scripts and q.script_values == p.script_values


def test_text_input_types():
    vals = ["один два", None, "tres cuatro", "五六"]
    base = profile({"t": vals}, types={"t": "text"})["t"]
    for arr in (pa.array(vals, pa.large_string()), pa.array(vals).dictionary_encode(),
                pa.chunked_array([pa.array(vals[:2]), pa.array(vals[2:])]),
                np.array(vals, dtype=object)):
        c = profile({"t": arr}, types={"t": "text"})["t"]
        assert c.scripts == base.scripts and c.nulls == 1
        np.testing.assert_array_equal(c.trigrams, base.trigrams)
    if hasattr(pa, "string_view"):
        c = profile({"t": pa.array(vals, pa.string_view())}, types={"t": "text"})["t"]
        np.testing.assert_array_equal(c.trigrams, base.trigrams)


def test_script_table_and_decoder():
    assert [T.SCRIPTS[i] for i in T.script_of(np.array([0x41, 0x416, 0x3B1, 0x5D0, 0x627, 0x905,
                                                         0xE01, 0xAC00, 0x3042, 0x30A2, 0x4E00,
                                                         0x20, 0x10FFFF, 0x110000, -1]))] == \
        ["Latin", "Cyrillic", "Greek", "Hebrew", "Arabic", "Devanagari", "Thai", "Hangul",
         "Hiragana", "Katakana", "Han", "Common", "Other", "Other", "Other"]
    s = "".join(chr(c) for c in list(range(1, 0xD800, 17)) + list(range(0xE000, 0x110000, 97)))
    cp, starts = T.decode_utf8(np.frombuffer(s.encode(), np.uint8))
    assert cp.tolist() == [ord(c) for c in s] and starts.sum() == len(s)
    with pytest.raises(TypeError):
        T.script_of(np.array([1.5]))


# ---------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------


def golden_data():
    return {
        "x": pa.array([0.5, 1.5, np.nan, None, np.inf, -2.0, 3.0, 3.0]),
        "c": pa.array(["a", "b", "a", None, "c", "a", "b", "a"]),
        "t": pa.array(["Привет мир", "hola señor", "你好世界", None, "", "abc", "x", "ok"]),
        "bad": pa.array(["1", "abc", "2", "3", None, "4", "5", "6"]),
    }


def golden_profile() -> Profile:
    return profile(golden_data(), types={"t": "text", "bad": "numeric"}, sample_size=4, bins=4,
                   trigram_buckets=16, seed=7)


def check_golden_values(p: Profile):
    assert p.n_rows == 8 and list(p.columns) == ["x", "c", "t", "bad"]
    assert p.params == {"sample_size": 4, "bins": 4, "top_k": 100, "trigram_buckets": 16,
                        "seed": 7}
    x = p["x"]
    assert (x.count, x.nulls, x.nans, x.posinf, x.neginf) == (6, 1, 1, 1, 0)
    assert (x.min, x.max, x.mean, x.m2) == (-2.0, 3.0, 1.2, 17.3)
    assert x.edges.tolist() == [-2.0, 0.5, 1.5, 3.0, 3.0]
    assert x.hist.tolist() == [0, 1, 1, 1, 2, 1]
    assert len(x.sample) == 4 and x.sample_size == 4 and x.sample_keys.dtype == np.uint64
    assert np.all(x.sample[1:] >= x.sample[:-1]) and set(x.sample) <= {0.5, 1.5, np.inf, -2.0, 3.0}
    c = p["c"]
    assert list(c.counts.items()) == [("a", 4), ("b", 2), ("c", 1)]
    assert (c.nulls, c.other, c.n_distinct, c.truncated, c.top_k) == (1, 0, 3, False, 100)
    t = p["t"]
    assert (t.count, t.nulls, t.empty, t.len_min, t.len_max) == (7, 1, 1, 0, 10)
    assert t.scripts["Cyrillic"] == 9 and t.scripts["Latin"] == 9 + 3 + 1 + 2
    assert t.scripts["Han"] == 4 and t.scripts["Common"] == 2
    assert t.trigrams.sum() == 8 + 8 + 2 + 1 and len(t.trigrams) == 16
    np.testing.assert_array_equal(
        t.trigrams, naive_trigrams(["Привет мир", "hola señor", "你好世界", "", "abc", "x", "ok"], 16))
    b = p["bad"]
    assert b.kind == "invalid" and "declared numeric" in b.reason and (b.count, b.nulls) == (7, 1)


def test_round_trip(tmp_path):
    t = mixed_table(700)
    p = profile(t, types=MIXED_TYPES, sample_size=100)
    q = Profile.from_bytes(p.to_bytes())
    assert_identical(q, p)
    assert q.to_dict() == p.to_dict()
    json.dumps(p.to_dict(), allow_nan=False)
    p.save(tmp_path / "p.arrow")
    assert_identical(Profile.load(tmp_path / "p.arrow"), p)
    assert_identical(Profile.load(str(tmp_path / "p.arrow")), p)
    # loaded profiles merge like fresh ones
    assert_mergeable_equal(q.merge(q), p.merge(p))
    e = Profile.from_bytes(profile({}).to_bytes())
    assert e.n_rows == 0 and len(e) == 0
    g = golden_profile()
    assert_identical(Profile.from_bytes(g.to_bytes()), g)
    check_golden_values(g)


def test_golden_v1():
    p = Profile.load(GOLDEN)
    check_golden_values(p)
    assert_mergeable_equal(p, golden_profile(), sample=False)
    d = p.to_dict()
    assert d["format"] == "mlops-engine profile" and d["format_version"] == 1
    meta = pa.ipc.open_file(GOLDEN).schema.metadata
    assert meta[b"format"] == b"mlops-engine profile" and meta[b"format_version"] == b"1"


def _with_metadata(data: bytes, **changes) -> bytes:
    table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    meta = dict(table.schema.metadata)
    meta.update({k.encode(): v.encode() for k, v in changes.items()})
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def test_format_errors():
    data = golden_profile().to_bytes()
    with pytest.raises(ValueError, match="format_version 2 is newer.*upgrade mlops-engine"):
        Profile.from_bytes(_with_metadata(data, format_version="2"))
    with pytest.raises(ValueError, match="not an mlops-engine profile"):
        Profile.from_bytes(_with_metadata(data, format="something else"))
    with pytest.raises(ValueError, match="not an mlops-engine profile"):
        Profile.from_bytes(b"definitely not arrow")
    with pytest.raises(ValueError, match="no valid format_version"):
        Profile.from_bytes(_with_metadata(data, format_version="x"))
    with pytest.raises(TypeError, match="data must be bytes"):
        Profile.from_bytes("a string")


def test_edges_from_takes_reference_settings():
    rng = np.random.default_rng(14)
    ref = profile({"x": rng.normal(size=1000), "t": [f"una frase larga de texto número {i}"
                                                      for i in range(1000)]},
                  bins=6, trigram_buckets=32)
    cur = profile({"x": rng.normal(size=300) + 5, "t": ["x"] * 300}, edges_from=ref, bins=10)
    assert cur["x"].edges is ref["x"].edges and len(cur["x"].hist) == 8
    assert cur["x"].hist[-1] > 250  # most of the shifted batch is above the reference max
    assert cur["t"].kind == "text" and len(cur["t"].trigrams) == 32
    merged = ref.merge(cur)
    assert merged["x"].count == 1300
    # a column missing from the reference is profiled on its own
    extra = profile({"x": [1.0], "y": [2.0]}, edges_from=ref)
    assert extra["y"].edges.tolist() == [2.0] * 11


def test_sorted_profile_equals_profile_for_the_drift_tests():
    """drift()'s lean profile of raw data: the numbers the tests read equal profile()'s."""
    from engine.monitor.profile import SortedNumericColumn, sorted_profile

    rng = np.random.default_rng(15)
    x = rng.normal(size=4000)
    x[::7], x[::11], x[::13] = np.nan, np.inf, -np.inf
    data = {"x": x, "i": rng.integers(0, 9, 4000), "n": pa.array([None, 1.5, 2.5, None] * 1000),
            "e": np.full(4000, np.nan), "c": rng.choice(["a", "b"], 4000),
            "m": np.round(rng.normal(size=4000)) * -0.0}
    mat = rng.normal(size=(500, 3))
    for d, edges_from in ((data, None), (data, profile({"x": rng.normal(size=99)})), (mat, None)):
        full = profile(d, sample_size=None, edges_from=edges_from)
        lean = sorted_profile(d, edges_from=edges_from)
        assert list(full.columns) == list(lean.columns) and full.n_rows == lean.n_rows
        for name, a in full.columns.items():
            b = lean[name]
            assert a.kind == b.kind
            if a.kind != "numeric":
                assert a.to_dict() == b.to_dict()
                continue
            assert isinstance(b, SortedNumericColumn)
            assert (a.count, a.nulls, a.nans, a.n_rows) == (b.count, b.nulls, b.nans, b.n_rows)
            np.testing.assert_array_equal(a.edges, b.edges)
            np.testing.assert_array_equal(a.hist, b.hist)
            np.testing.assert_array_equal(a.sample, b.sample)
            assert b.pack.nan_counts[b.index] == b.nans


@pytest.mark.parametrize("fail", ["fsync", "replace"])
def test_failed_save_leaves_no_temporary_and_names_the_path(tmp_path, monkeypatch, fail):
    import errno

    cwd, out = tmp_path / "cwd", tmp_path / "out"
    cwd.mkdir()
    out.mkdir()
    monkeypatch.chdir(cwd)
    p = profile({"x": [1.0, 2.0]})

    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, fail, boom)
    dest = os.path.join("..", "out", "p.profile")
    with pytest.raises(OSError, match="No space left") as e:
        p.save(dest)
    assert repr(dest) in str(e.value) and "tmp" not in str(e.value)
    assert os.listdir(out) == [] and os.listdir(cwd) == []
    monkeypatch.undo()
    p.save(out / "p.profile")  # the same call works once the disk has room
    assert os.listdir(out) == ["p.profile"]


def test_save_to_a_directory_or_missing_parent(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = profile({"x": [1.0, 2.0]})
    os.mkdir("d")
    with pytest.raises(IsADirectoryError, match="'d' is a directory"):
        p.save("d")
    with pytest.raises(FileNotFoundError, match="'nope/p.profile'.*'nope' does not exist"):
        p.save("nope/p.profile")
    assert os.listdir(tmp_path) == ["d"] and os.listdir("d") == []


def test_profile_progress(capsys):
    t = pa.table({"a": np.arange(10.0), "b": np.arange(10.0), "c": ["x", "y"] * 5})
    profile(t, progress=True)
    assert "3/3 columns" in capsys.readouterr().err
    profile(t, progress=False)
    profile(t)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


if __name__ == "__main__":  # regenerate the golden file (only with a new format_version)
    golden_profile().save(GOLDEN)
    print("wrote", GOLDEN, file=sys.stderr)


def test_load_profile_from_the_registry_is_monitor_api(tmp_path):
    """engine.monitor.load_profile reads a registered profile back (the registry below the
    monitor does not know profiles); load_input resolves a registry profile through it,
    without the deprecated Registry.load_profile. `import engine.monitor` stays free of
    the registry until it is used."""
    import subprocess
    import sys
    import warnings

    import engine.monitor as M
    from engine.monitor import load_input, load_profile
    from engine.registry import Registry

    code = "import sys, engine.monitor; print('engine.registry' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    assert "load_profile" in M.__all__ and M.load_profile is load_profile
    p = profile({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]})
    store = str(tmp_path / "store")
    with Registry(store) as reg:
        reg.register("ref", p)
        got = load_profile(reg, "ref")
    assert got.to_bytes() == p.to_bytes()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "Registry.load_profile is deprecated")
        again = load_input("ref", store=store)
    assert isinstance(again, Profile) and again.to_bytes() == p.to_bytes()
