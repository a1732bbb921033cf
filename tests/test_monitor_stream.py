"""The streaming monitor: windows, calibrated CUSUM alarms, incidents and retrain signals."""

import json

import numpy as np
import pyarrow as pa
import pytest

from engine.monitor import profile
from engine.monitor.signal import RetrainSignal
from engine.monitor.stream import CusumRule, Monitor

WINDOW = 50
N_REF = 5000


def reference(seed=0, n=N_REF):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=n), "b": rng.normal(10, 2, size=n)}


def traffic(rng, windows, shift_at=None, shift=0.5):
    """``windows`` windows of in-control rows; column a moves by ``shift`` sd from
    window ``shift_at`` on."""
    n = windows * WINDOW
    a = rng.normal(size=n)
    if shift_at is not None:
        a[shift_at * WINDOW:] += shift
    return {"a": a, "b": rng.normal(10, 2, size=n)}


class StandInGuard:
    """A guard stand-in: flags a negative `note_code` (an input misfit) and a prediction
    above 200 (an output misfit), as engine.monitor.Guard reports them."""

    def check(self, batch):
        t = batch if isinstance(batch, pa.Table) else pa.table(batch)
        if "note_code" not in t.column_names:
            return _violations([], "note_code", "script", [], "training scripts")
        x = t.column("note_code").to_numpy()
        rows = np.flatnonzero(x < 0)
        return _violations(rows, "note_code", "script", x[rows], "Latin")

    def check_output(self, preds):
        p = np.asarray(preds, dtype=float)
        rows = np.flatnonzero(p > 200)
        return _violations(rows, "prediction", "range", p[rows], "[40, 200]")


def _violations(rows, column, check, values, expected):
    n = len(rows)
    return pa.table({"row": pa.array(np.asarray(rows, dtype=np.int64)),
                     "column": [column] * n, "check": [check] * n,
                     "value": [str(v) for v in values], "expected": [expected] * n})


# ------------------------------------------------------------------ windows
def test_count_windows_profiles_reports_and_merge():
    rng = np.random.default_rng(1)
    mon = Monitor(reference(), window=WINDOW, ert=100, calibration_windows=2000)
    data = traffic(rng, 3)
    assert mon.observe({k: v[:70] for k, v in data.items()}) == 1   # 70 rows: one window
    assert mon.observe({k: v[70:] for k, v in data.items()}) == 2   # 150 rows in all
    assert [w.n_rows for w in mon.windows] == [50, 50, 50]
    assert [(w.start, w.end) for w in mon.windows] == [(0, 50), (50, 100), (100, 150)]
    w0 = mon.windows[0]
    assert w0.profile["a"].count == 50
    assert abs(w0.profile["a"].mean - data["a"][:50].mean()) < 1e-12
    # window profiles merge into the profile of all their rows
    merged = mon.windows[0].profile.merge(mon.windows[1].profile).merge(mon.windows[2].profile)
    whole = profile(data, edges_from=mon.reference)
    assert (merged["a"].hist == whole["a"].hist).all()
    assert abs(merged["b"].mean - data["b"].mean()) < 1e-9
    assert w0.drift_status in ("drift", "no drift")
    assert set(w0.stats) == {"drift"} and w0.violation_rate is None
    # the window statistic equals an independent chi-square on the reference's bins
    edges = mon.reference["a"].edges
    x = {}
    for col in ("a", "b"):
        e = mon.reference[col].edges
        ref_bins = np.clip(np.searchsorted(e, reference()[col], side="right"), 1, len(e) - 1)
        ref_bins[reference()[col] == e[-1]] = len(e) - 1
        p = np.bincount(ref_bins - 1, minlength=len(e) - 1) / N_REF
        p = np.append(np.maximum(p, 0.5 / N_REF), 0.5 / N_REF)
        p /= p.sum()
        win = data[col][:50]
        b = np.clip(np.searchsorted(e, win, side="right"), 1, len(e) - 1)
        b[win == e[-1]] = len(e) - 1
        c = np.append(np.bincount(b - 1, minlength=len(e) - 1), 0)
        x[col] = ((c - 50 * p) ** 2 / (50 * p)).sum()
    assert len(edges) == 11
    assert w0.stats["drift"]["x"] == pytest.approx(x["a"] + x["b"], rel=1e-9)
    json.dumps(w0.to_dict())  # numbers only


