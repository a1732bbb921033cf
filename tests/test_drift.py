"""engine.monitor.drift: per-column tests, corrections, verdict, report, bad input."""

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from engine.monitor.drift import DriftReport, adjust_pvalues, drift
from engine.monitor.mmd import _mmd2_unbiased, mmd_permutation_test, rbf_kernel_matrix


def frame(n, seed, shift=()):
    rng = np.random.default_rng(seed)
    cols = {f"x{i}": rng.normal(size=n) + (0.5 if i in shift else 0.0) for i in range(8)}
    cols["cat"] = rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    return pa.table(cols)


def rows(rep, test=None):
    out = rep.table.to_pylist()
    return [r for r in out if test is None or r["test"] == test]


def test_detects_shifted_columns_only():
    ref, cur = frame(3000, 1), frame(3000, 2, shift=(2, 5))
    rep = drift(ref, cur)
    assert isinstance(rep, DriftReport)
    assert set(rep.drifted_columns) == {"x2", "x5"}
    assert rep.verdict["tested_columns"] == 9 and rep.verdict["drifted_columns"] == 2
    assert rep.drift is False  # 2/9 < 0.5
    assert drift(ref, cur, share=0.2).drift is True


def test_numbers_agree_with_scipy():
    ref, cur = frame(800, 3), frame(500, 4, shift=(1,))
    rep = drift(ref, cur, tests=["ks", "wasserstein", "cvm", "psi"], correction=None)
    for r in rows(rep, "ks"):
        a, b = ref.column(r["column"]).to_numpy(), cur.column(r["column"]).to_numpy()
        s = stats.ks_2samp(a, b)
        assert r["statistic"] == s.statistic
        assert math.isclose(r["p_value"], s.pvalue, rel_tol=1e-9)
        assert r["p_adjusted"] == r["p_value"]  # correction=None
    for r in rows(rep, "wasserstein"):
        a, b = ref.column(r["column"]).to_numpy(), cur.column(r["column"]).to_numpy()
        assert math.isclose(r["statistic"], stats.wasserstein_distance(a, b), rel_tol=1e-9)
    for r in rows(rep, "cvm"):
        a, b = ref.column(r["column"]).to_numpy(), cur.column(r["column"]).to_numpy()
        assert math.isclose(r["statistic"], stats.cramervonmises_2samp(a, b).statistic, rel_tol=1e-9)


def test_categorical_chi2_matches_scipy():
    ref, cur = frame(500, 5), frame(400, 6)
    rep = drift(ref, cur, columns=["cat"], tests=["chi2"], correction=None)
    (r,) = rows(rep, "chi2")
    a = ref.column("cat").to_pylist()
    b = cur.column("cat").to_pylist()
    labels = sorted(set(a) | set(b))
    table = [[a.count(x) for x in labels], [b.count(x) for x in labels]]
    s = stats.chi2_contingency(table)
    assert math.isclose(r["statistic"], s.statistic, rel_tol=1e-12)
    assert math.isclose(r["p_value"], s.pvalue, rel_tol=1e-9)


def test_defaults_by_size():
    small = drift(frame(500, 1), frame(500, 2))
    big = drift(frame(5000, 1), frame(5000, 2))
    prim = {r["column"]: r["test"] for r in rows(small) if r["primary"]}
    assert prim["x0"] == "ks" and prim["cat"] == "chi2"
    prim = {r["column"]: r["test"] for r in rows(big) if r["primary"]}
    assert prim["x0"] == "wasserstein_normed" and prim["cat"] == "jensenshannon"


def test_profile_as_reference_gives_the_same_numbers():
    from engine.monitor.profile import profile

    ref, cur = frame(2000, 7), frame(1500, 8, shift=(3,))
    a = drift(ref, cur, tests=["ks", "psi"])
    b = drift(profile(ref, sample_size=None), cur, tests=["ks", "psi"])
    ta, tb = a.table.to_pylist(), b.table.to_pylist()
    for x, y in zip(ta, tb):
        assert x["column"] == y["column"] and x["test"] == y["test"]
        assert x["statistic"] == pytest.approx(y["statistic"], rel=1e-12, nan_ok=True)


def test_thresholds_per_test_and_column():
    ref, cur = frame(3000, 1), frame(3000, 2, shift=(0,))
    rep = drift(ref, cur, tests=["psi"], thresholds={"psi": 10.0, "x0": {"psi": 0.0001}})
    by = {r["column"]: r for r in rows(rep, "psi")}
    assert by["x0"]["threshold"] == 0.0001 and by["x0"]["drifted"]
    assert by["x1"]["threshold"] == 10.0 and not by["x1"]["drifted"]


