"""engine.dist.Checkpointer: checkpoints in the registry and exact resume.

In-process tests run in a world of one with a plain torch optimizer and a stand-in
loader that has ShardedLoader's protocol (``iterate(start)``, ``state_dict``,
``load_state_dict``, ``source_ref``). The tests at the end run real ranks
(``mpiexec -n 2`` / ``-n 3``, tests/mpi/_dist_resume_worker.py): a rank killed with
SIGKILL right after a checkpoint, then a relaunch that resumes, compared exactly with an
uninterrupted run; and a resume on another number of ranks.
"""

# NumPy's legacy global generator is what checkpoints must restore: these files use it.
# ruff: noqa: NPY002
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.dist.checkpoint import (  # noqa: E402
    Checkpointer,
    dumps,
    load_checkpoint,
    loads,
    log_metrics,
)
from engine.registry import Registry, UnknownReference  # noqa: E402
from engine.registry import tensors as st_tensors  # noqa: E402

torch.set_num_threads(1)


def du(path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


class StandInLoader:
    """ShardedLoader's protocol over a fixed float64 data set, shuffled per epoch from the
    seed with its own generator (so only the training loop draws from the global RNGs)."""

    def __init__(self, n=24, batch=4, seed=0, source_ref=None):
        g = torch.Generator().manual_seed(1234)
        self.x = torch.randn(n, 3, generator=g, dtype=torch.float64)
        self.y = torch.randn(n, 1, generator=g, dtype=torch.float64)
        self.n, self.batch, self.seed, self.source_ref = n, batch, seed, source_ref
        self.position = 0
        self.loaded = None

    def indices(self, step):
        epoch, k = divmod(step, self.n // self.batch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return perm[k * self.batch:(k + 1) * self.batch]

    def iterate(self, start=0):
        step = start
        while True:
            self.position = step + 1
            idx = torch.as_tensor(self.indices(step))
            yield step, (self.x[idx], self.y[idx])
            step += 1

    def state_dict(self):
        return {"seed": self.seed, "batch": self.batch, "n": self.n, "position": self.position}

    def load_state_dict(self, state):
        self.loaded = dict(state)
        self.seed, self.position = state["seed"], state["position"]


def build(seed):
    """Model, optimizer, scheduler and loader from scratch (``seed`` sets the initial weights)."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Dropout(0.3),
                                torch.nn.Linear(8, 1)).double()
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.7)
    return model, opt, sched, StandInLoader()


def train(model, opt, sched, loader, ckpt, start, stop, crash_after=None):
    """The user's loop: dropout (torch RNG), input noise (NumPy's global RNG) and a loss
    weight from Python's random module, so every RNG matters. Returns losses by step."""
    losses = {}
    for step, (x, y) in loader.iterate(start):
        if step >= stop:
            break
        x = x + torch.from_numpy(np.random.normal(0, 0.01, x.shape))
        w = 1.0 + random.random()
        loss = w * ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        sched.step()
        losses[step] = loss.item()
        if ckpt is not None:
            ckpt.maybe_save(step, model, opt, loader)
        if crash_after is not None and step == crash_after:
            break
    return losses


def seed_all(s):
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


@pytest.fixture
def reg(tmp_path):
    r = Registry(str(tmp_path / "store"), index_path=":memory:")
    yield r
    r.close()


# ----------------------------------------------------------------------------- round trip


def test_round_trip_restores_model_optimizer_scheduler_loader_and_rng(reg):
    model, opt, sched, loader = build(0)
    ckpt = Checkpointer("rt", registry=reg, scheduler=sched, every_steps=100)
    seed_all(1)
    train(model, opt, sched, loader, None, 0, 5)
    ref = ckpt.save(4, model, opt, loader)
    assert ref == "rt:v1"
    want_params = {k: v.clone() for k, v in model.state_dict().items()}
    want_opt = opt.state_dict()
    want_sched = sched.state_dict()
    want_loader = loader.state_dict()
    # what each RNG draws next, right after the save
    state = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    draws = (torch.rand(3), np.random.rand(3), random.random())
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])

    model2, opt2, sched2, loader2 = build(99)  # different weights, empty optimizer state
    seed_all(77)
    ckpt2 = Checkpointer("rt", registry=Registry(reg.store.root, index_path=":memory:"),
                         scheduler=sched2)
    assert ckpt2.resume(model2, opt2, loader2) == 5
    for k, v in model2.state_dict().items():
        assert torch.equal(v, want_params[k]), k
    got_opt = opt2.state_dict()
    assert got_opt["param_groups"] == want_opt["param_groups"]
    for i, s in want_opt["state"].items():
        for k, v in s.items():
            assert torch.equal(got_opt["state"][i][k], v), (i, k)
    assert sched2.state_dict() == want_sched
    assert loader2.loaded == want_loader
    assert torch.equal(torch.rand(3), draws[0])
    assert np.array_equal(np.random.rand(3), draws[1])
    assert random.random() == draws[2]