def test_time_windows_with_a_time_column():
    rng = np.random.default_rng(2)
    mon = Monitor(reference(), window="1h", time_column="t", ert=100, calibration_windows=2000)
    t = np.sort(rng.uniform(0, 3 * 3600, 300))   # 3 hours of rows
    batch = {"t": t, "a": rng.normal(size=300), "b": rng.normal(10, 2, 300)}
    closed = mon.observe(batch)
    assert closed == 2                  # hours 0 and 1; hour 2 is still open
    assert mon.flush() == 1
    counts = [int(((t >= h * 3600) & (t < (h + 1) * 3600)).sum()) for h in range(3)]
    assert [w.n_rows for w in mon.windows] == counts
    assert [(w.start, w.end) for w in mon.windows] == [(0, 3600), (3600, 7200), (7200, 10800)]
    assert "t" not in mon.windows[0].profile.columns
    # arrival time when there is no time column
    mon2 = Monitor(reference(), window="30s", ert=100, calibration_windows=2000)
    assert mon2.observe(traffic(rng, 1), now=0.0) == 0
    assert mon2.observe(traffic(rng, 1), now=10.0) == 0
    assert mon2.observe(traffic(rng, 1), now=31.0) == 1
    assert mon2.windows[0].n_rows == 2 * WINDOW


def test_bad_arguments_are_named():
    ref = reference()
    for kw, msg in (({"window": 0}, "window must be"), ({"window": "1 week"}, "window must be"),
                    ({"ert": 1}, "ert must be"), ({"guard": object()}, "guard must have"),
                    ({"on_signal": 3}, "on_signal must be"),
                    ({"clear_windows": 0}, "clear_windows must be")):
        with pytest.raises((ValueError, TypeError), match=msg):
            Monitor(ref, **kw)
    mon = Monitor(ref, window=WINDOW, calibration_windows=2000)
    with pytest.raises(ValueError, match="predictions must have one value per row"):
        mon.observe(traffic(np.random.default_rng(0), 1), predictions=[1.0, 2.0])


# ------------------------------------------------------------------ calibration
def test_cusum_rule_matches_a_direct_simulation():
    """The Markov-chain run length of a calibrated rule against run lengths simulated
    directly from the same in-control distribution (standard normal statistics)."""
    rng = np.random.default_rng(3)
    rule = CusumRule(rng.normal(size=50_000), ert=50)
    z = rng.normal(size=200_000)
    s, alarms = 0.0, 0
    for v in z:
        s = max(0.0, s + v - 0.5)
        if s > rule.h:
            alarms, s = alarms + 1, 0.0
    measured = len(z) / alarms
    print(f"CUSUM h={rule.h:.3f}: simulated mean run length {measured:.1f} for ERT 50")
    assert abs(measured - 50) < 0.1 * 50


def _mean_run_length(seeds, windows, ert=100):
    alarms = 0
    for seed in seeds:
        mon = Monitor(reference(), window=WINDOW, ert=ert)
        mon.observe(traffic(np.random.default_rng(1000 + seed), windows))
        alarms += len(mon.alarms)
    return len(seeds) * windows / max(alarms, 1), alarms


def test_false_alarm_rate_is_calibrated_fast():
    measured, alarms = _mean_run_length(range(5), 1000)
    print(f"ERT 100, 5 seeds x 1000 stationary windows: {alarms} alarms, "
          f"mean run length {measured:.1f}")
    assert 60 <= measured <= 140


@pytest.mark.slow
def test_false_alarm_rate_is_calibrated_full():
    measured, alarms = _mean_run_length(range(20), 1000)
    print(f"ERT 100, 20 seeds x 1000 stationary windows: {alarms} alarms, "
          f"mean run length {measured:.1f}")
    assert 70 <= measured <= 130


def test_shift_alerts_after_it_starts_and_one_incident_per_cause():
    """+0.5 sd in one column from window 200. ERT 10,000 windows: a false alarm in the
    first 200 windows has a chance of about 200 / 10,000 = 2% per seed. The reference is
    large (50,000 rows) because the bootstrap takes the reference's empirical bins as the
    truth: with 5,000 rows the true in-control run length at ERT 10,000 is about 6,500."""
    delays, early, n_seeds = [], 0, 20
    ref = reference(n=50_000)
    for seed in range(n_seeds):
        mon = Monitor(ref, window=WINDOW, ert=10_000, seed=0)
        mon.observe(traffic(np.random.default_rng(2000 + seed), 260, shift_at=200))
        first = min((i for i, c in mon.alarms if c == "drift"), default=None)
        assert first is not None, f"seed {seed}: the shift was never detected"
        if first < 200:
            early += 1
            continue
        delays.append(first - 200)
        # alarms keep coming while the shift lasts, incidents do not
        assert len([a for a in mon.alarms if a[0] >= 200]) >= 2
        assert len([i for i in mon.incidents if i.opened >= 200]) == 1
        assert len(mon.signals) == len(mon.incidents)
        assert mon.open_incidents and mon.open_incidents[0].cause == "drift"
    print(f"+0.5 sd shift at window 200: mean delay {np.mean(delays):.2f} windows "
          f"(max {max(delays)}), {early} of {n_seeds} seeds alarmed before window 200")
    assert early <= 0.05 * n_seeds
    assert np.mean(delays) < 10


