"""``mlops demo`` (``make demo``): the end-to-end demo.

It versions a generated dataset in a store embedded in the work directory:
snapshot, edit, snapshot again (only the changed chunks are stored), diff,
check out the old version byte for byte, verify the store; then registers and promotes
models trained (pretend) on each version, traces their lineage and tests a drifted batch
against a profile of the training features.

NumPy and the engine's layers are imported when the demo runs, not when the ``mlops``
parser is built: every command builds this module's parser.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import TYPE_CHECKING

from .format import count, human_bytes

if TYPE_CHECKING:
    import numpy as np


def check_workdir(path, what: str = "workdir") -> str:
    """The absolute work directory, after checking it is, or can become, a directory.

    A path that exists as a file (or lies below one) is bad input, named by ``what``
    (``--dir`` for the command line), not an I/O error.
    """
    wd = os.path.abspath(os.fspath(path))
    p = wd
    while not os.path.lexists(p):
        p = os.path.dirname(p)
    if not os.path.isdir(p):
        where = "exists and is not a directory" if p == wd else f"lies below {p!r}, which is not a directory"
        raise NotADirectoryError(f"{what} {os.fspath(path)!r} {where}; give a directory "
                                 "(it is created if missing)")
    return wd


def _tree_digest(root: str) -> str:
    import hashlib

    h = hashlib.sha256()
    for dp, dirs, fs in os.walk(root):
        dirs.sort()
        for f in sorted(fs):
            p = os.path.join(dp, f)
            h.update(os.path.relpath(p, root).encode() + b"\0")
            with open(p, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def _store_bytes(root: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


def _generate(data: str, size_mib: int, rng: np.random.Generator) -> None:
    os.makedirs(os.path.join(data, "shards"))
    os.makedirs(os.path.join(data, "labels"))
    n_big = 4
    for i in range(n_big):
        with open(os.path.join(data, "shards", f"shard-{i}.bin"), "wb") as f:
            f.write(rng.bytes((size_mib << 20) // n_big))
    for j in range(200):
        with open(os.path.join(data, "labels", f"{j:04d}.csv"), "w") as f:
            f.write("".join(f"{j},{k},{rng.integers(0, 10)}\n" for k in range(50)))


def _edit(data: str, rng: np.random.Generator) -> list[str]:
    p0 = os.path.join(data, "shards", "shard-0.bin")
    with open(p0, "rb") as f:
        b = f.read()
    with open(p0, "wb") as f:
        f.write(b[:1000] + rng.bytes(100) + b[1000:])
    with open(os.path.join(data, "shards", "shard-1.bin"), "r+b") as f:
        f.seek(os.path.getsize(f.name) // 2)
        f.write(rng.bytes(4096))
    with open(os.path.join(data, "shards", "shard-2.bin"), "ab") as f:
        f.write(rng.bytes(1 << 20))
    os.rename(os.path.join(data, "labels", "0007.csv"), os.path.join(data, "labels", "0007-fixed.csv"))
    with open(os.path.join(data, "README.txt"), "w") as f:
        f.write("dataset card\n")
    return ["inserted 100 bytes near the start of shards/shard-0.bin",
            "overwrote 4 KiB in the middle of shards/shard-1.bin",
            "appended 1 MiB to shards/shard-2.bin",
            "renamed labels/0007.csv, added README.txt"]


def _registry_and_monitor(store, wd: str, versions, rng: np.random.Generator, say) -> dict:
    """Train (pretend) on each dataset version, register and promote the models through a
    gate, trace the lineage, profile the training features and test a drifted batch."""
    import numpy as np
    import pyarrow as pa

    from ..monitor import drift, load_profile, profile
    from ..registry import GateRejected, Registry

    reg = Registry(store, index_path=os.path.join(wd, "registry-index.sqlite"))
    features = pa.table({f"f{i}": rng.normal(size=20_000) for i in range(8)})
    models = []
    for v, final in zip(versions, (0.40, 0.31)):
        with reg.start_run("demo-train", params={"lr": 0.01, "data": v.ref}, inputs=[v]) as run:
            for step in range(200):
                run.log_metric("loss", final + 2.0 / (step + 1), step=step)
            run.log_metric("val_loss", final)
            weights = {"w": rng.normal(size=(64, 16)).astype(np.float32),
                       "b": np.zeros(16, np.float32)}
            models.append(run.log_model("demo-model", weights))
    reg.promote(models[0].ref, "production", gate="val_loss<=")
    reg.promote(models[1].ref, "production", gate="val_loss<=")
    try:
        reg.promote(models[0].ref, "production", gate="val_loss<=")
        gate_held = False
    except GateRejected:
        gate_held = True
    prod = reg.get("demo-model@production")
    say(f"  registry: {prod.ref} is production (val_loss {reg.metric_of(prod, 'val_loss')}); "
          f"promoting {models[0].ref} back was {'rejected by the gate' if gate_held else 'ALLOWED'}")
    up = reg.lineage("demo-model@production")["up"]
    chain = " <- ".join([up[0][1]] + [src for src, _ in up])
    say(f"  lineage: {chain}")
    prof = reg.register("demo-features", profile(features), inputs=[versions[-1]])
    current = pa.table({name: features.column(name).to_numpy()[:5000] + (0.8 if i < 2 else 0.0)
                        for i, name in enumerate(features.column_names)})
    rep = drift(load_profile(reg, prof.ref), current)
    say(f"  monitor: profile {prof.ref} of the training features; a batch with 2 shifted "
          f"columns: {rep.summary()} ({', '.join(rep.drifted_columns)})")
    last = reg.history(limit=1)[0]
    commits = reg.refresh()
    say(f"  audit: {commits} registry commits, the last by {last['user']}@{last['host']}: "
        f"{last['summary']}")
    reg.close()
    return {"ok": prod.version == models[1].version and gate_held
            and set(rep.drifted_columns) == {"f0", "f1"},
            "production": prod.ref, "gate_rejected_worse_model": gate_held, "lineage": chain,
            "profile": prof.ref, "drift": rep.summary(), "drifted_columns": list(rep.drifted_columns),
            "registry_commits": commits}


def run_demo(size_mib: int = 64, workdir: str | None = None, seed: int = 0,
             as_json: bool = False) -> int:
    """Run the demo; 0 if every step did what it should, else 1.

    It narrates on stdout, or with ``as_json`` prints only one JSON summary of what it
    did and found (versions, diff, checkout, verify, registry, drift).
    """
    import shutil
    import tempfile

    import numpy as np

    from .. import data as D
    from ..store import Store
    from ..store.pipeline import warm_up

    if size_mib < 1:
        raise ValueError(f"size_mib must be at least 1, got {size_mib}")
    own = workdir is None
    wd = tempfile.mkdtemp(prefix="mlops-demo-") if own else check_workdir(workdir)
    os.makedirs(wd, exist_ok=True)
    say = (lambda text: None) if as_json else print
    try:
        rng = np.random.default_rng(seed)
        data = os.path.join(wd, "dataset")
        store_root = os.path.join(wd, ".mlops")
        if os.path.exists(data):
            shutil.rmtree(data)
        if os.path.exists(store_root):
            shutil.rmtree(store_root)
        _generate(data, size_mib, rng)
        store = Store(store_root)
        say(f"mlops demo: a {size_mib} MiB dataset in {data}; store {store_root}")

        warm_up(store.params)  # the first kernel load is not part of the snapshot rate
        t0 = time.perf_counter()
        v1 = D.snapshot(data, "demo", "generated", store=store, progress=False)
        dt = time.perf_counter() - t0
        say(f"  snapshot {v1.ref}  {v1.id[:16]}  {count(v1.files, 'file')}, {human_bytes(v1.bytes)} "
            f"in {dt:.2f} s ({human_bytes(v1.bytes / dt)}/s)")
        digest_v1 = _tree_digest(data)
        size_v1 = _store_bytes(store_root)

        t0 = time.perf_counter()
        same = D.snapshot(data, "demo", store=store, progress=False)
        say(f"  re-snapshot of the unchanged tree: {time.perf_counter() - t0:.3f} s, "
            f"unchanged={same.unchanged}")

        edits = _edit(data, rng)
        for e in edits:
            say(f"  edit: {e}")
        v2 = D.snapshot(data, "demo", "edited", store=store, progress=False)
        growth = _store_bytes(store_root) - size_v1
        say(f"  snapshot {v2.ref}  {v2.id[:16]}  store grew by {growth / 1024:.0f} KiB "
            f"for a {human_bytes(v2.bytes)} version")
        d = D.diff(v1.ref, v2.ref, store=store)
        say(f"  diff: {d.summary()}")

        out = os.path.join(wd, "checkout-v1")
        if os.path.exists(out):
            shutil.rmtree(out)
        t0 = time.perf_counter()
        D.checkout(v1.ref, out, store=store, progress=False)
        ok = _tree_digest(out) == digest_v1
        say(f"  checkout {v1.ref} -> {out} in {time.perf_counter() - t0:.2f} s: "
            f"{'byte-identical to the original' if ok else 'MISMATCH'}")
        rep = D.verify(store=store, progress=False)
        say(f"  verify: {count(rep.chunks_checked, 'chunk')} in {count(rep.packs, 'pack')}, "
            f"{'OK' if rep.ok else 'PROBLEMS: ' + str(rep.problems)}")
        stored = _store_bytes(store_root)
        say(f"  two versions, {human_bytes(v1.bytes + v2.bytes)} of files, stored in "
            f"{human_bytes(stored)}")
        reg = _registry_and_monitor(store, wd, [v1, v2], rng, say)
        say("mlops demo: done")
        passed = ok and rep.ok and reg.pop("ok")
        if as_json:
            json.dump({"ok": passed, "workdir": None if own else wd,
                       "versions": [v1.to_dict(), v2.to_dict()], "edits": edits,
                       "store_growth_bytes": growth, "diff": d.to_dict(),
                       "checkout_identical": ok, "verify": rep.to_dict(), "store_bytes": stored,
                       "registry": reg}, sys.stdout, indent=1)
            sys.stdout.write("\n")
        return 0 if passed else 1
    finally:
        if own:
            shutil.rmtree(wd, ignore_errors=True)


def cmd_demo(args) -> int:
    if args.dir is not None:
        check_workdir(args.dir, "--dir")
    return run_demo(size_mib=args.size_mib, workdir=args.dir, seed=args.seed, as_json=args.json)


def add_parser(sub, parser_class) -> None:
    d = sub.add_parser("demo", help="run the end-to-end demo",
                       description="Generate a dataset, snapshot it into a store embedded in the "
                       "work directory, edit it, snapshot again (only changed chunks are stored), "
                       "diff the versions, check out the old one byte for byte and verify the store.")
    d.add_argument("--size-mib", type=int, default=64, help="size of the generated dataset (default 64)")
    d.add_argument("--dir", default=None, help="work directory (default: a temporary one, removed)")
    d.add_argument("--seed", type=int, default=0, help="random seed of the generated data")
    d.add_argument("--json", action="store_true",
                   help="print only a JSON summary of what the demo did and found")
    d.set_defaults(func=cmd_demo)