def test_resume_without_checkpoint_returns_zero_and_leaves_rng_alone(reg):
    model, opt, _, loader = build(0)
    seed_all(5)
    before = torch.get_rng_state()
    assert Checkpointer("none", registry=reg).resume(model, opt, loader) == 0
    assert torch.equal(torch.get_rng_state(), before)
    assert loader.loaded is None


# ----------------------------------------------------------------------------- exact resume


@pytest.mark.parametrize("crash_after", [5, 7])
def test_resumed_run_is_bit_identical_to_uninterrupted(tmp_path, crash_after):
    steps, every = 10, 3
    # the reference: 10 steps without interruption (and without checkpoints)
    model, opt, sched, loader = build(0)
    seed_all(42)
    ref_losses = train(model, opt, sched, loader, None, 0, steps)
    ref_params = [p.detach().clone() for p in model.parameters()]

    store = str(tmp_path / "store")
    model, opt, sched, loader = build(0)
    seed_all(42)
    reg1 = Registry(store, index_path=":memory:")
    ckpt = Checkpointer("exact", registry=reg1, scheduler=sched, every_steps=every)
    assert ckpt.resume(model, opt, loader) == 0
    first = train(model, opt, sched, loader, ckpt, 0, steps, crash_after=crash_after)
    reg1.close()
    del model, opt, sched, loader, ckpt  # the process "dies"

    model, opt, sched, loader = build(123)  # rebuilt from scratch, other weights
    seed_all(999)  # and other RNG states
    reg2 = Registry(store, index_path=":memory:")
    ckpt = Checkpointer("exact", registry=reg2, scheduler=sched, every_steps=every)
    start = ckpt.resume(model, opt, loader)
    assert start == 6  # the checkpoint after step 5: every 3 steps, position step + 1
    second = train(model, opt, sched, loader, ckpt, start, steps)
    reg2.close()

    for step in range(steps):
        got = second.get(step, first.get(step))
        assert got == ref_losses[step], step  # exactly equal, not close
    for p, q in zip(model.parameters(), ref_params):
        assert torch.equal(p.detach(), q)
    assert not torch.equal(ref_params[0], build(0)[0][0].weight)  # training changed something


def test_resume_on_another_world_size_reseeds_deterministically(reg):
    model, opt, sched, loader = build(0)
    seed_all(3)
    ckpt = Checkpointer("ws", registry=reg)
    ckpt.save(7, model, opt, loader)
    state = load_checkpoint(reg, "ws")
    state["world_size"] = 3  # as if three ranks had saved it
    state["rng"] = state["rng"] * 3
    reg.register("ws", dumps(state), kind="checkpoint", filename="checkpoint.safetensors")
    draws = []
    for _ in range(2):
        seed_all(11)
        assert ckpt.resume(model, opt, loader) == 8
        draws.append((torch.rand(2), np.random.rand(2), random.random()))
    assert torch.equal(draws[0][0], draws[1][0])
    assert np.array_equal(draws[0][1], draws[1][1]) and draws[0][2] == draws[1][2]
    from engine.dist.checkpoint import reseed_rng

    seed = state["rng"][0]["torch_seed"]  # rank 0's torch.manual_seed at the save
    assert seed == 3
    reseed_rng(seed, 8, 0)
    assert torch.equal(torch.rand(2), draws[0][0])
    reseed_rng(seed, 8, 1)  # another rank: another stream
    assert not torch.equal(torch.rand(2), draws[0][0])


# ----------------------------------------------------------------------------- cadence, retention


