"""Checkpoint cost: ``engine.dist.Checkpointer.save`` beside ``torch.save`` + fsync.

A float32 MLP of square ``--width`` (1024) layers, as many as make the model plus its
AdamW state (weights, ``exp_avg``, ``exp_avg_sq``: 12 bytes a parameter) about
``--mb`` MB (100), in a world of one, on one compute thread. In one run, on the same disk
(a fresh temp dir under ``--workdir``, default /tmp):

1. **first save** into an empty store: seconds of ``Checkpointer.save`` (state dicts,
   RNG states, the checkpoint file, the store's chunk pipeline and its fsynced packs, the
   registry commit) and the store's growth;
2. **after one training step** (every weight and both Adam moments change, so the chunks
   of the tensors are new; only unchanged bytes deduplicate): seconds and growth;
3. **unchanged** (saved again with no step between: the dedup best case): seconds and
   growth;
4. the physical-ish limit, beside each: ``torch.save({"model": ..., "optimizer": ...})``
   of the same state to a file in the same directory, then ``fsync``: seconds and bytes.

Growth is disk usage (``st_blocks``, like ``du``) of the store directory before and
after. Times are the best of ``--repeat`` (1) fresh stores (machines here are noisy).

Usage: python bench/bench_checkpoint.py [--mb 100] [--width 1024] [--repeat 1]
[--workdir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def disk_usage(path: str) -> int:
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(d, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def build(mb: float, width: int):
    import torch

    layers = max(1, round(mb * 1e6 / (12 * (width * width + width))))
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step(model, opt)  # Adam's moments exist from the first step
    return model, opt


def step(model, opt) -> None:
    import torch

    x = torch.randn(4, model[0].in_features)
    model(x).square().mean().backward()
    opt.step()
    opt.zero_grad()


def torch_save_fsync(model, opt, path: str) -> tuple[float, int]:
    import torch

    t0 = time.perf_counter()
    with open(path, "wb") as f:
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, f)
        f.flush()
        os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    n = os.path.getsize(path)
    os.unlink(path)
    return dt, n


def one_round(mb: float, width: int, workdir: str) -> dict:
    from engine.dist.checkpoint import Checkpointer
    from engine.registry import Registry

    model, opt = build(mb, width)
    state_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    state_bytes += sum(t.numel() * t.element_size() for s in opt.state_dict()["state"].values()
                       for t in s.values() if hasattr(t, "numel"))
    root = tempfile.mkdtemp(prefix="bench-ckpt-", dir=workdir)
    try:
        store = os.path.join(root, "store")
        os.environ["MLOPS_CACHE_DIR"] = os.path.join(root, "cache")
        reg = Registry(store, index_path=":memory:")
        ckpt = Checkpointer("bench", registry=reg, every_steps=1, keep_last=None)
        out = {"state_bytes": state_bytes,
               "params": sum(p.numel() for p in model.parameters())}
        for i, label in enumerate(("first", "after_step", "unchanged")):
            if label == "after_step":
                step(model, opt)
            before = disk_usage(store) if os.path.exists(store) else 0
            t0 = time.perf_counter()
            ckpt.save(i, model, opt)
            dt = time.perf_counter() - t0
            ts, nbytes = torch_save_fsync(model, opt, os.path.join(root, "plain.pt"))
            out[label] = {"seconds": dt, "growth": disk_usage(store) - before,
                          "torch_save_fsync_seconds": ts, "torch_save_bytes": nbytes}
        reg.close()
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=100.0, help="model + AdamW state, MB (100)")
    ap.add_argument("--width", type=int, default=1024, help="layer width (1024)")
    ap.add_argument("--repeat", type=int, default=1, help="fresh stores; best time kept (1)")
    ap.add_argument("--workdir", default=None, help="where the temp stores go (default /tmp)")
    ap.add_argument("--json", default=None, help="write the results here too")
    args = ap.parse_args(argv)
    if args.mb <= 0 or args.width < 1 or args.repeat < 1:
        ap.error("--mb must be > 0, --width and --repeat >= 1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    rounds = [one_round(args.mb, args.width, args.workdir) for _ in range(args.repeat)]
    best = rounds[0]
    for label in ("first", "after_step", "unchanged"):
        for key in ("seconds", "torch_save_fsync_seconds"):
            best[label][key] = min(r[label][key] for r in rounds)
    mb = 1e6
    print(f"checkpoint of {best['state_bytes'] / mb:.1f} MB (model + AdamW state, "
          f"{best['params']:,} float32 parameters); {platform.node()}, "
          f"best of {args.repeat}")
    print(f"{'save':<12} {'engine s':>9} {'growth MB':>10} {'torch.save+fsync s':>19} "
          f"{'file MB':>8}")
    for label in ("first", "after_step", "unchanged"):
        r = best[label]
        print(f"{label:<12} {r['seconds']:>9.3f} {r['growth'] / mb:>10.3f} "
              f"{r['torch_save_fsync_seconds']:>19.3f} {r['torch_save_bytes'] / mb:>8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "result": best, "rounds": rounds}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
