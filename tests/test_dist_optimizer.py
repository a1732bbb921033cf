"""engine.dist.DistributedOptimizer and broadcast_state.

In process (a world of one): the bucket plan (order, sizes, dtypes), argument errors,
and that the wrapper behaves like the optimizer it wraps (schedulers, state dicts,
parameter groups). Under real ``mpiexec`` ranks (tests/mpi/_dist_grad_worker.py and
_dist_train_worker.py): every rank's averaged gradients against one process on the union
of the batches, with several bucket plans, no_sync accumulation, fp16/bf16/callable
compression, unused parameters, mixed dtypes and the polling thread; broadcast_state;
mismatched models failing on every rank; a 20-step training run following the one-process
trajectory. The MPI tests are skipped when mpi4py or mpiexec is missing; the GPU test
when CUDA is.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import engine.dist as dist  # noqa: E402
from engine.dist.optimizer import DistributedOptimizer, broadcast_state, plan_buckets  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPI_DIR = os.path.join(ROOT, "tests", "mpi")
BIN = os.path.dirname(sys.executable)
MPIEXEC = shutil.which("mpiexec", path=BIN) or shutil.which("mpiexec")
KIB = 1 / 1024  # in MiB


def named(*specs):
    """[(name, tensor)] from (name, numel, dtype) specs."""
    return [(n, torch.zeros(k, dtype=dt)) for n, k, dt in specs]


# ----------------------------------------------------------------------------- the plan


def test_plan_is_reverse_order_with_a_small_first_bucket():
    f32 = torch.float32
    ps = named(("a", 256, f32), ("b", 256, f32), ("c", 256, f32), ("d", 128, f32), ("e", 64, f32))
    # 1 KiB each for a, b, c; 512 B d; 256 B e. First cap 1 KiB, the rest 2 KiB.
    assert plan_buckets(ps, bucket_mb=2 * KIB, first_bucket_mb=1 * KIB) == [[4, 3], [2, 1], [0]]


def test_plan_caps_a_large_parameter_alone_and_never_splits_it():
    f64 = torch.float64
    ps = named(("small", 8, f64), ("huge", 10_000, f64), ("tail", 8, f64))
    assert plan_buckets(ps, bucket_mb=1 * KIB, first_bucket_mb=1 * KIB) == [[2], [1], [0]]
    assert plan_buckets(ps, bucket_mb=1000, first_bucket_mb=1000) == [[2, 1, 0]]


def test_plan_keeps_one_dtype_per_bucket():
    ps = named(("a", 4, torch.float32), ("b", 4, torch.float64), ("c", 4, torch.float32),
               ("d", 4, torch.float64))
    plan = plan_buckets(ps, bucket_mb=1, first_bucket_mb=1)
    assert plan == [[3, 1], [2, 0]]
    for idx in plan:
        assert len({ps[i][1].dtype for i in idx}) == 1


def test_plan_first_cap_is_at_most_bucket_mb():
    ps = named(*[(f"p{i}", 256, torch.float32) for i in range(4)])  # 1 KiB each
    assert plan_buckets(ps, bucket_mb=2 * KIB, first_bucket_mb=100) == [[3, 2], [1, 0]]
    assert plan_buckets(ps, bucket_mb=1e-9, first_bucket_mb=1e-9) == [[3], [2], [1], [0]]


def test_optimizer_buckets_describe_the_plan():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    model[0].bias.requires_grad_(False)
    opt = DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), model,
                               bucket_mb=100 * 4 / 2**20, first_bucket_mb=20 * 4 / 2**20)
    got = [(b.names, b.dtype, b.numel, b.nbytes) for b in opt.buckets]
    # reverse order, frozen 0.bias left out; 8 + 64 B fit the 80 B first bucket, 128 B do not
    assert got == [(("1.bias", "1.weight"), "float32", 18, 72), (("0.weight",), "float32", 32, 128)]


@pytest.mark.parametrize("kw, needle", [
    ({"bucket_mb": -1}, "bucket_mb must be a positive number of MiB, got -1"),
    ({"bucket_mb": 0}, "bucket_mb must be a positive number"),
    ({"bucket_mb": float("nan")}, "bucket_mb must be a positive number"),
    ({"bucket_mb": "25"}, "bucket_mb must be a positive number of MiB, got '25'"),
    ({"bucket_mb": True}, "bucket_mb must be a positive number"),
    ({"first_bucket_mb": 0}, "first_bucket_mb must be a positive number"),
    ({"compression": "fp8"}, "compression must be None, 'fp16', 'bf16' or a callable"),
    ({"compression": 3}, "compression must be None"),
    ({"progress": "always"}, "progress must be 'hooks' or 'thread', got 'always'"),
])
def test_argument_errors(kw, needle):
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError) as e:
        DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), model, **kw)
    assert needle in str(e.value)


def test_wrong_objects_are_refused():
    model = torch.nn.Linear(2, 2)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="optimizer must be a torch.optim.Optimizer"):
        DistributedOptimizer(model, model)
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        DistributedOptimizer(sgd, [model])
    with pytest.raises(ValueError, match="already a DistributedOptimizer"):
        DistributedOptimizer(DistributedOptimizer(sgd, model), model)
    other = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="1 parameter.* not parameters of model"):
        DistributedOptimizer(torch.optim.SGD([model.weight, other.weight], lr=0.1), model)
    opt = DistributedOptimizer(sgd, model)
    with pytest.raises(ValueError, match="not parameters of the model"):
        opt.add_param_group({"params": [other.bias]})
    with pytest.raises(ValueError, match="root must be a rank in 0..0, got 1"):
        broadcast_state(model, sgd, root=1)
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        broadcast_state(sgd)
    with pytest.raises(ValueError, match="optimizer must be a torch optimizer"):
        broadcast_state(model, {"lr": 1})


# ----------------------------------------------------------- it behaves like the wrapped one


def _train(make_opt, steps=6):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 1)).double()
    opt = make_opt(model)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 5, generator=g, dtype=torch.float64)
        model(x).pow(2).mean().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, opt, sched


def test_world_of_one_steps_exactly_like_the_wrapped_optimizer():
    ref, ref_opt, _ = _train(lambda m: torch.optim.AdamW(m.parameters(), lr=0.01))
    got, opt, sched = _train(lambda m: DistributedOptimizer(
        torch.optim.AdamW(m.parameters(), lr=0.01), m))
    for p, q in zip(ref.parameters(), got.parameters()):
        assert torch.equal(p, q)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is opt.optimizer.param_groups
    assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"] == 0.01 * 0.5 ** 3
    assert opt.state is opt.optimizer.state and opt.defaults["lr"] == 0.01
    assert sched.get_last_lr() == [0.01 * 0.5 ** 3]


def test_state_dict_round_trips_through_the_wrapper():
    model, opt, _ = _train(lambda m: DistributedOptimizer(torch.optim.AdamW(m.parameters()), m))
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    fresh = DistributedOptimizer(torch.optim.AdamW(model.parameters()), model)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf))
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for name, v in a["state"][k].items():
            assert torch.equal(v, b["state"][k][name])


def test_hooks_and_param_groups_delegate():
    model = torch.nn.Linear(3, 1)
    extra = torch.nn.Linear(1, 1)
    both = torch.nn.ModuleList([model, extra])
    opt = DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), both)
    seen = []
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append(type(o).__name__))
    opt.add_param_group({"params": extra.parameters(), "lr": 0.5})
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    both[0](torch.ones(2, 3)).sum().backward()
    opt.step()
    assert seen == ["SGD"]
    assert "DistributedOptimizer(SGD" in repr(opt)


def test_no_sync_and_closure_in_a_world_of_one():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1).double()
    opt = DistributedOptimizer(torch.optim.LBFGS(model.parameters(), max_iter=3), model)
    x = torch.randn(6, 3, dtype=torch.float64)
    with opt.no_sync():
        model(x).sum().backward()
    assert model.weight.grad is not None

    def closure():
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss

    first = float(closure().detach())
    opt.step(closure)
    assert float(model(x).pow(2).mean().detach()) < first


def test_engine_dist_exports_them_lazily():
    assert dist.DistributedOptimizer is DistributedOptimizer
    assert dist.broadcast_state is broadcast_state


def test_import_engine_dist_loads_neither_torch_nor_mpi4py():
    code = ("import sys, engine.dist; "
            "assert 'torch' not in sys.modules and 'mpi4py' not in sys.modules, 'loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------------- real ranks

needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (pip install mpich)")


def _mpirun(n, worker, *args, timeout=120):
    pytest.importorskip("mpi4py")
    env = dict(os.environ, OMP_NUM_THREADS="1", MLOPS_DIST_TIMEOUT="60")
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    r = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, os.path.join(MPI_DIR, worker), *args],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    assert r.returncode == 0, f"stdout:\n{r.stdout[-6000:]}\nstderr:\n{r.stderr[-6000:]}"
    assert f"{n} ranks: OK" in r.stdout
    return r


@needs_mpi
@pytest.mark.parametrize("ranks", [2, 3])
def test_averaged_gradients_equal_one_process_on_the_union(ranks):
    """Bucket plans, no_sync, compression, unused parameters, mixed dtypes, the polling
    thread, broadcast_state and mismatched models, in one launch per world size."""
    _mpirun(ranks, "_dist_grad_worker.py")


@needs_mpi
def test_gradients_match_on_the_inter_node_path():
    """4 ranks as 2 nodes x 2 on one host: shared memory off (MPIR_CVAR_NOLOCAL=1), node
    identity from SLURM_NODEID per rank (hydra's MPMD syntax): the network path of MPICH."""
    pytest.importorskip("mpi4py")
    env = dict(os.environ, OMP_NUM_THREADS="1", MLOPS_DIST_TIMEOUT="60", MPIR_CVAR_NOLOCAL="1")
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    node = [sys.executable, os.path.join(MPI_DIR, "_dist_grad_worker.py"), "default", "unused",
            "fp16"]
    r = subprocess.run([MPIEXEC, "-n", "2", "-env", "SLURM_NODEID", "0", *node, ":",
                        "-n", "2", "-env", "SLURM_NODEID", "1", *node],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 0, f"stdout:\n{r.stdout[-6000:]}\nstderr:\n{r.stderr[-6000:]}"
    assert "4 ranks: OK" in r.stdout


@needs_mpi
def test_two_ranks_follow_the_one_process_trajectory():
    _mpirun(2, "_dist_train_worker.py")


@needs_mpi
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_buckets_are_staged_through_host_memory():
    _mpirun(2, "_dist_grad_worker.py", "--device", "cuda", "small", "one", "unused", "fp16",
            "broadcast")
    _mpirun(1, "_dist_grad_worker.py", "--device", "cuda", "small", "broadcast")