def test_missing_extra_and_mismatched_columns_are_not_tested_rows():
    ref = pa.table({"a": np.arange(100.0), "b": np.arange(100.0), "c": np.arange(100.0)})
    cur = pa.table({"a": np.arange(100.0), "c": [str(i) for i in range(100)], "z": np.arange(100.0)})
    rep = drift(ref, cur, types={"c": None} if False else None)
    by = {r["column"]: r for r in rows(rep)}
    assert by["b"]["drifted"] is None and "missing" in by["b"]["reason"]
    assert by["z"]["drifted"] is None and "not in the reference" in by["z"]["reason"]
    assert by["c"]["drifted"] is None and "type differs" in by["c"]["reason"]
    assert rep.verdict["tested_columns"] == 1


def test_nan_and_empty_columns():
    ref = {"a": np.r_[np.random.default_rng(0).normal(size=200), [np.nan] * 5], "b": np.full(205, np.nan)}
    cur = {"a": np.random.default_rng(1).normal(size=100), "b": np.random.default_rng(2).normal(size=100)}
    rep = drift(ref, cur, tests=["ks"])
    by = {r["column"]: r for r in rows(rep, "ks")}
    assert by["a"]["n_ref"] == 200 and by["a"]["reason"] is None
    assert by["b"]["drifted"] is None and by["b"]["reason"]


def test_report_json_and_html(tmp_path):
    rep = drift(frame(500, 1), frame(500, 2, shift=(1,)))
    d = json.loads(rep.to_json(tmp_path / "r.json"))
    assert d["format_version"] == 1 and d["verdict"]["drifted_columns"] == rep.verdict["drifted_columns"]
    assert json.loads((tmp_path / "r.json").read_text()) == d
    html = rep.to_html(tmp_path / "r.html")
    assert "<svg" in html and "x1" in html and "http://" not in html and "https://" not in html
    assert "drift" in rep.summary()


def test_bad_arguments():
    ref, cur = frame(100, 1), frame(100, 2)
    with pytest.raises(ValueError, match="unknown test 'kss'"):
        drift(ref, cur, tests=["kss"])
    with pytest.raises(ValueError, match="alpha"):
        drift(ref, cur, alpha=0)
    with pytest.raises(ValueError, match="share"):
        drift(ref, cur, share=1.5)
    with pytest.raises(ValueError, match="correction"):
        drift(ref, cur, correction="holm")
    with pytest.raises(ValueError, match="'nope'.* not in"):
        drift(ref, cur, columns=["nope"])


def test_bh_matches_scipy():
    p = np.random.default_rng(3).uniform(size=50) ** 3
    p[[4, 9]] = np.nan
    adj = adjust_pvalues(p, "bh")
    ok = np.isfinite(p)
    np.testing.assert_allclose(adj[ok], stats.false_discovery_control(p[ok], method="bh"), rtol=1e-12)
    assert np.isnan(adj[~ok]).all()
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni")[ok], np.minimum(p[ok] * 48, 1))


def naive_mmd2(x, y, bw):
    def k(a, b):
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * bw * bw))
    n, m = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sxy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return sxx + syy - 2 * sxy


def test_mmd_statistic_matches_naive_and_detects_shift():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 3)), rng.normal(size=(25, 3)) + 0.3
    z = np.vstack([x, y])
    k, bw = rbf_kernel_matrix(z)
    assert math.isclose(_mmd2_unbiased(k, 30), naive_mmd2(x, y, bw), rel_tol=1e-10)
    same = mmd_permutation_test(rng.normal(size=(300, 4)), rng.normal(size=(300, 4)), permutations=99)
    diff = mmd_permutation_test(rng.normal(size=(300, 4)), rng.normal(size=(300, 4)) + 0.5,
                                permutations=99)
    assert diff[1] == 0.01 and same[1] > 0.05


def test_mmd_through_drift_needs_rows():
    ref, cur = frame(400, 1), frame(400, 2, shift=(0, 1, 2))
    rep = drift(ref, cur, tests=["ks", "mmd"], mmd_permutations=50)
    (r,) = rows(rep, "mmd")
    assert r["p_value"] < 0.05 and r["type"] == "multivariate" and r["drifted"]


