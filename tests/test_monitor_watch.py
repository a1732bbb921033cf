"""`mlops monitor watch|replay` and the Monitor's window log (issue 13).

Every CLI run is checked against a Monitor fed the same data in this process (the
independent reference): the same windows alarm, the same signals are raised.
"""

import json
import signal
import subprocess
import sys
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.monitor import Monitor
from engine.monitor.stream import read_window_log

WINDOW, FILES, ROWS = 50, 10, 100


def mlops(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def events(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def make_dir(root, shift, seed=1, preds=False):
    """ref.parquet and src/part-NN.parquet; files 5.. have column a shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    pq.write_table(pa.table({"a": rng.normal(size=2000), "b": rng.normal(size=2000)}),
                   root / "ref.parquet")
    (root / "src").mkdir()
    batches = []
    for i in range(FILES):
        cols = {"a": rng.normal(size=ROWS) + (shift if i >= 5 else 0.0),
                "b": rng.normal(size=ROWS)}
        if preds:
            cols["pred"] = rng.uniform(40, 200, ROWS) * (10.0 if i >= 5 else 1.0)
        t = pa.table(cols)
        pq.write_table(t, root / "src" / f"part-{i:02d}.parquet")
        batches.append(t)
    return batches


def in_process(root, batches, ert, **kw):
    mon = Monitor(str(root / "ref.parquet"), window=WINDOW, ert=ert, **kw)
    for t in batches:
        mon.observe(t)
    return mon


def test_watch_shifted_directory_alarms_and_one_signal(tmp_path):
    batches = make_dir(tmp_path, shift=1.5)
    r = mlops("monitor", "watch", tmp_path / "src", "--reference", tmp_path / "ref.parquet",
              "--window", WINDOW, "--ert", 100, "--json")
    assert r.returncode == 1, r.stderr
    ev = events(r.stdout)
    alarms = [e["index"] for e in ev if e["event"] == "alarm"]
    signals = [e for e in ev if e["event"] == "signal"]
    mon = in_process(tmp_path, batches, 100)
    assert alarms == [w.index for w in mon.windows if w.alarms]
    assert alarms and min(alarms) >= 10           # the shift starts at window 10 (file 5)
    assert len(signals) == 1 == len(mon.signals)
    assert signals[0]["cause"] == "drift" and signals[0]["window"] == mon.signals[0].window
    assert ev[-1] == {"event": "summary", "files": FILES, "windows": 20,
                      "alarms": len(alarms), "signals": 1, "pending_rows": 0}
    # the text form: one line per alarming window, one per signal
    r = mlops("monitor", "watch", tmp_path / "src", "--reference", tmp_path / "ref.parquet",
              "--window", WINDOW, "--ert", 100)
    assert r.returncode == 1, r.stderr
    lines = r.stdout.splitlines()
    assert sum(ln.startswith("ALARM window") for ln in lines) == len(alarms)
    assert sum(ln.startswith("SIGNAL drift") for ln in lines) == 1


def test_on_signal_gets_the_signal_json_and_a_failing_command_does_not_stop(tmp_path):
    make_dir(tmp_path, shift=1.5)
    out = tmp_path / "sig.json"
    r = mlops("monitor", "watch", tmp_path / "src", "--reference", tmp_path / "ref.parquet",
              "--window", WINDOW, "--ert", 100, "--json", "--on-signal", f"cat > '{out}'; exit 3")
    assert r.returncode == 1, r.stderr
    assert "--on-signal" in r.stderr and "exited 3" in r.stderr
    ev = events(r.stdout)
    sig = json.loads(out.read_text())
    printed = next(e for e in ev if e["event"] == "signal")
    assert sig == {k: v for k, v in printed.items() if k != "event"}
    assert sig["cause"] == "drift" and sig["threshold"] > 0 and sig["cusum"] > sig["threshold"]
    assert ev[-1]["windows"] == 20               # the watch went on after the failure


def test_stationary_directory_exit_0_no_signal(tmp_path):
    batches = make_dir(tmp_path, shift=0.0)
    r = mlops("monitor", "watch", tmp_path / "src", "--reference", tmp_path / "ref.parquet",
              "--window", WINDOW, "--ert", 1000)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "SIGNAL" not in r.stdout
    assert "watched 10 files: 20 windows, 0 alarming, 0 signals" in r.stdout
    assert not in_process(tmp_path, batches, 1000).signals


def test_window_log_and_replay_give_the_live_alarms(tmp_path):
    batches = make_dir(tmp_path, shift=1.0, seed=3)
    log = tmp_path / "log"
    rng = np.random.default_rng(4)
    mon = Monitor(str(tmp_path / "ref.parquet"), window=WINDOW, ert=50, log_dir=log)
    fed = []
    for t in batches:
        p = rng.uniform(0, 1, t.num_rows)
        fed.append((t, p))
        mon.observe(t, predictions=p)
    live = [w.index for w in mon.windows if w.alarms]
    assert live, "the shift must alarm for this test to mean anything"
    # the log: one file per window, its rows and predictions as fed, no temporary files
    assert sorted(p.name for p in log.iterdir()) == [f"window-{i:06d}.parquet"
                                                     for i in range(20)]
    logged = read_window_log(log)
    rows = pa.concat_tables([t for _, t, _ in logged])
    assert rows.equals(pa.concat_tables([t for t, _ in fed]))
    assert np.array_equal(np.concatenate([p for _, _, p in logged]),
                          np.concatenate([p for _, p in fed]))
    r = mlops("monitor", "replay", log, "--reference", tmp_path / "ref.parquet", "--ert", 50,
              "--json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert [w["logged_window"] for w in doc["alerted"]] == live
    assert len(doc["signals"]) == len(mon.signals)
    r = mlops("monitor", "replay", log, "--reference", tmp_path / "ref.parquet", "--ert", 50)
    assert sum(ln.startswith("ALARM window") for ln in r.stdout.splitlines()) == len(live)


def test_watch_with_model_guard_and_predictions(tmp_path):
    from engine import Registry
    from engine.monitor import profile

    batches = make_dir(tmp_path, shift=0.0, preds=True)
    store = tmp_path / "store"
    ref = pq.read_table(tmp_path / "ref.parquet")
    with Registry(str(store)) as reg:
        reg.register("glucose", b"weights", aliases=["production"])
        reg.log_profile(profile(ref), of="glucose@production", role="input")
        reg.log_profile(profile({"pred": np.random.default_rng(0).uniform(40, 200, 2000)}),
                        of="glucose@production", role="output")
    r = mlops("monitor", "watch", tmp_path / "src", "--reference", tmp_path / "ref.parquet",
              "--model", "glucose@production", "--predictions", "pred", "--window", WINDOW,
              "--ert", 100, "--store", store, "--json")
    assert r.returncode == 1, r.stderr
    ev = events(r.stdout)
    sigs = [e for e in ev if e["event"] == "signal"]
    assert [s["cause"] for s in sigs] == ["violations"]
    assert sigs[0]["model"] == "glucose:v1" and sigs[0]["window"] >= 10
    assert sigs[0]["evidence"]["violation_rates"]["output:output_range"] > 0.5
    assert all(e["index"] >= 10 for e in ev if e["event"] == "alarm")
    with Registry(str(store), create=False) as reg:
        run = reg.get_run(sigs[0]["run_id"])
        assert run["name"] == "retrain-signal" and run["params"]["cause"] == "violations"
    # the predictions column was not profiled as a feature: the features did not drift
    assert all(e["alarms"] == ["violations"] for e in ev if e["event"] == "alarm")
    assert len(batches) == FILES


def test_follow_picks_up_new_files_and_ends_on_sigterm(tmp_path):
    make_dir(tmp_path, shift=0.0)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "monitor", "watch", str(tmp_path / "src"),
         "--reference", str(tmp_path / "ref.parquet"), "--window", str(WINDOW), "--ert", "1000",
         "--json", "--follow", "--interval", "0.2"], stdout=subprocess.PIPE, text=True)
    killer = threading.Timer(60, proc.kill)  # a hang fails the test, it does not block it
    killer.start()
    try:
        # a file that arrives while the watch runs: shifted by 3 sigma, so it alarms
        rng = np.random.default_rng(9)
        t = pa.table({"a": rng.normal(size=2 * ROWS) + 3.0, "b": rng.normal(size=2 * ROWS)})
        pq.write_table(t, tmp_path / "part-99.parquet")
        (tmp_path / "part-99.parquet").rename(tmp_path / "src" / "part-99.parquet")
        seen = []
        for line in proc.stdout:
            seen.append(json.loads(line))
            if seen[-1]["event"] == "signal":
                break
        proc.send_signal(signal.SIGTERM)
        rest = [json.loads(line) for line in proc.stdout]
        rc = proc.wait()
    finally:
        killer.cancel()
    assert seen and seen[-1]["event"] == "signal" and seen[-1]["window"] >= 20
    assert rc == 1
    assert rest[-1]["event"] == "summary" and rest[-1]["files"] == FILES + 1
    assert rest[-1]["windows"] == 24


def test_sigterm_while_a_signal_is_handled_still_counts_it(tmp_path):
    # the signal's line is out and its --on-signal command runs when SIGTERM arrives: the
    # watch must still end with status 1 and count the signal in its summary
    make_dir(tmp_path, shift=1.5)
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "monitor", "watch", str(tmp_path / "src"),
         "--reference", str(tmp_path / "ref.parquet"), "--window", str(WINDOW), "--ert", "100",
         "--json", "--follow", "--interval", "0.2", "--on-signal", "sleep 2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killer = threading.Timer(60, proc.kill)
    killer.start()
    try:
        for line in proc.stdout:
            if json.loads(line)["event"] == "signal":
                break
        proc.send_signal(signal.SIGTERM)  # while `sleep 2` runs
        rest = [json.loads(line) for line in proc.stdout]
        rc = proc.wait()
    finally:
        killer.cancel()
    assert rc == 1 and rest[-1]["event"] == "summary" and rest[-1]["signals"] >= 1, rest


@pytest.mark.parametrize("args, msg", [
    (["watch", "MISSING", "--window", "50"], "SOURCE"),
    (["watch", "SRC", "--window", "0"], "argument --window"),
    (["watch", "SRC", "--window", "often"], "argument --window"),
    (["watch", "SRC", "--ert", "1"], "argument --ert"),
    (["watch", "SRC", "--window", "50", "--predictions", "nope"], "--predictions 'nope'"),
    (["replay", "MISSING"], "LOGDIR"),
])
def test_bad_arguments_exit_2(tmp_path, args, msg):
    make_dir(tmp_path, shift=0.0)
    args = [str(tmp_path / "missing") if a == "MISSING" else
            str(tmp_path / "src") if a == "SRC" else a for a in args]
    r = mlops("monitor", *args, "--reference", tmp_path / "ref.parquet")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert msg in r.stderr
