"""The whole loop, step by step: data, distributed training, guarded serving, retraining.

:func:`run_story` tells the story of ``mlops demo`` on an embedded store:

1. **data**: a synthetic clinic (:mod:`engine.demo.clinic`) snapshotted as ``clinic:v1``;
2. **train**: :mod:`engine.demo.train` on 2 MPI ranks (``mlops run -n 2``, or
   ``mlops submit`` with ``slurm=True``), which registers ``glucose:v1`` with lineage
   to ``clinic:v1``;
3. **profiles**: the input profile of the training rows and the output profile of the
   model's predictions on the held-out rows, logged with the model, which is then
   promoted to ``production`` through its gate (``heldout_mae<=``);
4. **serve**: requests through ``Guard.wrap(model.predict)``; ordinary ones pass, a
   Russian note is rejected, an out-of-range input and a prediction of about 2000 mg/dL
   are flagged;
5. **monitor**: traffic drifts over several windows; the ``Monitor`` raises one
   ``RetrainSignal``; the labelled new patients become ``clinic:v2`` (chunks of
   ``clinic:v1`` reused), the model is retrained on it, both models are scored on the
   held-out rows of ``clinic:v2`` and the new one is promoted only if it is better;
6. **lineage**: the production model's lineage, the audit log of its alias moves, the
   HTML drift report of the window that signalled, and a verified store.

Each step hands :func:`run_story`'s ``say`` one or two plain lines, and returns its
numbers in the summary (the CLI prints the lines, or the summary with ``--json``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from . import clinic

TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")


class DemoError(RuntimeError):
    """A step of the demo failed (the training process, a job): says which and why."""


@dataclass(frozen=True)
class Settings:
    """The sizes of the story; :data:`FULL` for ``mlops demo``, :data:`FAST` for tests."""

    rows: int = 40_000         # patients in clinic:v1
    new_rows: int = 10_000     # labelled patients of the drifted cohort, added in clinic:v2
    steps: int = 400           # global training steps
    every: int = 100           # checkpoint every N steps
    requests: int = 200        # ordinary requests through the guard
    window: int = 400          # requests per monitor window
    calm_windows: int = 4      # windows before drift creeps in
    drift_windows: int = 8     # windows over which the shift grows to its full size
    ert: float = 200.0         # the monitor's expected windows between false alarms
    calibration_windows: int = 20_000


FULL = Settings()
FAST = Settings(rows=12_000, new_rows=4_000, steps=250, every=50, requests=100, window=250,
                calm_windows=3, drift_windows=6, calibration_windows=5_000)


def _tail(text: str, n: int = 2000) -> str:
    return text[-n:].strip()


# --------------------------------------------------------------------------- training
def _mpiexec():
    from ..cli.run import find_mpiexec

    return find_mpiexec()


def _train_local(store: str, data_ref: str, out: str, ranks: int, s: Settings, env: dict):
    """``mlops run -n RANKS train.py ...``; ``(ranks launched, how)``."""
    how = f"mlops run -n {ranks}"
    if ranks > 1 and _mpiexec() is None:
        ranks, how = 1, "1 rank: no mpiexec here (pip install 'mlops-engine[mpi]' for 2)"
    cmd = [sys.executable, "-m", "engine.cli", "run", "-n", str(ranks), TRAIN_SCRIPT,
           "--store", store, "--data", data_ref, "--out", out, "--steps", str(s.steps),
           "--every", str(s.every)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise DemoError(f"training on {data_ref} failed (exit {p.returncode}): "
                        f"{' '.join(cmd)}\n{_tail(p.stdout)}\n{_tail(p.stderr)}")
    return ranks, how


def _train_slurm(store: str, data_ref: str, out: str, s: Settings, env: dict, say):
    """``mlops submit --nodes 2 train.py ...``, then wait for the job to end;
    ``(ranks launched, how)``."""
    from ..dist.slurm import list_jobs

    cmd = [sys.executable, "-m", "engine.cli", "submit", "--store", store, "--nodes", "2",
           "--ntasks-per-node", "1", "--time", "00:15:00", "--job-name", "glucose-train",
           TRAIN_SCRIPT, "--store", store, "--data", data_ref, "--out", out,
           "--steps", str(s.steps), "--every", str(s.every)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise DemoError(f"mlops submit failed (exit {p.returncode}): {_tail(p.stderr)}")
    job = p.stdout.strip()
    say(f"   submitted Slurm job {job} (mlops submit --nodes 2 --ntasks-per-node 1); waiting")
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        info = [j for j in list_jobs(all=True, store=store) if j.job_id == job]
        if info and not info[0].active and info[0].state != "UNKNOWN":
            if info[0].state != "COMPLETED":
                log = ""
                if info[0].log and os.path.exists(info[0].log):
                    with open(info[0].log, errors="replace") as f:
                        log = _tail(f.read())
                raise DemoError(f"Slurm job {job} ended {info[0].state} "
                                f"({info[0].reason}); its log {info[0].log}:\n{log}")
            return 2, f"Slurm job {job}, 2 nodes x 1 rank (mlops submit)"
        time.sleep(1.0)
    raise DemoError(f"Slurm job {job} did not finish in 15 minutes; see `mlops jobs`")


def train(store: str, data_ref: str, workdir: str, tag: str, s: Settings, *, ranks: int,
          slurm: bool, say) -> dict:
    """Run the training step on ``data_ref``; its result (model ref, run, held-out MAE)."""
    out = os.path.join(workdir, f"train-{tag}.json")
    if os.path.exists(out):
        os.remove(out)
    env = {**os.environ, "MLOPS_HOME": store, "PYTHONUNBUFFERED": "1"}
    for k in ("MLOPS_RUN_ID", "SLURM_JOB_ID"):  # this process is not a job's rank
        env.pop(k, None)
    t0 = time.perf_counter()
    launched, how = (_train_slurm(store, data_ref, out, s, env, say) if slurm
                     else _train_local(store, data_ref, out, ranks, s, env))
    if not os.path.exists(out):
        raise DemoError(f"the training on {data_ref} ended without its result {out}")
    with open(out) as f:
        res = json.load(f)
    res["launch"] = how
    res["ranks_launched"] = launched
    res["wall_seconds"] = time.perf_counter() - t0
    return res


# --------------------------------------------------------------------------- the story
def run_story(workdir: str, store_root: str, *, settings: Settings = FULL, ranks: int = 2,
              slurm: bool = False, seed: int = 0, say=print) -> dict:
    """Tell the story in ``workdir`` on the store at ``store_root``; its summary.

    ``summary["ok"]`` says whether every step did what the story says it does (the
    rejection, the flags, one signal, reuse, a promotion decided on the same slice).
    Raises :class:`DemoError` when a training process or job fails.
    """
    import importlib.util

    import numpy as np
    import pyarrow as pa

    from .. import data as D
    from ..monitor import Guard, Monitor, OutOfDistributionError, drift, profile
    from ..registry import GateRejected, Registry
    from ..store import Store

    if importlib.util.find_spec("torch") is None:
        raise DemoError("the demo trains a PyTorch model and torch is not installed: "
                        "pip install 'mlops-engine[torch,mpi]' (`make demo` installs both)")
    s = settings
    taken = _taken(store_root)
    if taken:
        raise DemoError(f"the store {store_root} already holds {' and '.join(taken)}; the demo "
                        "makes them from scratch: give a new --store (or none: the demo "
                        "embeds one in its work directory)")
    os.makedirs(workdir, exist_ok=True)
    store = Store(store_root)
    summary: dict = {"workdir": workdir, "store": store_root, "settings": asdict(s)}
    checks: dict = {}

    # 1. data ---------------------------------------------------------------------------
    v1_table = clinic.patients(s.rows, seed=seed)
    v1 = D.snapshot(v1_table, "clinic", "the first cohort", store=store, progress=False)
    g = v1_table.column(clinic.TARGET).to_numpy()
    say(f"1. data: {v1.ref}, {s.rows:,} patients (age, BMI, heart rate, HbA1c, a note in "
        f"Spanish; glucose {g.min():.0f}-{g.max():.0f} mg/dL), {v1.bytes / 1024:.0f} KiB "
        f"of Parquet")
    summary["data_v1"] = {"ref": v1.ref, "rows": s.rows, "bytes": v1.bytes}

    # 2. train --------------------------------------------------------------------------
    r1 = train(store_root, v1.ref, workdir, "v1", s, ranks=ranks, slurm=slurm, say=say)
    say(f"2. train: {r1['model']} on {r1['world_size']} rank(s) ({r1['launch']}) in "
        f"{r1['wall_seconds']:.1f} s: {r1['steps']} steps, checkpoints "
        f"{', '.join(r1['checkpoints'])}; held-out MAE {r1['heldout_mae']:.1f} mg/dL on "
        f"{r1['heldout_rows']:,} patients")
    summary["train_v1"] = r1
    checks["trained_on_ranks"] = r1["world_size"] == r1["ranks_launched"]

    # 3. profiles and promotion ---------------------------------------------------------
    reg = Registry(store)
    try:
        m1 = reg.get(r1["model"])
        model1 = clinic.GlucoseModel(reg.load_state_dict(m1.ref, framework="pt"))
        mask1 = clinic.held_out(v1_table)
        train1 = v1_table.filter(pa.array(~mask1))
        # predictions to 0.1 mg/dL, as the clinic reports them
        preds1 = np.round(model1.predict_table(v1_table.filter(pa.array(mask1))).astype(float), 1)
        p_in = reg.log_profile(profile(clinic.inputs(train1)), of=m1.ref, role="input")
        p_out = reg.log_profile(profile({clinic.TARGET: preds1}), of=m1.ref, role="output")
        before = max((h["seq"] for h in reg.history(limit=1)), default=0)
        reg.promote(m1.ref, "production", gate="heldout_mae<=")
        say(f"3. profiles: {p_in.ref} ({len(clinic.FEATURES) + 1} input columns of "
            f"{train1.num_rows:,} training rows) and {p_out.ref} (predictions "
            f"{preds1.min():.0f}-{preds1.max():.0f} mg/dL on the held-out rows); {m1.ref} "
            f"promoted to production through the gate heldout_mae<=")
        summary["profiles"] = {"input": p_in.ref, "output": p_out.ref,
                               "predicted_range": [float(preds1.min()), float(preds1.max())]}

        # 4. guarded serving -----------------------------------------------------------
        guard = Guard.from_registry("glucose@production", reg)
        flagged: list = []
        predict = guard.wrap(model1.predict, on_violation=flagged.extend)
        ordinary = clinic.requests(clinic.patients(s.requests, seed=seed + 1,
                                                   first_id=10_000_000))
        answered = 0
        for req in ordinary:
            predict(req)
            answered += 1
        ordinary_flags = sorted({f"{v.column}: {v.check}" for v in flagged})
        n_ordinary_flagged = len(flagged)
        base = dict(ordinary[0])
        russian = {**base, "note": clinic.RUSSIAN_NOTE}
        try:
            predict(russian)
            rejected = None
        except OutOfDistributionError as exc:
            rejected = exc.violations[0]
        flagged.clear()
        old = {**base, "age": 140.0}
        y_old = predict(old)
        age_flags = [v for v in flagged if v.column == "age"]
        flagged.clear()
        # a faulty build that converts mmol/L to mg/dL a second time (x 18)
        faulty = guard.wrap(lambda r: 18.0 * model1.predict(r), on_violation=flagged.extend)
        y_big = faulty(base)
        out_flags = [v for v in flagged if v.check.startswith("output")]
        say(f"4. serve: {answered} ordinary requests answered through Guard.wrap "
            f"({n_ordinary_flagged} flagged{': ' + ', '.join(ordinary_flags) if ordinary_flags else ''}); "
            f"a Russian note rejected: "
            + (f"{rejected.column}: {rejected.check} ({rejected.expected})" if rejected
               else "NOT REJECTED"))
        say(f"   age 140 answered ({y_old:.0f} mg/dL) and flagged: "
            + (f"{age_flags[0].check}, expected {age_flags[0].expected}" if age_flags
               else "NOT FLAGGED")
            + f"; a build that multiplies by 18 predicted {y_big:.0f} mg/dL, flagged: "
            + (f"{out_flags[0].column}: {out_flags[0].check}, expected {out_flags[0].expected}"
               if out_flags else "NOT FLAGGED"))
        summary["serve"] = {
            "ordinary": answered, "ordinary_flagged": n_ordinary_flagged,
            "rejected": None if rejected is None else rejected._asdict(),
            "out_of_range_input": [v._asdict() for v in age_flags],
            "big_prediction": y_big, "output_flags": [v._asdict() for v in out_flags]}
        checks["russian_rejected"] = rejected is not None and rejected.check == "unseen_script"
        checks["input_range_flagged"] = bool(age_flags) and age_flags[0].check == "range"
        checks["output_flagged"] = bool(out_flags) and y_big > 1000

        # 5. drift, one signal, clinic:v2, retrain, gate on the same slice ---------------
        signals: list = []
        report_dir = os.path.join(workdir, "reports")
        mon = Monitor(clinic.inputs(train1), window=s.window, ert=s.ert, registry=reg,
                      model="glucose@production", reference_dataset=v1.ref,
                      on_signal=signals.append, report_dir=report_dir,
                      calibration_windows=s.calibration_windows, seed=seed)
        n_windows = s.calm_windows + s.drift_windows + 2
        batches = []
        for w in range(n_windows):
            shift = min(1.0, max(0, w - s.calm_windows + 1) / s.drift_windows)
            t = clinic.patients(s.window, seed=seed + 100 + w, shift=shift,
                                first_id=20_000_000 + w * s.window)
            batches.append((shift, t))
            mon.observe(clinic.inputs(t), model1.predict_table(t))
        mon.flush()
        sig = signals[0] if signals else None
        first_drift = s.calm_windows
        seen = (f"5. monitor: {n_windows} windows of {s.window} requests, drift creeping in "
                f"from window {first_drift}: {len(signals)} RetrainSignal(s)")
        if sig is not None:
            seen += (f", at window {sig.window} ({batches[sig.window][0]:.0%} of the shift; "
                     f"cause {sig.cause}, CUSUM {sig.cusum:.1f} > {sig.threshold:.1f}, "
                     f"run:{sig.run_id})")
        summary["monitor"] = {"windows": n_windows, "window_rows": s.window,
                              "drift_from_window": first_drift,
                              "signals": [x.to_dict() for x in signals]}
        checks["one_signal"] = len(signals) == 1 and sig.window >= first_drift

        # the labelled new cohort joins the data: clinic:v2
        new = clinic.patients(s.new_rows, seed=seed + 7, shift=1.0, first_id=s.rows)
        v2_table = pa.concat_tables([v1_table, new])
        v2 = D.snapshot(v2_table, "clinic", "the first cohort and the drifted one",
                        store=store, progress=False)
        d = D.diff(v1.ref, v2.ref, store=store)
        reused = _reused_bytes(v1, v2)
        say(f"{seen}; {v2.ref} adds {s.new_rows:,} labelled patients and reuses "
            f"{reused / 2**20:.1f} MiB of {v1.ref}'s {v1.bytes / 2**20:.1f} MiB "
            f"({reused / v1.bytes:.0%}, {d.chunks_reused} of {d.chunks_total} chunks)")
        summary["data_v2"] = {"ref": v2.ref, "rows": v2_table.num_rows, "bytes": v2.bytes,
                              "reused_bytes": reused, "chunks_reused": d.chunks_reused,
                              "chunks": d.chunks_total}
        checks["chunks_reused"] = reused > v1.bytes // 2

        r2 = train(store_root, v2.ref, workdir, "v2", s, ranks=ranks, slurm=slurm, say=say)
        m2 = reg.get(r2["model"])
        # production, scored on the same held-out slice of clinic:v2, logged on its run
        mask2 = clinic.held_out(v2_table)
        slice2 = v2_table.filter(pa.array(mask2))
        prod_score = clinic.mae(model1, slice2)
        with reg.start_run(reg.get_run(m1.run_id)["name"], run_id=m1.run_id) as again:
            again.log_metric("heldout_mae", prod_score)
            again.set_tag("heldout_slice", f"{v2.ref} (patient_id % 5 == 0)")
        try:
            reg.promote(m2.ref, "production", gate="heldout_mae<=")
            promoted = True
        except GateRejected:
            promoted = False
        say(f"   retrained {m2.ref} on {v2.ref} ({r2['world_size']} ranks, "
            f"{r2['wall_seconds']:.1f} s); on the {int(mask2.sum()):,} held-out patients of "
            f"{v2.ref}: production {m1.ref} MAE {prod_score:.1f}, {m2.ref} MAE "
            f"{r2['heldout_mae']:.1f} mg/dL -> "
            + (f"{m2.ref} promoted to production" if promoted
               else f"the gate kept {m1.ref} in production"))
        summary["retrain"] = {**r2, "production_mae_same_slice": prod_score,
                              "promoted": promoted}
        checks["promoted_only_if_better"] = promoted == (r2["heldout_mae"] <= prod_score)
        if promoted:
            model2 = clinic.GlucoseModel(reg.load_state_dict(m2.ref, framework="pt"))
            train2 = v2_table.filter(pa.array(~mask2))
            reg.log_profile(profile(clinic.inputs(train2)), of=m2.ref, role="input")
            preds2 = np.round(model2.predict_table(slice2).astype(float), 1)
            reg.log_profile(profile({clinic.TARGET: preds2}), of=m2.ref, role="output")

        # 6. lineage, audit log, report, verify -----------------------------------------
        prod = reg.get("glucose@production")
        chain = _chain(reg, prod)
        moves = [h for h in reversed(reg.history("glucose")) if h["seq"] > before
                 and h["summary"].startswith("alias production of glucose")]
        audit = "; ".join(f"{h['summary'].split(': ', 1)[1]} by {h['user']}@{h['host']} at "
                          f"{h['time'][11:19]}" for h in moves)
        say(f"6. lineage: {' -> '.join(chain)} @production; audit of production: {audit}")
        # the last window's drift against the training inputs, as an HTML report
        last = len(batches) - 1
        rep = drift(reg.load_profile(p_in.ref), clinic.inputs(batches[last][1]))
        report = os.path.join(report_dir, f"drift-window-{last}.html")
        rep.to_html(report)
        vr = D.verify(store=store, progress=False)
        say(f"   HTML drift report of window {last} ({rep.summary().split(',')[0]}): {report}; "
            f"store: {vr.chunks_checked:,} chunks in {vr.packs} packs verified, "
            f"{'OK' if vr.ok else 'PROBLEMS: ' + str(vr.problems)}")
        summary["lineage"] = chain
        summary["audit"] = moves
        summary["report"] = report
        summary["verify_ok"] = vr.ok
        checks["lineage"] = (len(chain) == 3 and chain[0] == f"data:{v2.ref}"
                             and chain[2] == prod.ref) if promoted else len(chain) == 3
        checks["audit"] = len(moves) == (2 if promoted else 1)
        checks["verified"] = vr.ok
    finally:
        reg.close()
    summary["checks"] = checks
    summary["ok"] = all(checks.values())
    return summary


def _taken(store_root: str) -> list[str]:
    """What of the demo's names an existing store at ``store_root`` already holds."""
    from .. import data as D
    from ..registry import Registry

    if not os.path.isdir(store_root) or not os.listdir(store_root):
        return []
    taken = [f"dataset {d.name!r}" for d in D.datasets(store=store_root) if d.name == "clinic"]
    reg = Registry(store_root)
    try:
        taken += [f"{reg.kind_of(n)} {n!r}" for n in ("glucose", "clinic")
                  if reg.kind_of(n) is not None]
    finally:
        reg.close()
    return taken


def _reused_bytes(v1, v2) -> int:
    """Bytes of ``v2``'s chunks that ``v1`` already has (stored once)."""
    have = {c["id"] for c in v1.manifest().column("chunks")[0].as_py()}
    return sum(c["length"] for c in v2.manifest().column("chunks")[0].as_py() if c["id"] in have)


def _chain(reg, mv) -> list[str]:
    """``[data:<dataset>, run:<id>, name:vN]``: the version, the run that made it and the
    dataset that run read (the first of each in the lineage graph)."""
    up = reg.lineage(mv.ref)["up"]
    root = f"{mv.name}:v{mv.version}"
    runs = [src for src, dst in up if dst == root and src.startswith("run:")]
    if not runs:
        return [root]
    data = [src for src, dst in up if dst == runs[0] and src.startswith("data:")]
    return ([data[0]] if data else []) + [runs[0], root]