def test_incident_clears_and_a_new_one_opens():
    rng = np.random.default_rng(5)
    mon = Monitor(reference(), window=WINDOW, ert=1000, clear_windows=10,
                  calibration_windows=5000)
    mon.observe(traffic(rng, 20, shift_at=0, shift=1.5))     # drift: incident opens
    assert len(mon.incidents) == 1 and mon.incidents[0].open
    assert mon.incidents[0].alarms >= 2
    mon.observe(traffic(rng, 80))                              # back in control: clears
    assert not mon.incidents[0].open and mon.incidents[0].closed >= 20 + 9
    mon.observe(traffic(rng, 10, shift_at=0, shift=1.5))     # drifts again: a new incident
    assert len([i for i in mon.incidents if i.cause == "drift"]) == 2
    assert len(mon.signals) == 2


# ------------------------------------------------------------------ misfits and signals
def _misfit_traffic(rng, windows, rate):
    n = windows * WINDOW
    d = traffic(rng, windows)
    d["note_code"] = np.where(rng.random(n) < rate, -1.0, rng.uniform(1, 5, n))
    preds = rng.uniform(40, 200, n)
    return d, preds


def test_many_misfits_without_drift_give_exactly_one_signal(tmp_path):
    from engine import Registry
    from engine.data import snapshot

    rng = np.random.default_rng(6)
    store = str(tmp_path / "store")
    ref = reference()
    ref["note_code"] = rng.uniform(1, 5, N_REF)
    snapshot(pa.table(ref), name="glucose-train", store=store)            # v1: the reference
    reg = Registry(store, index_path=":memory:")
    with reg.start_run("train", inputs=["glucose-train:v1"]) as run:
        run.log_model("glucose", b"weights", aliases=["production"])
    snapshot(pa.table({"a": [1.0]}), name="glucose-train", store=store)   # v2: newer data

    got = []
    mon = Monitor(ref, guard=StandInGuard(), window=WINDOW, ert=10_000, registry=reg,
                  model="glucose@production", on_signal=got.append,
                  report_dir=str(tmp_path / "reports"))
    assert mon._baseline == 0.001        # the reference has no violations: the floor
    d, p = _misfit_traffic(rng, 200, 0.001)
    mon.observe(d, predictions=p)
    d, p = _misfit_traffic(rng, 100, 0.05)
    mon.observe(d, predictions=p)

    assert len(got) == 1, [(s.cause, s.window) for s in got]
    sig = got[0]
    assert isinstance(sig, RetrainSignal) and sig.cause == "violations"
    assert sig.window >= 200
    assert sig.model == "glucose:v1"
    assert (sig.reference_dataset, sig.newest_dataset) == ("glucose-train:v1", "glucose-train:v2")
    ev = sig.evidence
    assert ev["violation_rate"] == mon.windows[sig.window].violation_rate > 0.01
    assert ev["violation_rates"]["script"] == ev["violation_rate"]
    assert ev["baseline_violation_rate"] == 0.001
    assert "output:range" not in ev["violation_rates"]
    # no drift of the features
    drift_alarms = [i for i, c in mon.alarms if c == "drift"]
    assert len(drift_alarms) <= 1
    # the evidence's report, and the record in the registry
    doc = json.loads(open(sig.report_path).read())
    assert doc["format"] == "mlops-engine drift report"
    r = reg.get_run(sig.run_id)
    assert r["name"] == "retrain-signal"
    assert r["params"]["cause"] == "violations"
    assert r["params"]["evidence"]["violation_rate"] == ev["violation_rate"]
    # lineage model -> signal -> dataset: the signal reads the model and its reference data,
    # and points to the newest dataset version
    node = "run:" + sig.run_id
    lin = reg.lineage(node)
    up = {(s, d) for s, d in lin["up"]}
    assert {("glucose:v1", node), ("data:glucose-train:v1", node)} <= up
    assert ("data:glucose-train:v2", node) not in up
    assert (node, "data:glucose-train:v2") in {(s, d) for s, d in lin["down"]}
    down = {(s, d) for s, d in reg.lineage("glucose:v1")["down"]}
    assert {("glucose:v1", node), (node, "data:glucose-train:v2")} <= down


def test_output_misfits_count_as_violations():
    rng = np.random.default_rng(7)
    mon = Monitor(reference(), guard=StandInGuard(), window=WINDOW, ert=1000,
                  calibration_windows=5000)
    d = traffic(rng, 4)
    p = rng.uniform(40, 200, 4 * WINDOW)
    p[[3, 60, 61]] = 2000.0
    mon.observe(d, predictions=p)
    assert mon.windows[0].violation_rates == {"output:range": 1 / WINDOW}
    assert mon.windows[1].violation_rate == 2 / WINDOW
    assert mon.windows[2].violation_rate == 0.0