def test_maybe_save_cadence_step_plus_one(reg):
    model, opt, _, loader = build(0)
    ckpt = Checkpointer("cad", registry=reg, every_steps=3, keep_last=None)
    saved = [step for step in range(10) if ckpt.maybe_save(step, model, opt, loader)]
    assert saved == [2, 5, 8]
    assert [mv.tags["step"] for mv in reg.versions("cad")] == ["3", "6", "9"]
    assert [load_checkpoint(reg, f"cad:v{v}")["step"] for v in (1, 2, 3)] == [3, 6, 9]
    assert ckpt.maybe_save(np.int64(11), model, opt, loader) == "cad:v4"  # numpy ints too


def test_keep_last_deletes_older_versions_but_not_aliased_ones(reg, tmp_path):
    model, opt, _, loader = build(0)
    ckpt = Checkpointer("keep", registry=reg, every_steps=1, keep_last=2)
    x = torch.randn(4, 3, dtype=torch.float64)
    sizes = []
    for step in range(5):
        model(x).sum().backward()
        opt.step()  # every checkpoint has new weights
        opt.zero_grad()
        ckpt.save(step, model, opt, loader)
        if step == 0:
            reg.set_alias("keep:v1", "best")
        sizes.append(du(reg.store.root))
    live = [mv.version for mv in reg.versions("keep")]
    assert live == [1, 4, 5]  # v1 is aliased; v2, v3 are gone
    deleted = [mv.version for mv in reg.versions("keep", include_deleted=True) if mv.deleted]
    assert deleted == [2, 3]
    with pytest.raises(UnknownReference, match="deleted"):
        reg.read_bytes("keep:v2")
    assert any("checkpoint keep_last=2" in h["summary"] for h in reg.history("keep"))
    before = du(reg.store.root)
    reg.gc(grace=0)  # the store's gc reclaims what the deleted versions held
    assert du(reg.store.root) < before
    assert ckpt.resume(model, opt, loader) == 5
    assert load_checkpoint(reg, "keep:v1")["step"] == 1


def test_unchanged_state_costs_little_the_second_time(reg):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.Linear(512, 256))
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 256)).sum().backward()
    opt.step()
    nbytes = 3 * 4 * sum(p.numel() for p in model.parameters())  # weights + exp_avg(_sq)
    ckpt = Checkpointer("dedup", registry=reg, every_steps=1, keep_last=None)
    ckpt.save(0, model, opt)
    s1 = du(reg.store.root)
    ckpt.save(1, model, opt)
    growth = du(reg.store.root) - s1
    assert s1 > nbytes // 2
    assert growth < 200_000 < nbytes // 10, (growth, nbytes)  # the header and RNG chunks only


# ----------------------------------------------------------------------------- run


def test_run_links_versions_and_records_world_and_dataset(reg):
    import pyarrow as pa

    from engine.data import snapshot

    v = snapshot(pa.table({"x": [1.0, 2.0]}), "mnist-data", store=reg.store)
    reg.register("mnist-data", b"a model with the dataset's name")
    model, opt, _, _ = build(0)
    loader = StandInLoader(source_ref=v.ref)
    with reg.start_run("train") as run:
        ckpt = Checkpointer("linked", run=run, every_steps=2)
        assert ckpt.registry is reg
        ckpt.maybe_save(1, model, opt, loader)
        ckpt.maybe_save(3, model, opt, loader)
        log_metrics(run, {"loss": 0.5}, step=3, reduce="mean")
    assert all(mv.run_id == run.run_id for mv in reg.versions("linked"))
    rec = reg.get_run(run.run_id)
    assert rec["tags"]["dist.world_size"] == "1"
    assert rec["tags"]["dist.hosts"]
    assert rec["inputs"] == ["data:mnist-data:v1"]  # the dataset, not the artifact
    assert sorted(rec["outputs"]) == ["linked:v1", "linked:v2"]
    assert rec["metrics"]["loss"]["last"] == 0.5
    assert sum("input" in h["summary"] for h in reg.history()) == 1  # recorded once


def test_resume_prefers_this_runs_checkpoint_then_the_names_latest(reg):
    model, opt, _, loader = build(0)
    with reg.start_run("a") as run_a:
        Checkpointer("pref", run=run_a).save(9, model, opt, loader)   # pref:v1, step 10
    with reg.start_run("b") as run_b:
        Checkpointer("pref", run=run_b).save(2, model, opt, loader)   # pref:v2, step 3
    with reg.start_run("a", run_id=run_a.run_id) as again:            # re-attached run a
        assert Checkpointer("pref", run=again).resume(model, opt, loader) == 10
    with reg.start_run("c") as run_c:                                  # a new run: the latest
        assert Checkpointer("pref", run=run_c).resume(model, opt, loader) == 3
    assert Checkpointer("pref", registry=reg).resume(model, opt, loader, ref="pref:v1") == 10