ALL_NUMERIC = ["ks", "wasserstein", "wasserstein_normed", "cvm", "psi", "jensenshannon",
               "hellinger"]


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN and the sign of zero compared too."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _awkward(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n) + shift
    x[::9] = np.nan
    x[::17] = np.inf
    x[::23] = -np.inf
    return pa.table({
        "x": x, "ties": np.round(rng.normal(size=n) * 2 + shift),
        "zeros": np.where(rng.random(n) < 0.5, -0.0, 0.0) + np.round(rng.random(n) + shift),
        "const": np.full(n, 1.5), "allnan": np.full(n, np.nan),
        "nulls": pa.array([None if i % 4 == 0 else float(i % 50) + shift for i in range(n)]),
        "ints": rng.integers(0, 7, size=n), "cat": rng.choice(["a", "b"], size=n)})


def test_raw_sides_and_profiles_give_identical_results():
    """A raw side is sorted, not profiled; every number must equal the profiled path's."""
    from engine.monitor.profile import profile

    ref, cur = _awkward(3000, 1), _awkward(2500, 2, 0.2)
    rp = profile(ref, sample_size=None)
    cp = profile(cur, sample_size=None, edges_from=rp)
    for tests in (None, ALL_NUMERIC):
        base = drift(rp, cp, tests=tests)
        for r, c in ((ref, cur), (rp, cur), (ref, cp)):
            rep = drift(r, c, tests=tests)
            assert _same(rep.table.to_pylist(), base.table.to_pylist())
            assert _same(rep.distributions, base.distributions)
            assert rep.verdict == base.verdict


def test_reference_pack_is_kept_and_renewed_when_columns_change(monkeypatch):
    import gc
    import weakref

    from engine.kernels import drift as K
    from engine.monitor.profile import Profile, profile

    ref, cur = frame(2000, 3), frame(1500, 4, shift=(1,))
    rp = profile(ref, sample_size=None)
    spreads = []
    std = K.std_columns
    monkeypatch.setattr(K, "std_columns", lambda *a, **k: spreads.append(1) or std(*a, **k))
    first = drift(rp, cur, tests=ALL_NUMERIC)
    assert len(spreads) == 1
    again = drift(rp, cur, tests=ALL_NUMERIC)
    assert len(spreads) == 1  # packed (and its spread computed) once: kept for the next batch
    assert _same(first.table.to_pylist(), again.table.to_pylist())
    rp.columns["x1"] = profile(frame(2000, 5, shift=(1,)), sample_size=None).columns["x1"]
    changed = drift(rp, cur, tests=ALL_NUMERIC)
    fresh = drift(Profile(rp.n_rows, dict(rp.columns), rp.params), cur, tests=ALL_NUMERIC)
    assert _same(changed.table.to_pylist(), fresh.table.to_pylist())
    assert not _same(changed.table.to_pylist(), first.table.to_pylist())
    subset = drift(rp, cur, columns=["x3", "x1"], tests=["ks"])
    whole = {r["column"]: r for r in fresh.table.to_pylist() if r["test"] == "ks"}
    for r in subset.table.to_pylist():
        assert r["statistic"] == whole[r["column"]]["statistic"]
    # what is kept for a profile does not keep it alive
    gone = weakref.ref(rp)
    del rp
    gc.collect()
    assert gone() is None


# --- regressions ---------------------------------------------------------------------------


def test_profiles_with_different_edges_are_rebinned_or_not_tested():
    from engine.monitor.profile import profile

    rng = np.random.default_rng(0)
    ref_x, cur_x = rng.normal(size=5000), rng.normal(size=5000) + 3
    pr = profile({"x": ref_x})
    raw = drift(pr, {"x": cur_x}, tests=["psi", "jensenshannon", "hellinger"])
    # complete sample: rebinned exactly onto the reference's edges
    full = drift(pr, profile({"x": cur_x}), tests=["psi", "jensenshannon", "hellinger"])
    assert _same(full.table.to_pylist(), raw.table.to_pylist())
    assert rows(full, "psi")[0]["statistic"] > 5 and full.drifted_columns == ["x"]
    assert full.distributions == raw.distributions
    # incomplete sample: the histogram tests are not run, and the reason says how to fix it
    part = drift(pr, profile({"x": cur_x}, sample_size=100), tests=["psi", "hellinger"])
    for r in rows(part):
        assert r["drifted"] is None and "edges_from=<reference>" in r["reason"]
    assert part.verdict["tested_columns"] == 0
    # with edges_from the profile path is unchanged
    same = drift(pr, profile({"x": cur_x}, sample_size=100, edges_from=pr), tests=["psi"])
    assert rows(same, "psi")[0]["statistic"] == rows(raw, "psi")[0]["statistic"]


