"""Data-parallel training step, side by side: this engine's ``DistributedOptimizer``, torch DDP
over gloo, and raw MPI (issue 12's benchmark).

Two ranks under the ``mpiexec`` of the installed ``mpich`` wheel, one compute thread each
(``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``), an MLP 2048 -> 4096 -> 4096 -> 1024
(29.4 M float32 parameters, 117 MB of gradients), SGD, batch 16 and 64 rows per rank,
the same seeded batches for every contender. Measured, mean per step over ``--repeat``
steps after ``--warmup`` (the slowest rank's time):

1. raw: ``comm.Allreduce(IN_PLACE, buf)`` of the gradients' bytes in one float32 buffer,
   timed as the engine's sync is: the buffer just written (as backward writes gradients),
   the ranks leaving a barrier together (also printed: back to back on an untouched
   buffer, and Allreduce followed by the 1/size scaling pass that any average needs);
2. compute: forward + backward + ``optimizer.step()`` + ``zero_grad()`` with the plain
   optimizer (what a step costs with no communication: the ``no_sync`` step);
3. engine: the same step through ``DistributedOptimizer`` (default 25 MiB buckets);
   ``sync`` is its gradient averaging alone, ``opt.synchronize()`` after a ``no_sync()``
   backward (scaling into the buckets, every allreduce, the unused-parameter counts);
4. DDP-gloo: ``DistributedDataParallel`` of the same model (default buckets), process
   group ``gloo`` over a FileStore (rank and size from MPI, ``GLOO_SOCKET_IFNAME=lo``
   unless set); ``gloo allreduce`` is ``dist.all_reduce`` of the same bytes.

Derived: busbw = bytes x 2(n-1)/n / time; exposed sync = step - compute; overlap =
(compute + sync - step) / sync; and the issue's targets: engine sync busbw >= 0.9 x raw,
engine step <= compute + 1.1 x raw, DDP-gloo step / engine step >= 1.25 at batch 16.

Overlap where a core is free: the same model's gradients from a stand-in backward that
sleeps instead of computing (one autograd node per parameter, in backward order, sleeping
in proportion to the parameter's size for a total equal to the measured compute-only
backward), so the rank's core is idle while "compute" runs. Timed: stand-in backward +
``synchronize()``, with the default ``progress="hooks"``, with ``progress="thread"``, and
in a second launch with MPICH's progress thread (``MPIR_CVAR_ASYNC_PROGRESS=1``), which
also re-measures raw, compute and the engine step to show what that thread costs when
the ranks fill the cores.

Usage:
    python bench/bench_dist.py [--batches 16,64] [--repeat 10] [--warmup 3] [--json PATH]
    python bench/bench_dist.py --quick        # tiny model, a smoke test of the script
The script starts its own ranks (``mpiexec -n 2``, twice); ``--worker`` is that inner mode.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FULL_DIMS = (2048, 4096, 4096, 1024)
QUICK_DIMS = (128, 256, 256, 64)


# ----------------------------------------------------------------------------- worker


def _worker(args) -> dict:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    import numpy as np
    import torch
    from mpi4py import MPI

    import engine.dist as dist

    torch.set_num_threads(1)
    w = dist.init()
    comm, rank, size = w.comm, w.rank, w.size
    dims = QUICK_DIMS if args.quick else FULL_DIMS
    batches = [int(b) for b in args.batches.split(",")]

    def make():
        torch.manual_seed(0)
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers[:-1])

    def data(batch, i):
        g = torch.Generator().manual_seed(1000 * i + rank)
        return torch.randn(batch, dims[0], generator=g), torch.randn(batch, dims[-1], generator=g)

    def slowest(seconds: float) -> float:
        return comm.allreduce(seconds, op=MPI.MAX)

    def per_step(fn, repeat=args.repeat, warmup=args.warmup) -> float:
        for i in range(warmup):
            fn(i)
        comm.Barrier()
        t0 = time.perf_counter()
        for i in range(repeat):
            fn(warmup + i)
        return slowest((time.perf_counter() - t0) / repeat)

    model = make()
    n_params = sum(p.numel() for p in model.parameters())
    nbytes = n_params * 4
    out = {"variant": args.variant, "ranks": size, "dims": list(dims), "params": n_params,
           "bytes": nbytes, "async_progress": os.environ.get("MPIR_CVAR_ASYNC_PROGRESS", "0"),
           "batches": {}}

    buf = np.ones(n_params, np.float32)
    out["raw_hot_s"] = per_step(lambda i: comm.Allreduce(MPI.IN_PLACE, buf))
    # as the engine's sync is timed: the buffer just written (backward writes the
    # gradients), the ranks leaving a barrier together, only the Allreduce timed
    raw_times: list = []

    def raw_fresh(i):
        buf.fill(float(i))
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf)
        raw_times.append(time.perf_counter() - t0)
    per_step(raw_fresh)
    out["raw_s"] = slowest(float(np.mean(raw_times[args.warmup:])))
    # and raw averaging: the same Allreduce, then the 1/size pass any average needs
    avg_times: list = []
    tbuf = torch.from_numpy(buf)

    def raw_average(i):
        buf.fill(float(i))
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf)
        tbuf.mul_(1.0 / size)
        avg_times.append(time.perf_counter() - t0)
    per_step(raw_average)
    out["raw_avg_s"] = slowest(float(np.mean(avg_times[args.warmup:])))

    def train_step(m, opt, batch):
        def fn(i):
            x, y = data(batch, i)
            torch.nn.functional.mse_loss(m(x), y).backward()
            opt.step()
            opt.zero_grad()
        return fn

    sleep_total = {}
    for batch in batches:
        r = out["batches"][str(batch)] = {}
        m = make()
        r["compute_s"] = per_step(train_step(m, torch.optim.SGD(m.parameters(), lr=1e-3), batch))
        # backward alone, for the sleeping stand-in
        x, y = data(batch, 0)

        def backward_only(i, m=m, x=x, y=y):
            torch.nn.functional.mse_loss(m(x), y).backward()
            m.zero_grad()
        fwd = per_step(lambda i, m=m, x=x: m(x).sum().detach())
        sleep_total[batch] = max(per_step(backward_only) - fwd, 1e-3)
        del m
        m = make()
        opt = dist.DistributedOptimizer(torch.optim.SGD(m.parameters(), lr=1e-3), m)
        r["engine_s"] = per_step(train_step(m, opt, batch))

        times: list = []

        def sync_only(i, m=m, opt=opt, batch=batch, times=times):
            x, y = data(batch, i)
            with opt.no_sync():
                torch.nn.functional.mse_loss(m(x), y).backward()
            comm.Barrier()
            t0 = time.perf_counter()
            opt.synchronize()
            times.append(time.perf_counter() - t0)
            opt.step()
            opt.zero_grad()
        per_step(sync_only)
        r["engine_sync_s"] = slowest(float(np.mean(times[args.warmup:])))
        opt.remove_hooks()
        del m, opt
        if args.variant == "base" and not args.no_ddp:
            r.update(_ddp(args, make, data, batch, per_step, comm, rank, size, nbytes))

    # the sleeping stand-in: the rank's core is free while "backward" runs
    batch = batches[0]
    modes = ["hooks", "thread"] if args.variant == "base" else ["hooks"]
    sl = out["sleep"] = {"backward_s": sleep_total[batch], "batch": batch}
    for mode in ["none", *modes]:
        m = make()
        params = list(m.parameters())
        opt = torch.optim.SGD(params, lr=1e-3)  # "none": the stand-in step without any sync
        if mode != "none":
            opt = dist.DistributedOptimizer(opt, m, progress=mode)
        grads = [torch.randn(p.shape) * 1e-3 for p in params]
        secs = [sleep_total[batch] * p.numel() / n_params for p in params]

        def fake_step(i, params=params, opt=opt, grads=grads, secs=secs):
            y = torch.zeros(())
            for p, g, s in zip(params, grads, secs):
                y = _SleepGrad.apply(y, p, s, g)
            y.backward()  # sleeps layer by layer, then synchronize at the end of backward
            opt.step()
            opt.zero_grad()
        sl[f"step_{mode}_s"] = per_step(fake_step)
        if mode != "none":
            opt.remove_hooks()
        del m, opt
    return out


def _sleep_grad_class():
    import torch

    class SleepGrad(torch.autograd.Function):
        """Identity on a scalar chain; backward sleeps, then hands ``p`` a fixed gradient."""

        @staticmethod
        def forward(ctx, y, p, secs, grad):
            ctx.secs, ctx.grad = secs, grad
            return y.clone()

        @staticmethod
        def backward(ctx, gy):
            time.sleep(ctx.secs)
            return gy, ctx.grad.clone(), None, None

    return SleepGrad


class _Lazy:
    cls = None

    def apply(self, *a):
        if _Lazy.cls is None:
            _Lazy.cls = _sleep_grad_class()
        return _Lazy.cls.apply(*a)


_SleepGrad = _Lazy()


def _ddp(args, make, data, batch, per_step, comm, rank, size, nbytes) -> dict:
    import torch
    import torch.distributed as tdist

    path = comm.bcast(tempfile.mkdtemp(prefix="bench-dist-") if rank == 0 else None)
    store = tdist.FileStore(os.path.join(path, "store"), size)
    tdist.init_process_group("gloo", store=store, rank=rank, world_size=size)
    try:
        m = torch.nn.parallel.DistributedDataParallel(make())
        opt = torch.optim.SGD(m.parameters(), lr=1e-3)

        def fn(i):
            x, y = data(batch, i)
            torch.nn.functional.mse_loss(m(x), y).backward()
            opt.step()
            opt.zero_grad()
        step = per_step(fn)
        t = torch.ones(nbytes // 4)
        ar = per_step(lambda i: tdist.all_reduce(t))
    finally:
        tdist.destroy_process_group()
        comm.Barrier()
        if rank == 0:
            shutil.rmtree(path, ignore_errors=True)
    return {"ddp_s": step, "gloo_allreduce_s": ar}


# ----------------------------------------------------------------------------- driver


def _launch(args, variant: str, extra_env: dict) -> dict:
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("no mpiexec: pip install mpich mpi4py (or make install-dev)")
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra_env)
    cmd = [mpiexec, "-n", str(args.ranks), sys.executable, os.path.abspath(__file__), "--worker",
           "--variant", variant, "--batches", args.batches, "--repeat", str(args.repeat),
           "--warmup", str(args.warmup)] + (["--quick"] if args.quick else []) + \
          (["--no-ddp"] if args.no_ddp else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _busbw(nbytes, n, s):
    return nbytes * 2 * (n - 1) / n / s / 1e9


def _report(base: dict, asy: dict) -> list[str]:
    n, nb = base["ranks"], base["bytes"]
    raw = base["raw_s"]
    ms = lambda s: f"{s * 1e3:8.1f}"  # noqa: E731
    lines = [f"{n} ranks, MLP {'->'.join(map(str, base['dims']))}: {base['params'] / 1e6:.1f} M "
             f"float32 parameters, {nb / 1e6:.1f} MB of gradients",
             f"raw MPI Allreduce      {ms(raw)} ms   busbw {_busbw(nb, n, raw):6.2f} GB/s"
             "   (buffer just written, after a barrier: as the engine's sync is timed)",
             f"  back to back         {ms(base['raw_hot_s'])} ms   busbw "
             f"{_busbw(nb, n, base['raw_hot_s']):6.2f} GB/s   (the same untouched buffer, repeated)",
             f"  then x 1/size        {ms(base['raw_avg_s'])} ms   busbw "
             f"{_busbw(nb, n, base['raw_avg_s']):6.2f} GB/s   (raw averaging: Allreduce + one "
             "scaling pass)"]
    for batch, r in base["batches"].items():
        c, e, s = r["compute_s"], r["engine_s"], r["engine_sync_s"]
        lines += ["", f"batch {batch} per rank                      step ms   vs compute",
                  f"  compute only (no sync)          {ms(c)}",
                  f"  engine DistributedOptimizer     {ms(e)}   +{(e - c) * 1e3:.1f} ms exposed",
                  f"  engine gradient sync alone      {ms(s)}   busbw {_busbw(nb, n, s):.2f} GB/s "
                  f"= {raw / s:.2f} x raw (target >= 0.90), "
                  f"{base['raw_avg_s'] / s:.2f} x raw averaging",
                  f"  engine overlap                  {(c + s - e) / s:8.2f}   (compute + sync - step) / sync",
                  f"  engine step / (compute + 1.1 raw) {e / (c + 1.1 * raw):6.2f}   (target <= 1.00)"]
        if "ddp_s" in r:
            d, g = r["ddp_s"], r["gloo_allreduce_s"]
            lines += [f"  DDP-gloo                        {ms(d)}   DDP / engine = {d / e:.2f} x "
                      f"(target >= 1.25 at batch 16)",
                      f"  gloo allreduce alone            {ms(g)}   busbw {_busbw(nb, n, g):.2f} GB/s"]
    sl = base["sleep"]
    b = sl["batch"]
    sync = base["batches"][str(b)]["engine_sync_s"]
    base_step = sl["step_none_s"]  # sleep + gradient clones + SGD, no communication
    lines += ["", f"sleeping stand-in for compute (batch {b}: backward {sl['backward_s'] * 1e3:.1f} ms "
              "of sleep, the core idle), step = stand-in backward + sync + SGD",
              f"  without sync (plain SGD)        {ms(base_step)}",
              "  progress                        step ms   overlap = (no-sync step + sync - step) / sync"]
    rows = [("hooks", sl.get("step_hooks_s"), sync, base_step),
            ("thread", sl.get("step_thread_s"), sync, base_step)]
    if asy:  # that launch's own no-sync step: MPICH's progress thread slows it too
        rows.append(("MPIR_CVAR_ASYNC_PROGRESS=1", asy["sleep"]["step_hooks_s"],
                     asy["batches"][str(b)]["engine_sync_s"], asy["sleep"]["step_none_s"]))
    for name, st, sy, bs in rows:
        if st is not None:
            lines.append(f"  {name:30s}  {ms(st)}   {(bs + sy - st) / sy:6.2f}")
    if asy:
        ab = asy["batches"][str(b)]
        lines += ["", f"with MPIR_CVAR_ASYNC_PROGRESS=1, ranks filling the cores (batch {b}):",
                  f"  raw Allreduce {ms(asy['raw_s'])} ms, compute {ms(ab['compute_s'])} ms "
                  f"({ab['compute_s'] / base['batches'][str(b)]['compute_s']:.2f} x without), "
                  f"engine step {ms(ab['engine_s'])} ms"]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", default="16,64", help="rows per rank, comma separated")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny model and few steps (smoke test)")
    ap.add_argument("--no-async", action="store_true", help="skip the MPIR_CVAR_ASYNC_PROGRESS launch")
    ap.add_argument("--no-ddp", action="store_true", help="skip torch DDP over gloo")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="base", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.repeat, args.warmup = min(args.repeat, 3), min(args.warmup, 1)
    if args.worker:
        out = _worker(args)
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() == 0:
            print(json.dumps(out), flush=True)
        return 0
    base = _launch(args, "base", {})
    asy = None if args.no_async else _launch(args, "async", {"MPIR_CVAR_ASYNC_PROGRESS": "1"})
    print("\n".join(_report(base, asy)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"base": base, "async_progress": asy, "quick": args.quick}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
