"""``mlops demo --fast``: the whole loop runs, and the story it prints is the one it tells.

Real processes: the training steps run under ``mlops run -n 2`` (the pip ``mpich``
wheel's ``mpiexec``), the store is on disk in the work directory. The Slurm variant
(``--slurm``) runs in tests/test_slurm.py, on the test cluster.
"""

import json
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("torch")


def demo(*args, timeout=600):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "SLURM_"))}
    return subprocess.run([sys.executable, "-m", "engine.cli", "demo", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def told(tmp_path_factory):
    wd = tmp_path_factory.mktemp("demo")
    r = demo("--fast", "--dir", str(wd))
    return wd, r


def line(out: str, start: str) -> str:
    found = [ln for ln in out.splitlines() if ln.lstrip().startswith(start)]
    assert found, f"no line starting {start!r} in:\n{out}"
    return found[0]


def test_the_story_is_told_step_by_step(told):
    wd, r = told
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    # 1: the data
    assert re.search(r"^1\. data: clinic:v1, 12,000 patients .* glucose \d+-200 mg/dL", out, re.M)
    # 2: trained on two MPI ranks, with checkpoints, a held-out score
    two = line(out, "2. train:")
    assert "glucose:v1 on 2 rank(s) (mlops run -n 2)" in two
    assert "glucose-ckpt-clinic-v1:v" in two
    assert float(re.search(r"held-out MAE ([\d.]+) mg/dL", two).group(1)) < 10
    # 3: profiles logged with the model, promoted through the gate
    three = line(out, "3. profiles:")
    assert "glucose.input-profile:v1" in three and "glucose.output-profile:v1" in three
    assert "glucose:v1 promoted to production through the gate heldout_mae<=" in three
    # 4: the guard: ordinary requests answered, the Russian note rejected with its reason,
    # an out-of-range age and a prediction near 2000 flagged
    four = line(out, "4. serve:")
    assert "100 ordinary requests answered through Guard.wrap" in four
    assert "a Russian note rejected: note: unseen_script (scripts seen in training: Latin" in four
    flags = out.splitlines()[out.splitlines().index(four) + 1]
    assert "age 140 answered" in flags and "flagged: range, expected [" in flags
    big = float(re.search(r"multiplies by 18 predicted (\d+) mg/dL", flags).group(1))
    assert big > 1500 and "flagged: glucose: output_range" in flags
    # 5: one signal, after the drift began; clinic:v2 reuses most of clinic:v1
    five = line(out, "5. monitor:")
    start = int(re.search(r"drift creeping in from window (\d+)", five).group(1))
    at = int(re.search(r"1 RetrainSignal\(s\), at window (\d+) ", five).group(1))
    assert at >= start and "cause drift" in five
    assert "clinic:v2 adds 4,000 labelled patients" in five
    assert float(re.search(r"\((\d+)%, \d+ of \d+ chunks\)", five).group(1)) >= 50
    retrain = line(out, "retrained glucose:v2 on clinic:v2")
    prod, new = map(float, re.findall(r"MAE ([\d.]+)", retrain))
    if new <= prod:
        assert retrain.endswith("glucose:v2 promoted to production")
    else:
        assert retrain.endswith("the gate kept glucose:v1 in production")
    # 6: lineage, the audit log of the alias moves, the report, a verified store
    six = line(out, "6. lineage:")
    assert re.fullmatch(r"6\. lineage: data:clinic:v2 -> run:[0-9a-f]+ -> glucose:v2 @production; "
                        r"audit of production: none -> v1 \(gate heldout_mae<=: [\d.]+, no holder "
                        r"to compare with\) by \S+ at [\d:]+; v1 -> v2 \(gate heldout_mae<=: "
                        r"[\d.]+ vs [\d.]+\) by \S+ at [\d:]+", six), six
    report = re.search(r"HTML drift report of window \d+ \(.*\): (\S+\.html); store: ", out).group(1)
    assert report.startswith(str(wd)) and open(report).read().lstrip().startswith("<!DOCTYPE")
    assert "verified, OK" in out
    assert out.rstrip().endswith(f"done, every step as expected; everything is kept in {wd}")


def test_the_registry_holds_what_the_story_says(told):
    wd, r = told
    assert r.returncode == 0, r.stderr
    from engine.registry import Registry

    reg = Registry(str(wd / ".mlops"))
    try:
        assert reg.get("glucose@production").ref == "glucose:v2"
        signals = [x for x in reg.runs() if x["name"] == "retrain-signal"]
        assert len(signals) == 1  # one incident, one signal: not one per window
        up = reg.lineage("glucose:v1")["down"]
        assert any(dst == "run:" + signals[0]["run_id"] for _, dst in up)
        # both models were scored on the same held-out slice of clinic:v2
        for ref in ("glucose:v1", "glucose:v2"):
            run = reg.get_run(reg.get(ref).run_id)
            assert run["tags"]["heldout_slice"] == "clinic:v2 (patient_id % 5 == 0)"
    finally:
        reg.close()


def test_json_summary_on_one_rank(tmp_path):
    r = demo("--fast", "--dir", str(tmp_path), "--json", "-n", "1")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)  # nothing but the JSON summary on stdout
    assert out["ok"] and all(out["checks"].values()), out["checks"]
    assert out["train_v1"]["world_size"] == 1 and out["train_v1"]["launch"] == "mlops run -n 1"
    assert out["serve"]["rejected"]["check"] == "unseen_script"
    assert [s["cause"] for s in out["monitor"]["signals"]] == ["drift"]
    assert out["lineage"][0] == "data:clinic:v2" and out["lineage"][-1] == "glucose:v2"
    assert out["data_v2"]["reused_bytes"] > out["data_v1"]["bytes"] // 2


def test_a_previous_demo_directory_is_reused_and_another_is_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    r = demo("--fast", "--dir", str(mine))
    assert r.returncode == 2 and "--dir" in r.stderr and "not empty" in r.stderr
    assert os.listdir(mine) == ["notes.txt"]  # nothing written, nothing removed
    # a previous demo's directory: its own files go, anything else stays
    from engine.cli.demo import MARKER, prepare_workdir

    old = tmp_path / "old"
    (old / ".mlops" / "packs").mkdir(parents=True)
    (old / "reports").mkdir()
    (old / MARKER).write_text("{}")
    (old / "notes.txt").write_text("keep me")
    assert prepare_workdir(old) == str(old)
    assert sorted(os.listdir(old)) == [MARKER, "notes.txt"]


def test_without_mpiexec_the_training_runs_on_one_rank_and_says_so(monkeypatch, tmp_path):
    from engine.demo import story

    ran = []
    monkeypatch.setattr(story, "_mpiexec", lambda: None)
    monkeypatch.setattr(story.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or
                        subprocess.CompletedProcess(cmd, 0, "", ""))
    ranks, how = story._train_local(str(tmp_path), "clinic:v1", str(tmp_path / "r.json"), 2,
                                    story.FAST, {})
    assert ranks == 1 and how.startswith("1 rank: no mpiexec here") and "mlops-engine[mpi]" in how
    assert ran[0][ran[0].index("-n") + 1] == "1"


def test_without_torch_the_demo_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    from engine.demo import story

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(story.DemoError, match=r"pip install 'mlops-engine\[torch,mpi\]'"):
        story.run_story(str(tmp_path / "wd"), str(tmp_path / "store"), settings=story.FAST)
    assert not (tmp_path / "store").exists()  # nothing was written


def test_a_store_that_already_has_the_demo_names_is_refused(told, tmp_path):
    wd, r = told
    assert r.returncode == 0, r.stderr
    before = sorted(os.listdir(wd / ".mlops"))
    p = demo("--fast", "--dir", str(tmp_path / "again"), "--store", str(wd / ".mlops"))
    assert p.returncode == 1 and "already holds dataset 'clinic' and model 'glucose'" in p.stderr
    assert sorted(os.listdir(wd / ".mlops")) == before
