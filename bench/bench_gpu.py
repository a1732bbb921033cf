"""The ``cuda`` backend on a GPU, each number beside its limit or its CPU peer, in one run.

Sections (``--only`` picks some):

``hash``
    Chunk + hash (gear CDC, then BLAKE3 of every chunk) of a ``--hash-size`` buffer
    (4 GiB) already in GPU memory, in GB/s; end to end from pinned host memory
    (``hash_cuda.chunk_hash_host``: segments copied on a stream of their own while the
    earlier ones are scanned and hashed), beside the host-to-device bandwidth measured in
    the same run (the limit: target 0.7x or better); and single-thread BLAKE3 on the CPU.
    Targets: 20 GB/s or more device-resident.
``register``
    Registering a ``--state-size`` (2 GiB) CUDA state dict into a fresh store the first
    time, then again after one step of fine-tuning that changed 5% of the parameters
    (the other 95% frozen): seconds and bytes copied from the GPU to the host (target: the
    second copies under 10% of the checkpoint). The CPU path copies every byte first.
``drift``
    KS + Wasserstein + CvM of ``--rows`` x ``--cols`` (1M x 1000) float32 columns, cuda
    against numba (all cores of the node), including the sorts: target 10x.
``mmd``
    MMD with ``--permutations`` (1000) permutations on ``--mmd-rows`` (10k) x 10k samples of
    32 features, cuda against the numba path timed on 20 permutations and scaled.

``--emulate`` runs the ``hash`` and ``register`` sections on the host emulation of the
GPU (``engine.kernels.cuda_runtime``) at small sizes: a smoke test of this script, whose
timings mean nothing. Without a GPU (and without ``--emulate``) it says so and exits 2.

Usage: python bench/bench_gpu.py [--only hash,register,drift,mmd] [--hash-size 4GiB]
[--state-size 2GiB] [--rows 1000000] [--cols 1000] [--mmd-rows 10000]
[--permutations 1000] [--json out.json] [--emulate]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np

GB = 1e9
MiB = 1 << 20


def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(t[:-1]) * mult[t[-1]]) if t and t[-1] in mult else int(t)


def timed(dev, fn, repeat: int = 3):
    """Best of ``repeat`` runs of ``fn()`` in seconds (device synchronized), and its result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        dev.synchronize()
        t0 = time.perf_counter()
        out = fn()
        dev.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_hash(dev, size: int, repeat: int) -> dict:
    import blake3

    from engine.kernels import CdcParams, hash_cuda

    xp = dev.xp
    rng = np.random.default_rng(16)
    host = rng.integers(0, 256, size, dtype=np.uint8)
    if not dev.emulated:  # pinned host memory, as a data loader would hold it
        mem = dev.cp.cuda.alloc_pinned_memory(size)
        pinned = np.frombuffer(mem, np.uint8, size)
        pinned[:] = host
        host = pinned
    buf = dev.to_device(host)
    params = CdcParams()
    hash_cuda.chunk_hash(buf, params)  # compile and warm up
    t_dev, (ends, _) = timed(dev, lambda: hash_cuda.chunk_hash(buf, params), repeat)
    t_h2d, _ = timed(dev, lambda: xp.asarray(host) if not dev.emulated else host.copy(), repeat)
    # end to end: segments copied on a stream of their own while earlier ones are hashed
    t_e2e, (e2e_ends, _) = timed(dev, lambda: hash_cuda.chunk_hash_host(host, params), repeat)
    if e2e_ends.tolist() != ends.tolist():
        raise AssertionError("chunk_hash_host and chunk_hash disagree")
    cpu_n = min(size, 256 * MiB)
    t0 = time.perf_counter()
    blake3.blake3(memoryview(host)[:cpu_n], max_threads=1).digest()
    t_cpu = time.perf_counter() - t0
    res = {"bytes": size, "chunks": len(ends),
           "device_resident_GBps": size / t_dev / GB,
           "h2d_GBps": size / t_h2d / GB,
           "end_to_end_GBps": size / t_e2e / GB,
           "cpu_blake3_1thread_GBps": cpu_n / t_cpu / GB}
    res["end_to_end_over_h2d"] = res["end_to_end_GBps"] / res["h2d_GBps"]
    res["device_over_cpu_blake3"] = res["device_resident_GBps"] / res["cpu_blake3_1thread_GBps"]
    return res