def test_save_to_a_finished_run_fails_clearly(reg):
    model, opt, _, _ = build(0)
    with reg.start_run("done") as run:
        pass
    from engine.registry import RunFinished

    with pytest.raises(RunFinished):
        Checkpointer("late", run=run).save(0, model, opt)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("engine.dist.loader")
                    or not __import__("importlib").util.find_spec("engine.dist.optimizer"),
                    reason="engine.dist.loader/optimizer not written yet")
def test_with_sharded_loader_and_distributed_optimizer(reg):
    """The real loader (over a dataset version in the store) and optimizer wrapper, in a
    world of one: resume is exact, and the run records the dataset version read."""
    import pyarrow as pa

    import engine.dist as dist
    from engine.data import snapshot

    rows = np.random.default_rng(0).normal(size=(40, 3))
    v = snapshot(pa.table({"a": rows[:, 0], "b": rows[:, 1], "y": rows[:, 2]}), "points",
                 store=reg.store)

    def job(crash_after=None, registry=None, run_id="rid-0001"):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Dropout(0.25),
                                    torch.nn.Linear(4, 1)).double()
        opt = dist.DistributedOptimizer(torch.optim.AdamW(model.parameters(), lr=0.1), model)
        loader = dist.ShardedLoader(v.ref, global_batch_size=8, seed=3, store=reg.store)
        run = registry.start_run("pts", run_id=run_id) if registry is not None else None
        ckpt = Checkpointer("pts", run=run, registry=registry or reg, every_steps=2)
        start = ckpt.resume(model, opt, loader) if registry is not None else 0
        for step, batch in loader.iterate(start):
            if step >= 9:
                break
            x = torch.stack([batch["a"], batch["b"]], 1)
            ((model(x)[:, 0] - batch["y"]) ** 2).mean().backward()
            opt.step()
            opt.zero_grad()
            if registry is not None:
                ckpt.maybe_save(step, model, opt, loader)
            if step == crash_after:
                return None, start
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()]), start

    want, _ = job()
    assert job(crash_after=4, registry=reg)[0] is None  # checkpoints at steps 1 and 3
    torch.manual_seed(77)
    got, start = job(registry=Registry(reg.store.root, index_path=":memory:"))
    assert start == 4 and torch.equal(got, want)
    assert reg.get_run("rid-0001")["inputs"] == ["data:points:v1"]


# ----------------------------------------------------------------------------- layout


def test_layout_is_safetensors_without_pickle_and_round_trips_odd_values():
    state = {"t": torch.arange(6, dtype=torch.float32).reshape(2, 3),
             "bf": torch.tensor([1.5, -2.0], dtype=torch.bfloat16),
             "scalar": torch.tensor(3, dtype=torch.int64),
             "a": np.arange(4, dtype=np.uint32), "npint": np.int64(7), "npf": np.float32(0.25),
             "intkeys": {0: {"step": torch.tensor(2.0)}, 1: {}}, "tup": (1, (2.5, "x"), None),
             "floats": [float("nan"), float("inf"), 0.1, 2 ** 70], "s": "ü", "b": True,
             "slash/key": torch.ones(1), "slash": {"key": torch.zeros(1)}}
    data = dumps(state)
    flat = st_tensors.loads(data, "np")  # a plain safetensors file
    assert "t" in flat and "intkeys/0/step" in flat and "a" in flat
    assert b"__reduce__" not in data and b"\x80\x04" not in data[:16]
    back = loads(data)
    assert torch.equal(back["t"], state["t"]) and back["bf"].dtype == torch.bfloat16
    assert torch.equal(back["bf"], state["bf"]) and back["scalar"].shape == ()
    assert back["a"].dtype == np.uint32 and np.array_equal(back["a"], state["a"])
    assert type(back["npint"]) is np.int64 and back["npint"] == 7
    assert type(back["npf"]) is np.float32 and back["npf"] == 0.25
    assert set(back["intkeys"]) == {0, 1} and torch.equal(back["intkeys"][0]["step"],
                                                          torch.tensor(2.0))
    assert back["tup"] == (1, (2.5, "x"), None)
    assert np.isnan(back["floats"][0]) and back["floats"][1:] == [float("inf"), 0.1, 2 ** 70]
    assert back["s"] == "ü" and back["b"] is True
    assert torch.equal(back["slash/key"], torch.ones(1))
    assert torch.equal(back["slash"]["key"], torch.zeros(1))
    with pytest.raises(ValueError, match="not an engine.dist checkpoint"):
        loads(st_tensors.dumps({"w": np.zeros(2)}))


