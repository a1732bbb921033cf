"""Registry cold start with a long commit log: checkpoints vs the log alone vs a warm index.

Generates a registry of ``--commits`` (100,000) commits, then times a fresh process that
opens it and resolves one alias (``Registry(path)`` + the first ``get``), with no index
(cold) and with the index of an earlier run (warm):

* cold, with checkpoints: the index is rebuilt from the checkpoints (one Arrow file per
  ``REGISTRY_CHECKPOINT_EVERY`` = 1000 commits) plus the commits after the last one;
* cold, without checkpoints: the same registry minus ``registry/checkpoints`` (a
  hard-linked copy), so every commit file is read;
* warm: the on-disk index of the cold run is current; only the head is checked.

Each timing is the best of ``--repeat`` (3) fresh processes, each with a fresh
``MLOPS_CACHE_DIR`` for the cold cases. Reported: open + first get inside the process
(the part the checkpoints change) and its CPU time (less sensitive to other load on the
machine), the engine import, and the whole process wall time.

Generating 100,000 commits through ``Registry.register`` takes about 24 ms each (content
stored, two fsyncs) - 40 minutes - so the generator writes the commit files directly:
the bytes ``engine.registry.log.encode`` produces for actions shaped exactly as
``register`` / ``promote`` / runs produce them, at the paths ``commit_key`` names, but
without the per-file fsync and hard link of ``CommitLog.create`` (``--durable`` uses
``CommitLog.create``: about 4.5 ms a commit). Checkpoints are written with
``CommitLog.write_checkpoint``, as ``Registry._commit`` does every 1000 commits. The
content manifests the commits name are not stored (resolving a reference never reads
them).

``--profile`` prints a cProfile of one cold start with checkpoints.

Usage: python bench/bench_registry_coldstart.py [--commits 100000] [--names 1000]
[--workdir DIR] [--repeat 3] [--profile] [--durable] [--keep] [--json out.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from engine.registry import Registry
t1 = time.perf_counter()
prof = None
if os.environ.get("BENCH_PROFILE"):
    import cProfile
    prof = cProfile.Profile()
    prof.enable()
c1 = time.process_time()
reg = Registry(sys.argv[1], create=False)
t2 = time.perf_counter()
mv = reg.get(sys.argv[2])
t3 = time.perf_counter()
if prof is not None:
    import pstats
    prof.disable()
    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
cpu = time.process_time() - c1
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "get": t3 - t2, "cpu": cpu, "ref": mv.ref,
                  "head": reg.index.last_seq}))
"""


def hexid(*parts) -> str:
    return hashlib.sha256("\0".join(map(str, parts)).encode()).hexdigest()


def register_action(name, version, run_id, loss) -> dict:
    """An action exactly as ``Registry.register(name, bytes, metrics=..., run=...)`` makes it."""
    size = 4096 + version
    return {"op": "register", "name": name, "version": version, "kind": "model",
            "id": hexid("id", name, version), "format": "bytes", "size": size, "files": 1,
            "content": {"manifest": {"chunks": [[hexid("chunk", name, version), size + 64]],
                                     "id": hexid("blob", name, version), "size": size + 64},
                        "file": "data.bin"},
            "metrics": {"val_loss": loss}, "params": {"lr": 0.001}, "tags": {},
            "message": None, "run_id": run_id, "inputs": []}


def generate(root: str, commits: int, names: int, durable: bool) -> dict:
    """A registry of ``commits`` commits: registrations, gated promotions, runs."""
    from engine import config
    from engine.registry import Registry
    from engine.registry.log import CommitLog, commit_key, encode
    from engine.store import Store

    Store(root).close()  # a Registry creates its store only on the first write
    log = CommitLog(Store(root, create=False).fs)
    version = [0] * names
    holder: list = [None] * names
    loss: dict = {}
    run = None
    rows = []
    every = config.REGISTRY_CHECKPOINT_EVERY
    made_dirs = set()
    t0 = time.perf_counter()
    for seq in range(1, commits + 1):
        k = seq % 20
        n = (seq * 7919) % names
        name = f"model{n:04d}"
        if k == 1:
            run = f"{seq:016x}"
            acts = [{"op": "run_start", "run_id": run, "name": "train", "start": "2024-06-11T00:00:00+00:00",
                     "params": {"lr": 0.001, "seed": seq}, "tags": {}, "git_commit": hexid(seq)[:40],
                     "git_dirty": False, "world_size": 4, "inputs": [],
                     "info": {"cwd": "/scratch/job", "argv": ["train.py"], "python": "3.11.9", "rank": 0}}]
        elif k == 0:
            acts = [{"op": "run_end", "run_id": run, "status": "FINISHED", "end": "2024-06-11T01:00:00+00:00",
                     "params": {}, "tags": {}, "metrics": {"loss": {"last": 0.1, "step": 999, "min": 0.1,
                                                                    "max": 2.0, "count": 1000}}}]
        elif k in (6, 12, 18) and version[n]:
            v = version[n]
            prev = holder[n]
            if prev == v:
                acts = [{"op": "tag", "target": f"{name}:v{v}", "tags": {"checked": str(seq)}}]
            else:
                gated = prev is not None and loss[n, v] <= loss[n, prev]
                acts = [{"op": "alias", "name": name, "alias": "production", "version": v,
                         "previous": prev, "how": "promote" if gated else "alias"}]
                if gated:  # promote(..., gate="val_loss<="); else set_alias
                    acts[0]["gate"] = {"metric": "val_loss", "op": "<=", "new": loss[n, v],
                                       "held": loss[n, prev]}
                holder[n] = v
        else:
            version[n] += 1
            v = version[n]
            loss[n, v] = round(1.0 / (1 + v + (seq % 13)), 6)
            acts = [register_action(name, v, run, loss[n, v])]
        if durable:
            body = log.create(seq, acts)
            data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        else:
            data = encode(seq, acts)
            key = commit_key(seq)
            d = key.rpartition("/")[0]
            if d not in made_dirs:
                log.fs.makedirs(d)
                made_dirs.add(d)
            with open(log.fs.path(key), "xb") as f:
                f.write(data)
        rows.append((seq, data.decode()))
        if every and seq % every == 0:
            log.write_checkpoint(rows)
            rows = []
    gen = time.perf_counter() - t0
    states = 0
    if config.REGISTRY_STATE_EVERY and commits % config.REGISTRY_STATE_EVERY == 0:
        # What the committer of the last commit does: snapshot the index it holds. Here the
        # index is first built by replaying the checkpoints (not timed as generation).
        t1 = time.perf_counter()
        reg = Registry(root, create=False, index_path=":memory:")
        reg.refresh()
        reg._write_state(commits)
        reg.close()
        states = 1
        print(f"  index snapshot at commit {commits:,} written in {time.perf_counter() - t1:.1f} s "
              "(including the replay that built the index)", flush=True)
    probe = next(f"model{i:04d}" for i in range(names) if holder[i] is not None)
    return {"generate_s": gen, "checkpoints": len(log.checkpoints()), "states": states, "probe": f"{probe}@production",
            "expect": f"{probe}:v{holder[int(probe[5:])]}"}