def test_mmd_with_named_2d_arrays_and_record_batches():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 0.6
    rep = drift(x, y, columns=["a", "b"], tests=["mmd"], mmd_permutations=50)
    (r,) = rows(rep, "mmd")
    assert r["p_value"] < 0.05 and r["n_ref"] == 300
    rb = drift(pa.record_batch({"a": x[:, 0], "b": x[:, 1]}),
               pa.record_batch({"a": y[:, 0], "b": y[:, 1]}), tests=["mmd"], mmd_permutations=50)
    (r2,) = rows(rb, "mmd")
    assert r2["statistic"] == r["statistic"] and r2["p_value"] == r["p_value"]


def test_raw_wasserstein_without_threshold_says_why():
    ref, cur = frame(500, 1), frame(500, 2, shift=(0,))
    rep = drift(ref, cur, tests=["wasserstein"])
    for r in rows(rep, "wasserstein"):
        assert r["drifted"] is None and math.isfinite(r["statistic"])
        assert "thresholds={'wasserstein': x}" in r["reason"] and "wasserstein_normed" in r["reason"]
    with_thr = drift(ref, cur, tests=["wasserstein"], thresholds={"wasserstein": 0.3})
    assert with_thr.drifted_columns == ["x0"] and rows(with_thr)[0]["reason"] is None


def test_cli_prints_the_reason_of_a_null_verdict(tmp_path, capsys):
    from engine.cli import main

    frame(500, 1).to_pandas().to_parquet(tmp_path / "r.parquet")
    frame(500, 2).to_pandas().to_parquet(tmp_path / "c.parquet")
    code = main(["monitor", "drift", str(tmp_path / "r.parquet"), str(tmp_path / "c.parquet"),
                 "--test", "wasserstein"])
    out = capsys.readouterr().out
    # No test could decide any column: nothing was compared, so the verdict is untestable
    # (exit 4), and each column says why.
    assert code == 4 and "raw Wasserstein has no scale-free default threshold" in out
    assert drift(frame(500, 1), frame(500, 2), tests=["wasserstein"]).status == "untestable"


def test_progress_bar_per_column(capsys, monkeypatch):
    from engine import config

    ref, cur = frame(300, 1), frame(300, 2)
    drift(ref, cur, progress=True)
    err = capsys.readouterr().err
    assert "drift" in err and "9/9 columns" in err and err.endswith("\n")
    monkeypatch.setattr(config, "DRIFT_BLOCK_BYTES", 1)  # a block per numeric column
    drift(ref, cur, progress=True)
    assert "9/9 columns" in capsys.readouterr().err
    drift(ref, cur, progress=False)
    drift(ref, cur)  # None: stderr is not a terminal here
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="progress"):
        drift(ref, cur, progress="yes")


def test_reference_profile_without_sample_lets_psi_decide():
    from engine.monitor.profile import profile

    rng = np.random.default_rng(0)
    pr = profile({"x": rng.normal(size=5000)}, sample_size=0)
    rep = drift(pr, {"x": rng.normal(size=5000) + 1})
    by = {r["test"]: r for r in rows(rep)}
    for t in ("ks", "wasserstein_normed"):
        if t in by:
            assert by[t]["drifted"] is None and not by[t]["primary"]
            assert "reference profile keeps no sample (sample_size=0)" in by[t]["reason"]
    assert by["psi"]["primary"] and by["psi"]["drifted"]
    assert rep.verdict["tested_columns"] == 1 and rep.drifted_columns == ["x"]


def test_moments_without_blas():
    import inspect

    from engine.monitor.profile_base import moments

    assert "np.dot" not in inspect.getsource(moments)  # no threaded BLAS
    x = np.random.default_rng(0).normal(size=100_001) * 1e3 + 5
    mean, m2 = moments(x)
    assert mean == float(np.sum(x) / len(x))
    assert math.isclose(m2, float(np.sum((x - mean) ** 2)), rel_tol=1e-12)
    assert moments(np.array([-2.0, 0.5, 1.5, 3.0, 3.0])) == (1.2, 17.3)