def test_unsupported_values_are_named():
    with pytest.raises(TypeError, match="optimizer/extra is a set"):
        dumps({"optimizer": {"extra": {1, 2}}})
    with pytest.raises(TypeError, match="model/c.*complex"):
        dumps({"model": {"c": torch.zeros(2, dtype=torch.complex64)}})


# ----------------------------------------------------------------------------- errors


def test_argument_errors(reg):
    model, opt, _, loader = build(0)
    for bad in (0, -1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="every_steps must be a positive integer"):
            Checkpointer("x", registry=reg, every_steps=bad)
    with pytest.raises(ValueError, match="keep_last must be a positive integer"):
        Checkpointer("x", registry=reg, keep_last=0)
    with pytest.raises(ValueError, match="name must be"):
        Checkpointer("bad name!", registry=reg)
    with pytest.raises(TypeError, match="run must be a registry Run"):
        Checkpointer("x", run="run-1")
    with pytest.raises(TypeError, match="world must be an engine.dist.World"):
        Checkpointer("x", registry=reg, world=2)
    with pytest.raises(TypeError, match="scheduler must have state_dict"):
        Checkpointer("x", registry=reg, scheduler=object())
    ckpt = Checkpointer("x", registry=reg)
    with pytest.raises(ValueError, match="step must be an integer >= 0, got -1"):
        ckpt.maybe_save(-1, model, opt, loader)
    with pytest.raises(TypeError, match="step must be an integer, got 1.0"):
        ckpt.save(1.0, model, opt, loader)
    with pytest.raises(TypeError, match="model must be a torch module"):
        ckpt.save(0, {"w": 1}, opt, loader)
    with pytest.raises(TypeError, match="opt must be an optimizer"):
        ckpt.save(0, model, "adam", loader)
    with pytest.raises(TypeError, match="loader must have state_dict"):
        ckpt.save(0, model, opt, [1, 2, 3])
    with pytest.raises(ValueError, match="reduce must be one of mean, sum, max"):
        log_metrics(None, {"a": 1}, reduce="median")
    reg.register("amodel", b"w")
    with pytest.raises(ValueError, match="'amodel' is a model artifact"):
        Checkpointer("amodel", registry=reg).resume(model, opt, loader)
    ckpt.save(0, model, None)  # a checkpoint without optimizer state
    with pytest.raises(ValueError, match="holds no optimizer state"):
        ckpt.resume(model, opt)
    assert reg.versions("x")[-1].run_id is None


# ----------------------------------------------------------------------------- real ranks

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi", "_dist_resume_worker.py")
BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN)
needs_mpi = pytest.mark.skipif(MPIEXEC is None or pytest.importorskip("mpi4py") is None,
                               reason="no mpiexec (pip install mpich mpi4py)")