def _state_dict(dev, size: int, n_tensors: int = 40):
    """A float32 state dict of ``size`` bytes in GPU memory (CPU tensors on the emulator)."""
    import torch

    per = size // n_tensors // 4
    device = "cpu" if dev.emulated else f"cuda:{getattr(dev, 'index', 0)}"
    g = torch.Generator(device=device).manual_seed(17)
    return {f"layer{i:03d}.weight": torch.randn(per, generator=g, device=device)
            for i in range(n_tensors)}


def bench_register(dev, size: int) -> dict:
    from engine.registry import Registry

    state = _state_dict(dev, size)
    total = sum(t.numel() * 4 for t in state.values())
    with tempfile.TemporaryDirectory(prefix="mlops-bench-gpu-") as d:
        reg = Registry(os.path.join(d, "store"))
        before = dev.d2h_bytes
        dev.synchronize()
        t0 = time.perf_counter()
        reg.register("model", state)
        t_first = time.perf_counter() - t0
        first = dev.d2h_bytes - before
        # one step of fine-tuning with 95% of the parameters frozen: 2 of 40 tensors change
        for name in sorted(state)[:2]:
            state[name].add_(1e-3)
        before = dev.d2h_bytes
        dev.synchronize()
        t0 = time.perf_counter()
        mv = reg.register("model", state)
        t_second = time.perf_counter() - t0
        second = dev.d2h_bytes - before
        cpu_state = {k: v.cpu() for k, v in state.items()}
        for name in sorted(cpu_state)[2:4]:
            cpu_state[name].add_(1e-3)  # same change again, through the host
        t0 = time.perf_counter()
        reg.register("model", cpu_state)
        t_cpu = time.perf_counter() - t0
    return {"checkpoint_bytes": total, "version": mv.ref,
            "first_seconds": t_first, "first_copied_bytes": first,
            "second_seconds": t_second, "second_copied_bytes": second,
            "second_copied_fraction": second / total,
            "cpu_path_second_seconds": t_cpu, "cpu_path_copied_fraction": 1.0}


def bench_drift(rows: int, cols: int) -> dict:
    from engine.kernels.drift_columns import sort_columns
    from engine.kernels.drift_numeric import numeric_drift_columns

    rng = np.random.default_rng(18)
    ref = rng.normal(size=(rows, cols)).astype(np.float32)
    cur = (rng.normal(size=(rows, cols)) + 0.01).astype(np.float32)
    out = {"rows": rows, "cols": cols}
    results = {}
    for backend in ("cuda", "numba"):
        def run(b=backend):
            r = sort_columns(ref, backend=b)
            return numeric_drift_columns(r, cur, backend=b)

        run() if backend == "cuda" else None  # compile the kernels first
        t0 = time.perf_counter()
        results[backend] = run()
        out[f"{backend}_seconds"] = time.perf_counter() - t0
    a, b = results["cuda"]["ks_2samp"].statistic, results["numba"]["ks_2samp"].statistic
    out["max_ks_difference"] = float(np.nanmax(np.abs(np.asarray(a) - np.asarray(b))))
    out["speedup"] = out["numba_seconds"] / out["cuda_seconds"]
    return out