def test_bad_thresholds_name_the_key(tmp_path, capsys):
    from engine.cli import main

    ref, cur = frame(100, 1), frame(100, 2)
    with pytest.raises(ValueError, match="'pis'"):
        drift(ref, cur, thresholds={"pis": 0.2})
    with pytest.raises(ValueError, match="'x0'.*dict"):
        drift(ref, cur, thresholds={"x0": 0.2})
    with pytest.raises(ValueError, match="'x0'.*unknown test 'kss'"):
        drift(ref, cur, thresholds={"x0": {"kss": 0.2}})
    with pytest.raises(ValueError, match="number"):
        drift(ref, cur, thresholds={"psi": "high"})
    ref.to_pandas().to_parquet(tmp_path / "r.parquet")
    code = main(["monitor", "drift", str(tmp_path / "r.parquet"), str(tmp_path / "r.parquet"),
                 "--thresholds", "notjson"])
    assert code == 2 and "--thresholds" in capsys.readouterr().err


def test_cli_profile_edges_from(tmp_path):
    from engine.cli import main
    from engine.monitor.profile import Profile

    rng = np.random.default_rng(0)
    pa.table({"x": rng.normal(size=3000)}).to_pandas().to_parquet(tmp_path / "r.parquet")
    pa.table({"x": rng.normal(size=3000) + 3}).to_pandas().to_parquet(tmp_path / "c.parquet")
    assert main(["monitor", "profile", str(tmp_path / "r.parquet"), "-o",
                 str(tmp_path / "r.profile")]) == 0
    assert main(["monitor", "profile", str(tmp_path / "c.parquet"), "-o",
                 str(tmp_path / "c.profile"), "--edges-from", str(tmp_path / "r.profile"),
                 "--sample-size", "100"]) == 0
    r, c = Profile.load(tmp_path / "r.profile"), Profile.load(tmp_path / "c.profile")
    np.testing.assert_array_equal(r["x"].edges, c["x"].edges)
    assert main(["monitor", "drift", str(tmp_path / "r.profile"), str(tmp_path / "c.profile"),
                 "--test", "psi"]) == 1


def test_raw_side_sort_casts_into_one_packed_array_bit_identically():
    from engine.kernels import drift as K
    from engine.monitor.profile_inputs import columns_of
    from engine.monitor.profile_numeric import sort_packed

    rng = np.random.default_rng(0)
    n = 3000
    f32 = rng.normal(size=n).astype(np.float32)
    f32[::7] = np.nan
    t = pa.Table.from_batches(pa.table({
        "f32": f32, "nul": pa.array([None if i % 5 == 0 else float(i % 13) - 6 for i in range(n)]),
        "i": rng.integers(-5, 5, n), "b": rng.random(n) < 0.3,
        "z": np.where(rng.random(n) < 0.5, -0.0, 0.0),
        "dec": pa.array([None if i % 9 == 0 else i % 11 for i in range(n)],
                        pa.int64()).cast(pa.decimal128(30, 2)),
        "dict": pa.array([float(i % 4) for i in range(n)]).dictionary_encode(),
    }).to_batches(max_chunksize=777))
    for data in (t, rng.normal(size=(300, 4)).astype(np.float32),
                 {"a": rng.normal(size=100), "b": np.arange(100)}):
        cols, _ = columns_of(data, None)
        a, b = sort_packed(cols), K.sort_columns([c.float64() for c in cols])
        assert a.values.tobytes() == b.values.tobytes()
        np.testing.assert_array_equal(a.offsets, b.offsets)
        np.testing.assert_array_equal(a.nan_counts, b.nan_counts)


