"""engine.monitor.Guard: per-request and batch checks against training profiles (issue 13).

The language fixtures in tests/data/lang/ are everyday sentences written for these tests:
300 Spanish (training), 100 other Spanish, 100 English, 20 Russian, 20 Ukrainian.
"""

import math
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from kernel_cases import category_cases, range_cases  # tests/ is on sys.path

import engine.kernels as K
from engine.kernels import reference_guard as R
from engine.monitor import Guard, OutOfDistributionError, Violation, profile
from engine.monitor import guard as G
from engine.registry import Registry

LANG = Path(__file__).parent / "data" / "lang"


def sentences(name: str) -> list[str]:
    return (LANG / f"{name}.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def lang_guard():
    return Guard(profile({"q": sentences("es_train")}, types={"q": "text"}))


# ---------------------------------------------------------------------------
# Kernels against their references (also the shape of the entries tests/kernel_cases.py needs)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_range_kernel_matches_reference(backend):
    assert "guard_range" in K.kernels()
    if backend not in K.usable_backends("guard_range"):
        pytest.skip("numba does not load here")
    for label, (x, lo, hi, nan_ok) in range_cases():
        got = K.get("guard_range", backend)(x.copy(), lo, hi, nan_ok)
        want = R.guard_range(x, lo, hi, nan_ok)
        assert got.dtype == np.uint8 and np.array_equal(got, want), label
        # and an independent spelling of the contract
        exp = np.array([3 if (v != v and not nan_ok) else 1 if v < lo else 2 if v > hi else 0
                        for v in x], dtype=np.uint8)
        assert np.array_equal(want, exp), label


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_category_kernel_matches_reference(backend):
    if backend not in K.usable_backends("guard_category"):
        pytest.skip("numba does not load here")
    for label, (idx, seen, null_ok) in category_cases():
        got = K.get("guard_category", backend)(idx.astype(np.int64), seen, null_ok)
        exp = np.array([(0 if null_ok else 3) if j < 0 else (0 if seen[j] else 1) for j in idx],
                       dtype=np.uint8)
        assert np.array_equal(got, exp), label
        assert np.array_equal(R.guard_category(idx, seen, null_ok), exp), label


def test_kernel_wrappers_validate():
    with pytest.raises(ValueError, match="lo <= hi"):
        K.guard.range_codes(np.zeros(3), 2.0, 1.0, nan_ok=False)
    with pytest.raises(ValueError, match="1-D"):
        K.guard.range_codes(np.zeros((2, 2)), 0.0, 1.0, nan_ok=False)
    with pytest.raises(TypeError, match="numbers"):
        K.guard.range_codes(np.array(["a"]), 0.0, 1.0, nan_ok=False)
    with pytest.raises(ValueError, match="seen has 2"):
        K.guard.category_codes(np.array([0, 5]), np.ones(2, bool), null_ok=False)
    assert K.guard.range_codes(np.array([1, 7], np.int32), 0, 5, nan_ok=False).tolist() == [0, 2]
    ok, sc = np.ones(10, bool), np.ones(4)
    data = np.frombuffer(b"abcdef", np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        K.guard.text_scores(data.astype(np.int64), np.array([0, 6]), ok, sc)
    with pytest.raises(ValueError, match="non-decreasing"):
        K.guard.text_scores(data, np.array([0, 4, 2]), ok, sc)
    with pytest.raises(ValueError, match="non-decreasing"):
        K.guard.text_scores(data, np.array([0, 7]), ok, sc)
    with pytest.raises(ValueError, match="scores"):
        K.guard.text_scores(data, np.array([0, 6]), ok, np.zeros(0))
    with pytest.raises(ValueError, match="char_ok"):
        K.guard.text_scores(data, np.array([0, 6]), np.zeros(0, bool), sc)
    unseen, sums, ntri = K.guard.text_scores(data, np.array([0, 2, 6]), ok, sc)
    # code points >= 10 ('a' is 97) fall on the table's last entry, which allows them
    assert (unseen.tolist(), sums.tolist(), ntri.tolist()) == ([0, 0], [0.0, 2.0], [0, 2])


def test_trigram_bucket_is_the_profile_hash():
    rng = np.random.default_rng(1)
    cps = rng.integers(0, 0x10FFFF, size=(200, 3))
    cps = cps[~((cps >= 0xD800) & (cps <= 0xDFFF)).any(axis=1)]
    h = K.guard and G._text.trigram_hash(cps[:, 0], cps[:, 1], cps[:, 2])
    for (a, b, c), hv in zip(cps.tolist(), h.tolist()):
        assert G.trigram_bucket(chr(a) + chr(b) + chr(c), 4096) == hv % 4096
        assert G.trigram_bucket(chr(a) + chr(b) + chr(c), 1000) == hv % 1000


# ---------------------------------------------------------------------------
# Spanish, English, Russian, Ukrainian
# ---------------------------------------------------------------------------


def test_fixtures_are_what_the_issue_asks():
    sizes = {n: len(sentences(n)) for n in ("es_train", "es_test", "en", "ru", "uk")}
    assert sizes == {"es_train": 300, "es_test": 100, "en": 100, "ru": 20, "uk": 20}
    assert not set(sentences("es_train")) & set(sentences("es_test"))


def test_spanish_passes_english_flagged_cyrillic_rejected(lang_guard):
    g = lang_guard
    passed = sum(g.check_row({"q": s}) == [] for s in sentences("es_test"))
    assert passed >= 95, passed
    flagged = [g.check_row({"q": s}) for s in sentences("en")]
    n_flagged = sum(len(v) == 1 and v[0].check == "trigram_distance" and v[0].action == "flag"
                    for v in flagged)
    assert n_flagged >= 95, n_flagged
    for s in sentences("ru") + sentences("uk"):
        with pytest.raises(OutOfDistributionError) as exc:
            g.check_row({"q": s})
        (v,) = exc.value.violations
        assert (v.check, v.action, v.value) == ("unseen_script", "reject", s)
        assert "Latin" in v.expected and "Cyrillic" not in v.expected


def test_language_batch_equals_rows(lang_guard):
    texts = sentences("es_test")[:30] + sentences("en")[:30] + sentences("ru")[:5] + [None, "", "ok"]
    res = lang_guard.check(pa.table({"q": texts}))
    rows = []
    for i, t in enumerate(texts):
        rows += [(i, v.check, v.value) for v in lang_guard.check_row({"q": t},
                                                                    raise_on_reject=False)]
    got = list(zip(res["row"].to_pylist(), res["check"].to_pylist(), res["value"].to_pylist()))
    assert sorted(got) == sorted(rows)
    assert {c for _, c, _ in got} == {"trigram_distance", "unseen_script", "null"}
    # the same strings as chunks of a sliced array, as large_string and as a dictionary:
    # rows are numbered across chunks and slices
    arr = pa.array(["pad"] * 3 + texts)
    chunked = pa.chunked_array([arr.slice(3, 20), arr.slice(23, 0), arr.slice(23)])
    for col in (chunked, chunked.cast(pa.large_string()), chunked.dictionary_encode()):
        res = lang_guard.check(pa.table({"q": col}))
        assert sorted(zip(res["row"].to_pylist(), res["check"].to_pylist(),
                          res["value"].to_pylist())) == sorted(rows)


def test_trigram_threshold_is_the_documented_calibration():
    tr = sentences("es_train")
    p = profile({"q": tr}, types={"q": "text"}, trigram_buckets=512)
    spec = Guard(p)._cols["q"]
    c = p["q"].trigrams.astype(float)
    n_tot, b = c.sum(), len(c)
    loo = [-math.log((max(ci - 1, 0) + 0.5) / (n_tot - 1 + 0.5 * b)) for ci in c]
    mu = sum(ci / n_tot * s for ci, s in zip(c, loo))
    sd = math.sqrt(sum(ci / n_tot * s * s for ci, s in zip(c, loo)) - mu * mu)
    assert spec.mu == pytest.approx(mu, rel=1e-12) and spec.sd == pytest.approx(sd, rel=1e-9)
    assert spec.threshold(16) == pytest.approx(mu + 2.3263478740408408 * sd / 4, rel=1e-9)


# ---------------------------------------------------------------------------
# Tabular inputs
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tab():
    rng = np.random.default_rng(0)
    n = 500
    data = pa.table({"age": rng.uniform(20, 80, n), "plan": rng.choice(["free", "pro"], n),
                     "visits": rng.integers(0, 10, n), "bmi": rng.normal(25, 3, n)})
    data = data.set_column(3, "bmi", pa.array(np.where(np.arange(n) % 50 == 0, np.nan,
                                                       data["bmi"].to_numpy())))
    return data, profile(data, types={"visits": "numeric"})


def test_numeric_range_and_tolerance(tab):
    data, p = tab
    g = Guard(p)
    lo, hi = p["age"].min, p["age"].max
    t = 0.1 * (hi - lo)
    ok = {"age": hi + 0.99 * t, "plan": "free", "visits": 3, "bmi": 25.0}
    assert g.check_row(ok) == []
    (v,) = g.check_row({**ok, "age": hi + 1.01 * t})
    assert (v.column, v.check, v.action, v.expected) == ("age", "range", "flag",
                                                         f"[{lo - t:.10g}, {hi + t:.10g}]")
    assert Guard(p, tolerance=0.0).check_row({**ok, "age": hi + 1e-9})[0].check == "range"
    assert Guard(p, overrides={"age": {"tolerance": 1.0}}).check_row(
        {**ok, "age": hi + 0.9 * (hi - lo)}) == []


def test_null_type_category_missing_extra(tab):
    _, p = tab
    g = Guard(p)
    base = {"age": 30.0, "plan": "pro", "visits": 2, "bmi": 24.0}
    assert g.check_row({**base, "bmi": float("nan")}) == []          # training had NaN in bmi
    assert g.check_row({**base, "bmi": None}) == []
    (v,) = g.check_row({**base, "age": None})
    assert (v.check, v.value) == ("null", None)
    (v,) = g.check_row({**base, "age": float("nan")})
    assert (v.check, v.value) == ("null", "nan")
    (v,) = g.check_row({**base, "age": "54"})
    assert (v.check, v.value, v.action) == ("type", "54", "flag")
    (v,) = g.check_row({**base, "visits": True})
    assert v.check == "type"
    with pytest.raises(OutOfDistributionError, match="unseen_category") as exc:
        g.check_row({**base, "plan": "enterprise"})
    assert exc.value.violations[0].value == "enterprise"
    with pytest.raises(OutOfDistributionError, match="missing_column"):
        g.check_row({k: v for k, v in base.items() if k != "plan"})
    (v,) = g.check_row({**base, "zip": "10115"})
    assert (v.column, v.check, v.value, v.action) == ("zip", "extra_column", "10115", "flag")
    assert g.check_row({**base, "age": np.float64(30.0), "visits": np.int64(3)}) == []


def test_batch_equals_rows_and_uses_the_kernels(tab, monkeypatch):
    data, p = tab
    g = Guard(p)
    rows = [{"age": 30.0, "plan": "pro", "visits": 2, "bmi": 24.0},
            {"age": 300.0, "plan": "gold", "visits": 2, "bmi": 24.0},
            {"age": None, "plan": None, "visits": 99, "bmi": None},
            {"age": -5.0, "plan": "free", "visits": -20, "bmi": float("nan")},
            {"age": float("inf"), "plan": "free", "visits": 1, "bmi": 24.5}]
    batch = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    calls = []
    real = K.guard.range_codes
    monkeypatch.setattr(K.guard, "range_codes", lambda *a, **k: calls.append(a) or real(*a, **k))
    res = g.check(batch)
    assert len(calls) == 3  # one kernel call per numeric column
    assert res.schema == G.RESULT_SCHEMA
    want = []
    for i, r in enumerate(rows):
        want += [(i, v.column, v.check, v.value, v.action)
                 for v in g.check_row(r, raise_on_reject=False)]
    got = list(zip(*(res[c].to_pylist() for c in ("row", "column", "check", "value", "action"))))
    assert sorted(got, key=str) == sorted(want, key=str)
    assert ("bmi" not in res["column"].to_pylist())  # NaN and null allowed there
    with pytest.raises(OutOfDistributionError):
        g.check(batch, raise_on_reject=True)


def test_batch_missing_extra_wrong_dtype_and_empty(tab):
    data, p = tab
    g = Guard(p)
    b = data.slice(0, 4).drop_columns(["plan"]).append_column("zip", pa.array(["1"] * 4))
    b = b.set_column(b.column_names.index("age"), "age", pa.array(["a", "b", None, "d"]))
    res = g.check(b)
    got = set(zip(res["row"].to_pylist(), res["column"].to_pylist(), res["check"].to_pylist()))
    for i in range(4):
        assert (i, "plan", "missing_column") in got and (i, "zip", "extra_column") in got
    assert {(i, "age", "type") for i in (0, 1, 3)} <= got and (2, "age", "null") in got
    empty = g.check(data.slice(0, 0))
    assert empty.num_rows == 0 and empty.schema == G.RESULT_SCHEMA
    assert g.check({"age": [], "plan": [], "visits": [], "bmi": []}).num_rows == 0
    # training rows pass (only the tolerance-free extremes are inside by construction)
    assert g.check(data).num_rows == 0


def test_policies_and_overrides(tab):
    _, p = tab
    base = {"age": 30.0, "plan": "pro", "visits": 2, "bmi": 24.0}
    hi = p["age"].max + 0.1 * (p["age"].max - p["age"].min)
    with pytest.raises(OutOfDistributionError, match="age: range"):
        Guard(p, policy="reject").check_row({**base, "age": 1e6})
    (v,) = Guard(p, policy="clip").check_row({**base, "age": 1e6})
    assert (v.action, v.replacement) == ("clip", hi)
    g = Guard(p, policy={"unseen_category": "flag"}, overrides={"age": "reject"})
    assert g.check_row({**base, "plan": "gold"})[0].action == "flag"
    with pytest.raises(OutOfDistributionError):
        g.check_row({**base, "age": 1e6})
    g = Guard(p, overrides={"plan": {"unseen_category": "flag"}, "visits": {"range": "clip"}})
    assert g.action("plan", "unseen_category") == "flag" and g.action("age", "range") == "flag"
    assert g.action("age", "missing_column") == "reject"
    (v,) = g.check_row({**base, "visits": 1000})
    assert v.action == "clip" and v.replacement == pytest.approx(p["visits"].max + 0.9)
    with pytest.raises(ValueError, match="clip.*numbers only"):
        Guard(p, policy={"unseen_category": "clip"})
    with pytest.raises(ValueError, match="unknown check"):
        Guard(p, policy={"ranges": "flag"})
    with pytest.raises(ValueError, match="policy must be one of"):
        Guard(p, policy="ignore")
    with pytest.raises(ValueError, match="tolerance"):
        Guard(p, tolerance=-1)


# ---------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------


def test_blood_sugar_output():
    rng = np.random.default_rng(3)
    targets = rng.uniform(40, 200, 1000)
    g = Guard(profile({"x": rng.normal(size=100)}), profile({"glucose": targets}))
    res = g.check_output(np.array([180.0, 2000.0, 150.0]))
    assert res["row"].to_pylist() == [1]
    assert res["check"].to_pylist() == ["output_range"] and res["value"].to_pylist() == ["2000.0"]
    assert g.check_output_row(180.0) == []
    (v,) = g.check_output_row(2000.0)
    assert (v.check, v.action) == ("output_range", "flag")
    assert g.check_output(pa.table({"glucose": [2000.0]})).num_rows == 1
    # quantile range: 1% and 99% quantiles of the sample, widened by the tolerance
    gq = Guard(profile({"x": [1.0]}), profile({"glucose": targets}),
               output_quantiles=(0.01, 0.99), tolerance=0.0)
    q99 = np.quantile(np.sort(targets), 0.99)
    assert gq.check_output_row(q99 - 1e-6) == [] and gq.check_output_row(q99 + 1e-6) != []


def test_unseen_class_and_no_output_profile():
    g = Guard(profile({"x": [1.0, 2.0]}), profile({"label": ["cat", "dog", "cat"]}))
    res = g.check_output(["dog", "bird", None])
    assert list(zip(res["row"].to_pylist(), res["check"].to_pylist())) == \
        [(1, "unseen_class"), (2, "null")]
    bare = Guard(profile({"x": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="no output profile.*output_profile"):
        bare.check_output([1.0])
    with pytest.raises(ValueError, match="no output profile"):
        bare.check_output_row(1.0)


def test_wrap():
    rng = np.random.default_rng(4)
    p_in = profile({"age": rng.uniform(20, 80, 200), "plan": rng.choice(["a", "b"], 200)})
    p_out = profile({"y": rng.uniform(40, 200, 200)})
    seen = []
    calls = []

    def predict(x):
        calls.append(x)
        return 5000.0 if x["age"] == 50.0 else 100.0

    guarded = Guard(p_in, p_out, overrides={"age": "clip"}).wrap(predict, on_violation=seen.append)
    assert guarded({"age": 30.0, "plan": "a"}) == 100.0 and seen == []
    assert guarded({"age": 1e6, "plan": "a"}) == 100.0
    hi = p_in["age"].max + 0.1 * (p_in["age"].max - p_in["age"].min)
    assert calls[-1]["age"] == hi and seen[-1][0].action == "clip"
    assert guarded({"age": 50.0, "plan": "a"}) == 5000.0
    assert seen[-1][0].check == "output_range"
    n = len(calls)
    with pytest.raises(OutOfDistributionError, match="unseen_category"):
        guarded({"age": 30.0, "plan": "zzz"})
    assert len(calls) == n  # rejected before the model ran
    # batches: clipped column passed on, outputs checked
    out = Guard(p_in, p_out, overrides={"age": "clip"}).wrap(
        lambda t: np.full(t.num_rows, 100.0) + t["age"].to_numpy() * 0)
    assert out(pa.table({"age": [30.0, 1e6], "plan": ["a", "b"]})).tolist() == [100.0, 100.0]
    with pytest.raises(OutOfDistributionError, match="output_range"):
        Guard(p_in, p_out, policy={"output_range": "reject"}).wrap(
            lambda t: np.array([1e5]))(pa.table({"age": [30.0], "plan": ["a"]}))


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def test_from_registry_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    reg = Registry(tmp_path / "store", index_path=":memory:")
    reg.register("glucose", b"weights v1")
    reg.register("glucose", b"weights v2")
    p_in = profile({"age": rng.uniform(20, 80, 100), "note": sentences("es_train")[:100]},
                   types={"note": "text"})
    p_out = profile({"glucose": rng.uniform(40, 200, 100)})
    mi = reg.log_profile(p_in, of="glucose:v2", role="input")
    mo = reg.log_profile(p_out, of="glucose:v2", role="output")
    assert (mi.ref, mo.ref, mi.kind) == ("glucose.input-profile:v1",
                                         "glucose.output-profile:v1", "profile")
    assert mi.tags == {"profile_of": "glucose:v2", "profile_role": "input"}
    reg.promote("glucose:v2", "production")
    with pytest.raises(Exception, match="no input profile was logged for glucose:v1"):
        Guard.from_registry("glucose:v1", registry=reg)
    g = Guard.from_registry("glucose@production", registry=reg)
    assert g.input_profile.to_bytes() == p_in.to_bytes()
    assert g.output_profile.to_bytes() == p_out.to_bytes()
    assert g.check_output_row(2000.0)[0].check == "output_range"
    with pytest.raises(OutOfDistributionError):
        g.check_row({"age": 30.0, "note": sentences("ru")[0]})
    # a version with only an input profile: no output checks
    reg.log_profile(p_in, of="glucose:v1")
    g1 = Guard.from_registry("glucose:v1", registry=reg, policy="reject")
    assert g1.output_profile is None and g1.action("age", "range") == "reject"
    reg.close()
    g2 = Guard.from_registry("glucose@production", registry=tmp_path / "store")
    assert g2.output_profile is not None
    with pytest.raises(ValueError, match="role must be"):
        Registry(tmp_path / "store", index_path=":memory:").log_profile(p_in, of="glucose:v1",
                                                                        role="target")


def test_log_profile_refuses_non_profiles_and_profiles_as_models(tmp_path):
    reg = Registry(tmp_path / "store", index_path=":memory:")
    reg.register("m", b"w")
    with pytest.raises(ValueError, match="profile"):
        reg.log_profile(b"not a profile", of="m:v1")
    p = reg.log_profile(profile({"x": [1.0]}), of="m:v1")
    with pytest.raises(ValueError, match="a profile"):
        reg.log_profile(profile({"x": [1.0]}), of=p.ref)


def test_violation_and_error_types():
    v = Violation(0, "q", "unseen_script", "жк", "scripts seen in training: Latin", "reject")
    err = OutOfDistributionError([v, v._replace(check="trigram_distance", action="flag")])
    assert isinstance(err, ValueError) and len(err.violations) == 2 and len(err.reasons) == 1
    assert "q: unseen_script" in str(err)


# ---------------------------------------------------------------------------
# the optional language check (py3langid, extra "langid")
# ---------------------------------------------------------------------------


def test_language_check_flags_other_languages(lang_guard):
    p = lang_guard.input_profile
    # the trigram check all but off, so that the language check has to do the work
    g = Guard(p, languages=["es"], text_alpha=1e-12)
    assert g.languages == {"q": ["es"]}
    assert all(g.check_row({"q": s}) == [] for s in sentences("es_test"))
    checks = [[v.check for v in g.check_row({"q": s})] for s in sentences("en")]
    assert sum(c == ["language"] for c in checks) >= 70, checks
    v = next(v for s in sentences("en") for v in g.check_row({"q": s}) if v.check == "language")
    assert v.action == "flag" and "identified 'en'" in v.expected and "language in es" in v.expected
    # batches give the rows' violations, and Cyrillic is still rejected for its script first
    texts = sentences("es_test")[:10] + sentences("en")[:10] + sentences("ru")[:2] + [None, "sí"]
    res = g.check(pa.table({"q": texts}))
    want = sorted((i, v.check) for i, t in enumerate(texts)
                  for v in g.check_row({"q": t}, raise_on_reject=False))
    assert sorted(zip(res["row"].to_pylist(), res["check"].to_pylist())) == want
    assert {"language", "unseen_script", "null"} <= {c for _, c in want}
    # English allowed too: no value identified as English or Spanish is flagged
    g_both = Guard(p, languages={"q": ["es", "en"]}, text_alpha=1e-12)
    both = [v for s in sentences("en") for v in g_both.check_row({"q": s}) if v.check == "language"]
    assert len(both) <= 10 and not [v for v in both if "'en'" in v.expected or "'es'" in v.expected]
    assert Guard(p, languages=["es"], policy={"language": "reject"}).action("q", "language") == "reject"


def test_language_arguments_are_checked(lang_guard):
    p = lang_guard.input_profile
    with pytest.raises(TypeError, match=r"write \['es'\]"):
        Guard(p, languages="es")
    with pytest.raises(ValueError, match="unknown \\['xx'\\]"):
        Guard(p, languages=["es", "xx"])
    with pytest.raises(ValueError, match="not text columns"):
        Guard(p, languages={"age": ["es"]})
    with pytest.raises(ValueError, match="min_confidence"):
        Guard(p, languages=["es"], min_confidence=1.5)


def test_language_without_py3langid_says_what_to_install(lang_guard, monkeypatch):
    from engine.monitor import language

    language.identifier.cache_clear()
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    try:
        with pytest.raises(ImportError, match=r"mlops-engine\[langid\]"):
            Guard(lang_guard.input_profile, languages=["es"])
    finally:
        language.identifier.cache_clear()


def test_screen_returns_accepted_rows_and_a_rejection(tab):
    data, p = tab
    g = Guard(p, overrides={"age": "clip"})
    rows = [{"age": 30.0, "plan": "pro", "visits": 2, "bmi": 24.0},
            {"age": 30.0, "plan": "gold", "visits": 2, "bmi": 24.0},   # unseen category: reject
            {"age": 300.0, "plan": "free", "visits": 2, "bmi": 24.0},  # clipped, served
            {"age": 30.0, "plan": "pro", "visits": 99, "bmi": 24.0}]   # range: flagged, served
    batch = pa.table({k: [r[k] for r in rows] for k in rows[0]})
    s = g.screen(batch)
    assert s.accepted_rows.tolist() == [0, 2, 3] and s.rejection.rows.tolist() == [1]
    assert len(s.rejection) == 1 and s.accepted.num_rows == 3
    hi = next(v.replacement for v in g.check_row(rows[2], raise_on_reject=False))
    assert s.accepted.column("age").to_pylist() == [30.0, hi, 30.0]
    assert s.accepted.column("plan").to_pylist() == ["pro", "free", "pro"]
    (reason,) = s.rejection.reasons(1)
    assert reason.startswith("plan: unseen_category ('gold'")
    assert s.rejection.table().column("row").to_pylist() == [1]
    assert sorted(s.violations.column("check").to_pylist()) == ["range", "range", "unseen_category"]
    # nothing rejected: every row, in order; an empty batch: an empty table
    ok = g.screen(batch.slice(0, 1))
    assert ok.accepted.num_rows == 1 and len(ok.rejection) == 0
    empty = g.screen(batch.slice(0, 0))
    assert empty.accepted.num_rows == 0 and empty.accepted.column_names == batch.column_names