def link_copy_without_checkpoints(src: str, dst: str) -> None:
    shutil.copytree(src, dst, copy_function=os.link,
                    ignore=lambda d, names: ["checkpoints"] if d.endswith(os.sep + "registry") else [])


def start(root: str, ref: str, cache: str, profile: bool = False) -> dict:
    env = dict(os.environ, MLOPS_CACHE_DIR=cache)
    if profile:
        env["BENCH_PROFILE"] = "1"
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", CHILD, root, ref], capture_output=True, text=True,
                       env=env, timeout=3600)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"child failed:\n{r.stderr}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["wall"] = wall
    if profile:
        out["profile"] = r.stderr
    return out


def best(runs: list[dict]) -> dict:
    b = min(runs, key=lambda r: r["open"] + r["get"])
    return {**b, "open_get": b["open"] + b["get"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=100_000)
    ap.add_argument("--names", type=int, default=1000)
    ap.add_argument("--workdir")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--durable", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    work = tempfile.mkdtemp(prefix="regcold-", dir=a.workdir)
    try:
        root, bare = os.path.join(work, "store"), os.path.join(work, "store-nocp")
        nostate = os.path.join(work, "store-nostate")
        print(f"generating {a.commits:,} commits over {a.names} names in {root} ...", flush=True)
        g = generate(root, a.commits, a.names, a.durable)
        t = time.perf_counter()
        link_copy_without_checkpoints(root, bare)
        shutil.copytree(root, nostate, copy_function=os.link, ignore=shutil.ignore_patterns("*.state"))
        print(f"  generated in {g['generate_s']:.1f} s, {g['checkpoints']} checkpoints, "
              f"{g['states']} index snapshot; "
              f"hard-linked copy without checkpoints in {time.perf_counter() - t:.1f} s", flush=True)
        ref = g["probe"]

        res = {}
        cold = [start(root, ref, os.path.join(work, f"cache-cp{i}")) for i in range(a.repeat)]
        res["cold, index snapshot"] = best(cold)
        res["cold, log checkpoints"] = best([start(nostate, ref, os.path.join(work, f"cache-ns{i}"))
                                             for i in range(a.repeat)])
        res["warm (index present)"] = best([start(root, ref, os.path.join(work, "cache-cp0"))
                                            for _ in range(a.repeat)])
        res["cold, no checkpoints"] = best([start(bare, ref, os.path.join(work, f"cache-nocp{i}"))
                                            for i in range(a.repeat)])
        for r in res.values():
            assert r["ref"] == g["expect"] and r["head"] == a.commits, r

        print(f"\nregistry cold start, {a.commits:,} commits ({platform.node()}, "
              f"Python {platform.python_version()}, best of {a.repeat} fresh processes)")
        print(f"{'':24s} {'open+get':>9s} {'(open':>7s} {'get)':>7s} {'its CPU':>8s} {'import':>7s} "
              f"{'process':>8s}")
        for k, r in res.items():
            print(f"{k:24s} {r['open_get']:8.2f}s {r['open']:6.2f}s {r['get']:6.2f}s {r['cpu']:7.2f}s "
                  f"{r['import']:6.2f}s {r['wall']:7.2f}s")
        print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: wall times grow with "
              "the load; the CPU column does much less)")
        base = res["cold, no checkpoints"]["open_get"]
        for k in ("cold, index snapshot", "cold, log checkpoints"):
            print(f"{k}: the cold start is {base / res[k]['open_get']:.1f}x faster than replaying "
                  "every commit file")
        if a.profile:
            p = start(root, ref, os.path.join(work, "cache-profile"), profile=True)
            print(f"\ncProfile of one cold start with checkpoints (open+get {p['open'] + p['get']:.2f} s "
                  "under the profiler):")
            print(p["profile"])
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"commits": a.commits, "names": a.names, **g,
                           "results": {k: {f: v for f, v in r.items() if f != "profile"}
                                       for k, r in res.items()}}, f, indent=1)
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