def _mixed_tables(n_ref=1500, n_cur=900):
    """37 numeric columns of mixed dtypes and oddities, plus categorical and text columns."""
    out = []
    for side, (n, seed) in enumerate(((n_ref, 11), (n_cur, 12))):
        rng = np.random.default_rng(seed)
        cols = {}
        for i in range(37):
            kind = i % 9
            x = rng.normal(size=n) + (0.4 if side and i % 5 == 0 else 0.0)
            if kind == 0:
                a = pa.array(x.astype(np.float32))
            elif kind == 1:
                a = pa.array(x)
            elif kind == 2:
                a = pa.array(np.round(x * 10).astype(np.int64))
            elif kind == 3:
                a = pa.array(rng.integers(0, 7 + side, size=n).astype(np.uint8))
            elif kind == 4:  # many NaN: a small count, the small-sample tests decide
                x[rng.random(n) < 0.6] = np.nan
                a = pa.array(x.astype(np.float32))
            elif kind == 5:  # nulls
                a = pa.array(x, mask=rng.random(n) < 0.1)
            elif kind == 6:  # constant
                a = pa.array(np.full(n, 3.0))
            elif kind == 7:  # empty after NaN
                a = pa.array(np.full(n, np.nan, dtype=np.float32))
            else:  # infinities and an int32
                x[:5] = np.inf
                a = pa.array(x) if i % 2 else pa.array((x[5:] * 3).astype(np.int32).tolist()
                                                       + [None] * 5, type=pa.int32())
            cols[f"n{i}"] = a
        cols["cat"] = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3 + 0.1 * side, 0.2 - 0.1 * side])
        cols["flag"] = rng.random(n) < 0.3
        words = np.array(["alpha", "beta", "gamma", "delta", "épsilon", "жук", "月"])
        cols["txt"] = [" ".join(rng.choice(words, size=6)) + f" {j}" for j in range(n)]
        if side == 0:
            cols["gone"] = rng.normal(size=n)  # missing from the current data
            cols["retyped"] = rng.normal(size=n)
        else:
            cols["retyped"] = rng.choice(["x", "y"], size=n)  # numeric in the reference only
            cols["extra"] = rng.normal(size=n)  # not in the reference
        out.append(pa.table(cols))
    return out


def _same_report(a, b):
    # repr round-trips floats exactly (and NaN == NaN here, unlike Table.equals)
    assert a.table.schema == b.table.schema
    assert repr(a.table.to_pylist()) == repr(b.table.to_pylist())
    assert repr(a.distributions) == repr(b.distributions)
    b.meta["created"] = a.meta["created"]
    assert a.to_json() == b.to_json()


@pytest.mark.parametrize("variant", ["default", "all_tests", "types", "profile_ref",
                                     "profile_ref_no_sample", "pandas", "ndarray"])
def test_blocks_of_columns_give_identical_reports(monkeypatch, variant):
    """drift() of raw data in blocks of numeric columns equals drift() of all at once, exactly."""
    import importlib

    from engine import config

    profile_mod = importlib.import_module("engine.monitor.profile")
    sides = importlib.import_module("engine.monitor.drift_sides")  # where drift() profiles
    ref, cur = _mixed_tables()
    kw = {}
    if variant == "all_tests":
        kw["tests"] = ["cvm", "ks", "wasserstein", "wasserstein_normed", "psi", "jensenshannon",
                       "hellinger", "chi2", "jensenshannon_trigrams"]
        kw["thresholds"] = {"wasserstein": 0.2}
    elif variant == "types":
        kw["types"] = {"n2": "categorical", "cat": "categorical", "n7": "numeric"}
    elif variant == "profile_ref":
        ref = profile_mod.profile(ref, sample_size=700)
    elif variant == "profile_ref_no_sample":
        ref = profile_mod.profile(ref, sample_size=0)
    elif variant == "pandas":
        ref, cur = ref.to_pandas(), cur.to_pandas()
    elif variant == "ndarray":
        num = [f"n{i}" for i in range(37) if i % 9 not in (5, 8)]  # no nulls in a 2-D array
        ref, cur = (np.column_stack([t.column(c).to_numpy().astype(np.float64) for c in num])
                    for t in (ref, cur))
        kw["columns"] = num

    widths = []
    real = profile_mod.sorted_profile

    def spy(data, **k):
        if not k.get("defer_numeric"):
            widths.append(len(k["columns"]) if k.get("columns") is not None else None)
        return real(data, **k)

    monkeypatch.setattr(sides, "sorted_profile", spy)
    monkeypatch.setattr(config, "DRIFT_BLOCK_BYTES", None)  # everything at once
    whole = drift(ref, cur, **kw)
    n_ref = 1500 if not isinstance(ref, profile_mod.Profile) else 0
    for per in (1, 5, 37):
        widths.clear()
        monkeypatch.setattr(config, "DRIFT_BLOCK_BYTES", per * 8 * (n_ref + 900) + 7)
        _same_report(whole, drift(ref, cur, **kw))
        # only the block's columns are read; several blocks when they do not all fit
        assert widths and all(w is not None and w <= per for w in widths)
        assert len(widths) >= (2 if per < 30 else 1)
    assert whole.table.num_rows > 37