def mpirun(n, *args, tmp_path, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
               MLOPS_CACHE_DIR=str(tmp_path / "cache"), MLOPS_DIST_TIMEOUT="60")
    return subprocess.run([MPIEXEC, "-n", str(n), sys.executable, WORKER, *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=os.path.dirname(HERE))


def dist_modules() -> bool:
    try:
        import engine.dist.loader  # noqa: F401
        import engine.dist.optimizer  # noqa: F401
    except ImportError:
        return False
    return True


def ids_of(path) -> dict:
    out = {}
    with open(str(path) + ".ids.jsonl") as f:
        for line in f:
            step, ids = __import__("json").loads(line)
            out[step] = ids
    return out


@needs_mpi
def test_kill_a_rank_after_a_checkpoint_then_resume_is_exact(tmp_path):
    """2 ranks, dropout and input noise from each rank's own RNGs: rank 1 SIGKILLs itself
    right after the checkpoint of step 7 (mpiexec fails), the relaunch resumes at step 8
    and ends with the same float64 parameters, byte for byte, as an uninterrupted run."""
    loader = "sharded" if dist_modules() else "plain"
    store, out = tmp_path / "store", tmp_path / "out"
    out.mkdir()
    ref = mpirun(2, "train", store / "ref", out / "ref.npy", 12, "-", loader, "rng",
                 tmp_path=tmp_path)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    crashed = mpirun(2, "train", store / "job", out / "job.npy", 12, "7:1", loader, "rng",
                     tmp_path=tmp_path)
    assert crashed.returncode != 0
    assert not (out / "job.npy").exists()
    resumed = mpirun(2, "train", store / "job", out / "job.npy", 12, "-", loader, "rng",
                     tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed at step 8" in resumed.stdout
    a, b = np.load(out / "ref.npy"), np.load(out / "job.npy")
    assert a.tobytes() == b.tobytes()  # bit-identical
    assert ids_of(out / "job.npy") == ids_of(out / "ref.npy")
    with Registry(str(store / "job"), index_path=":memory:") as reg:
        runs = reg.runs()
        assert len(runs) == 1  # the relaunch re-attached to the job's one run
        assert runs[0]["status"] == "FINISHED" and runs[0]["tags"]["dist.world_size"] == "2"
        # steps 0-7 flushed by the checkpoint of step 7, then 8-11 after the relaunch
        assert runs[0]["metrics"]["loss"]["count"] == 12
        assert [mv.tags["step"] for mv in reg.versions("resume-test")] == ["8", "12"]


@needs_mpi
@pytest.mark.skipif(not dist_modules(), reason="engine.dist.loader/optimizer not importable")
def test_resume_three_ranks_on_two_sees_the_same_global_batches(tmp_path):
    """3 ranks train to step 7 (checkpoint at position 8), rank 2 is killed; 2 ranks
    resume. The global batches (the sample ids the ranks received, in rank order) are
    those of an uninterrupted 2-rank run, and the parameters agree with it within float
    summation tolerance (no dropout or noise: nothing else depends on the rank count)."""
    store, out = tmp_path / "store", tmp_path / "out"
    out.mkdir()
    ref = mpirun(2, "train", store / "ref", out / "ref.npy", 12, "-", "sharded", "norng",
                 tmp_path=tmp_path)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    crashed = mpirun(3, "train", store / "job", out / "job.npy", 12, "7:2", "sharded", "norng",
                     tmp_path=tmp_path)
    assert crashed.returncode != 0
    resumed = mpirun(2, "train", store / "job", out / "job.npy", 12, "-", "sharded", "norng",
                     tmp_path=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed at step 8" in resumed.stdout
    want, got = ids_of(out / "ref.npy"), ids_of(out / "job.npy")
    assert sorted(got) == list(range(12))  # steps 0-7 on 3 ranks, 8-11 on 2
    assert got == want
    a, b = np.load(out / "ref.npy"), np.load(out / "job.npy")
    # observed: at most 2.2e-16 absolute, 1.7e-15 relative after 12 float64 Adam steps
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    assert np.abs(a).max() > 0.1
    with Registry(str(store / "job"), index_path=":memory:") as reg:
        assert reg.get("resume-test:v2").tags["world_size"] == "3"  # v1 went (keep_last=2)
        assert reg.get_run("resume-job-0001")["tags"]["dist.world_size"] == "2"


@needs_mpi
@pytest.mark.skipif(not dist_modules(), reason="engine.dist.loader/optimizer not importable")
def test_example_trains_on_two_ranks_like_on_one(tmp_path):
    """examples/train_mnist_like.py under mpiexec -n 2 follows the 1-rank loss (same global
    batches, averaged gradients), in one registry run, and checkpoints into the store."""
    example = os.path.join(os.path.dirname(HERE), "examples", "train_mnist_like.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
               MLOPS_CACHE_DIR=str(tmp_path / "cache"))
    outs = {}
    for n in (1, 2):
        cmd = [sys.executable, example, "--store", str(tmp_path / f"s{n}"), "--steps", "20",
               "--every", "10", "--samples", "1024"]
        r = subprocess.run(([MPIEXEC, "-n", "2"] if n == 2 else []) + cmd, capture_output=True,
                           text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        outs[n] = r.stdout
    loss = {n: [line for line in out.splitlines() if line.startswith("step 20: loss")]
            for n, out in outs.items()}
    assert loss[1] and loss[1] == loss[2]  # float32, 4 decimals: the same trajectory
    with Registry(str(tmp_path / "s2"), index_path=":memory:") as reg:
        assert [mv.tags["step"] for mv in reg.versions("mnist")] == ["10", "20"]
        assert len(reg.runs()) == 1  # one run for the two ranks