def bench_mmd(rows: int, permutations: int, dims: int = 32) -> dict:
    from engine import kernels as K

    rng = np.random.default_rng(19)
    z = np.vstack([rng.normal(size=(rows, dims)), rng.normal(size=(rows, dims)) + 0.05])
    perms = np.stack([rng.permutation(2 * rows) for _ in range(permutations)]).astype(np.int64)
    bw = 1.0 * np.sqrt(2 * dims)
    out = {"rows_per_side": rows, "dims": dims, "permutations": permutations}
    K.call("mmd2_permutations", z[:64], 32, perms[:1, :64] % 64, bw, backend="cuda")  # compile
    t0 = time.perf_counter()
    stat_gpu, perm_gpu = K.call("mmd2_permutations", z, rows, perms, bw, backend="cuda")
    out["cuda_seconds"] = time.perf_counter() - t0
    few = min(20, permutations)
    K.call("mmd2_permutations", z[:64], 32, perms[:1, :64] % 64, bw, backend="numba")
    t0 = time.perf_counter()
    stat_cpu, perm_cpu = K.call("mmd2_permutations", z, rows, perms[:few], bw, backend="numba")
    out["numba_seconds_scaled"] = (time.perf_counter() - t0) * permutations / few
    out["stat_relative_difference"] = abs(stat_gpu - stat_cpu) / max(abs(stat_cpu), 1e-300)
    out["speedup"] = out["numba_seconds_scaled"] / out["cuda_seconds"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="hash,register,drift,mmd")
    ap.add_argument("--hash-size", default="4GiB")
    ap.add_argument("--state-size", default="2GiB")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--cols", type=int, default=1000)
    ap.add_argument("--mmd-rows", type=int, default=10_000)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--emulate", action="store_true",
                    help="smoke-test hash and register on the host emulation (small sizes)")
    args = ap.parse_args(argv)
    from engine.kernels import cuda_runtime as cr

    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - {"hash", "register", "drift", "mmd"}
    if unknown:
        ap.error(f"--only: unknown sections {sorted(unknown)}")
    if args.emulate:
        ctx = cr.emulated()
        sections = [s for s in sections if s in ("hash", "register")]
        hash_size, state_size, repeat = 1 * MiB, 2 * MiB, 1
    else:
        if not cr.gpu_available():
            print(f"bench_gpu: no GPU here ({cr.install_hint()}); nothing measured",
                  file=sys.stderr)
            return 2
        ctx = contextlib.nullcontext(cr.cupy_device())
        hash_size, state_size = parse_size(args.hash_size), parse_size(args.state_size)
        repeat = args.repeat
    results: dict = {}
    with ctx as dev:
        results["device"] = dev.name if dev.emulated else \
            dev.cp.cuda.runtime.getDeviceProperties(dev.index)["name"].decode()
        if "hash" in sections:
            r = results["hash"] = bench_hash(dev, hash_size, repeat)
            print(f"chunk+hash {r['bytes'] / GB:.2f} GB: device-resident "
                  f"{r['device_resident_GBps']:.1f} GB/s (target 20); end to end "
                  f"{r['end_to_end_GBps']:.1f} GB/s = {r['end_to_end_over_h2d']:.2f}x the "
                  f"host-to-device {r['h2d_GBps']:.1f} GB/s (target 0.7x); CPU BLAKE3 1 thread "
                  f"{r['cpu_blake3_1thread_GBps']:.2f} GB/s")
        if "register" in sections:
            r = results["register"] = bench_register(dev, state_size)
            print(f"register {r['checkpoint_bytes'] / GB:.2f} GB state dict: first "
                  f"{r['first_seconds']:.2f} s, {r['first_copied_bytes'] / GB:.2f} GB copied; "
                  f"after a 95%-frozen step {r['second_seconds']:.2f} s, "
                  f"{r['second_copied_fraction']:.1%} copied (target < 10%); CPU path "
                  f"{r['cpu_path_second_seconds']:.2f} s, 100% copied")
        if "drift" in sections:
            r = results["drift"] = bench_drift(args.rows, args.cols)
            print(f"drift {r['rows']:,} x {r['cols']:,} float32: cuda {r['cuda_seconds']:.2f} s, "
                  f"numba {r['numba_seconds']:.2f} s = {r['speedup']:.1f}x (target 10x); "
                  f"max KS difference {r['max_ks_difference']:.1e}")
        if "mmd" in sections:
            r = results["mmd"] = bench_mmd(args.mmd_rows, args.permutations)
            print(f"MMD {r['rows_per_side']:,} x {r['rows_per_side']:,} x {r['dims']}, "
                  f"{r['permutations']} permutations: cuda {r['cuda_seconds']:.2f} s, numba "
                  f"{r['numba_seconds_scaled']:.1f} s (scaled from 20) = {r['speedup']:.0f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
