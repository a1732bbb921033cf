"""Model registry, side by side: this engine's ``engine.registry`` vs MLflow (SQLite backend).

Both tools get the same seeded random files of ``--size`` bytes (1 MiB) on the same disk
(a fresh temp dir under /tmp unless ``--workdir``), and each measurement runs for both in
the same run:

1. registration: ``--versions`` (200) versions of one model, each a *different* random
   file (a retrained model's weights change throughout, so chunk dedup cannot help; this
   is the realistic case and the worst case for the engine). Seconds per version over
   the whole loop. Engine: ``reg.register("m", file)``; MLflow: a run that logs the file
   as an artifact, then ``create_model_version(source=artifact URI, run_id)``.
2. alias resolution from a warm process: alias "production" on version 100; best of
   ``--alias-repeat`` (1000) ``reg.get("m@production")`` against best of
   ``--mlflow-alias-repeat`` (100) ``client.get_model_version_by_alias``.
3. cold load: one fresh process doing import + resolve "m@production" + pull/download the
   artifact into an empty temp dir; wall clock, best of ``--cold-repeat`` (3). The
   pulled bytes are checked against version 100's file.
4. fresh store initialisation: engine ``Registry(new_dir).store`` in this process, and as a
   fresh process minus a bare ``python -c pass``; MLflow: ``set_tracking_uri(sqlite)`` +
   the first registry call (creates the tables) + creating the experiment, in its
   process, and the whole process minus bare Python of .venv-mlflow. Best of
   ``--init-repeat`` (engine 5x that, MLflow 3 by default since each takes seconds).
5. storage: the same file registered twice into a fresh store; disk usage (``du``-style,
   st_blocks) of the store before and after the second registration.

MLflow runs as subprocesses of ``.venv-mlflow/bin/python bench/_mlflow_side.py``; its
in-process timings come back as JSON. If .venv-mlflow is missing, the MLflow column is
skipped and the install command printed. The engine runs in this process (cold load and
init-as-process in subprocesses of this interpreter).

The engine's host-local query index (a cache, outside the store) goes under the work
directory (MLOPS_CACHE_DIR); the cold load is also timed with an empty one ("new host").

Usage: python bench/bench_registry.py [--versions 200] [--size 1MiB] [--same-file] [--meta]
[--tools engine,mlflow] [--workdir DIR] [--json out.json] [--keep]
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
from pathlib import Path

import numpy as np
from bench_data import disk_usage, parse_size
from registry_floor import SyncCounter, durable_floor
from timing import best_of

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_PY = ROOT / ".venv-mlflow" / "bin" / "python"
MLFLOW_SIDE = ROOT / "bench" / "_mlflow_side.py"
INSTALL_HINT = "bash bench/install_mlflow.sh   (python3 -m venv .venv-mlflow && .venv-mlflow/bin/pip install mlflow)"
MODEL = "m"
ALIAS_VERSION = 100
# The issue's MLflow reference numbers (measured on this machine before the engine's registry).
ISSUE_MLFLOW = {"register": 0.069, "alias": 1.8e-3, "cold": 2.2, "init": 8.0}


def log(msg: str) -> None:
    print(f"[bench_registry {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def only_file(path: Path) -> Path:
    """`path` if it is a file, else the one file under the directory `path`."""
    if path.is_file():
        return path
    files = [Path(d, f) for d, _, fs in os.walk(path) for f in fs]
    if len(files) != 1:
        raise RuntimeError(f"expected one file under {path}, found {len(files)}: {files[:5]}")
    return files[0]


def generate(work: Path, n: int, size: int, seed: int) -> tuple[list[Path], Path]:
    """`n` different random files of `size` bytes under work/files, and work/same.bin."""
    rng = np.random.default_rng(seed)
    d = work / "files"
    d.mkdir(parents=True)
    files = []
    for i in range(n):
        p = d / f"model_{i + 1:04d}.bin"
        p.write_bytes(rng.bytes(size))
        files.append(p)
    same = work / "same.bin"
    same.write_bytes(rng.bytes(size))
    return files, same


def subprocess_env(pycache: Path | None = None) -> dict:
    """The environment of the timed child processes: bytecode caching on.

    With PYTHONDONTWRITEBYTECODE set (as in some shells here), an editable install has
    no .pyc files and every fresh process compiles the engine's sources again, while
    pip-installed MLflow ships compiled. So the children may write bytecode; the
    engine's goes under `pycache` (PYTHONPYCACHEPREFIX), not into the source tree.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def wall_best(cmd: list[str], repeat: int, before=None, env: dict | None = None,
              warmup: bool = True) -> float:
    """Best wall clock of `repeat` runs of `cmd` as a fresh process (`before()` untimed, first).

    An untimed first run (`warmup`) fills the page cache and the bytecode cache.
    """
    best = float("inf")
    for i in range(repeat + warmup):
        if before:
            before()
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        sec = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        if i >= warmup:
            best = min(best, sec)
    return best


def mlflow_side(*args: str) -> dict:
    cmd = [str(MLFLOW_PY), str(MLFLOW_SIDE), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env())
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def fresh_dir(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


# ----------------------------------------------------------------------------- engine
def _init(path: str):
    """A registry on a new store, ready for its first commit (the store is created)."""
    from engine.registry import Registry

    reg = Registry(path)
    _ = reg.store  # creates the store
    return reg


def bench_engine(work: Path, files: list[Path], same: Path, a) -> dict:
    from engine.registry import Registry

    out: dict = {}
    base = work / "engine"
    py = sys.executable
    env = subprocess_env(work / "pycache")

    # 4. init (first: nothing else of the registry warmed up yet, but the import is done)
    dirs = iter(fresh_dir(base, "init-") / "store" for _ in range(5 * a.init_repeat))
    # A Registry creates its store on the first write; `.store` is that creation, so the
    # engine side does what MLflow's first registry call does (create the schema).
    out["init_inproc_s"], reg0 = best_of(lambda: _init(str(next(dirs))), 5 * a.init_repeat)
    del reg0
    bare = wall_best([py, "-c", "pass"], 5 * a.init_repeat, env=env)
    code = "import sys; from engine.registry import Registry; Registry(sys.argv[1]).store"
    pdirs = iter(fresh_dir(base, "pinit-") / "store" for _ in range(5 * a.init_repeat))
    # warm the page cache and the bytecode cache
    wall_best([py, "-c", code, str(fresh_dir(base, "warm-") / "store")], 1, env=env, warmup=False)
    proc = float("inf")
    for _ in range(5 * a.init_repeat):
        proc = min(proc, wall_best([py, "-c", code, str(next(pdirs))], 1, env=env, warmup=False))
    out["bare_python_s"], out["init_process_s"] = bare, proc
    out["init_process_minus_bare_s"] = proc - bare
    log(f"engine init: {out['init_inproc_s'] * 1e3:.2f} ms in-process, "
        f"{proc * 1e3:.1f} ms as a process ({bare * 1e3:.1f} ms bare python)")

    # 1. registration
    store = base / "store"
    reg = Registry(str(store))
    meta = {"metrics": {"val_loss": 0.3}, "params": {"lr": 0.1}} if a.meta else {}
    times, mvs, floors, syncs = [], [], [], []
    counter = SyncCounter()
    for i in range(a.versions):
        f = files[0] if a.same_file else files[i]
        with counter:
            before = counter.calls
            t0 = time.perf_counter()
            mv = reg.register(MODEL, str(f), kind="model", **meta)
            times.append(time.perf_counter() - t0)
            syncs.append(counter.calls - before)
        mvs.append(mv)
        # the floor right after, in the same directories: both see the same load
        floors.append(durable_floor(store, f.read_bytes(), i))
    bad = [(i + 1, mv.version) for i, mv in enumerate(mvs) if mv.version != i + 1]
    if bad:
        log(f"engine: WARNING versions not 1..N: first mismatches (expected, got) {bad[:5]}")
    s = sorted(times)
    out["register_s"] = sum(times) / len(times)
    out["register_median_s"], out["register_max_s"] = s[len(s) // 2], s[-1]
    out["register_last_ref"] = mvs[-1].ref
    log(f"engine register: {out['register_s'] * 1e3:.2f} ms per version "
        f"(median {s[len(s) // 2] * 1e3:.2f}, max {s[-1] * 1e3:.1f}); last {mvs[-1].ref}")
    fl = sorted(floors)
    out.update(register_best_s=s[0], floor_best_s=fl[0], floor_median_s=fl[len(fl) // 2],
               floor_ratio_median=s[len(s) // 2] / fl[len(fl) // 2], floor_ratio_best=s[0] / fl[0],
               syncs_per_register=sum(syncs) / len(syncs), syncs_min=min(syncs), syncs_max=max(syncs))
    log(f"durable floor: median {fl[len(fl) // 2] * 1e3:.2f} ms, best {fl[0] * 1e3:.2f} ms; register / floor "
        f"{out['floor_ratio_median']:.2f}x (medians), {out['floor_ratio_best']:.2f}x (bests); "
        f"fsync+fdatasync per registration {out['syncs_per_register']:.2f} ({min(syncs)} to {max(syncs)})")

    # 2. alias resolution, warm
    target = min(ALIAS_VERSION, a.versions)
    reg.set_alias(f"{MODEL}:v{target}", "production")
    sec, mv = best_of(lambda: reg.get(f"{MODEL}@production"), a.alias_repeat)
    if mv.version != target:
        raise RuntimeError(f"engine: m@production resolved to v{mv.version}, expected v{target}")
    out["alias_s"] = sec
    log(f"engine alias: {sec * 1e6:.2f} µs best of {a.alias_repeat}")
    expect = sha256(files[0] if a.same_file else files[target - 1])

    # 3. cold process: import + resolve + pull
    code = (f"from engine.registry import Registry; "
            f"Registry({str(store)!r}).pull('{MODEL}@production', {str(base / 'pull')!r})")

    def clear_pull():
        shutil.rmtree(base / "pull", ignore_errors=True)
        (base / "pull").mkdir()

    out["cold_s"] = wall_best([py, "-c", code], a.cold_repeat, before=clear_pull, env=env)
    got = only_file(base / "pull")
    if sha256(got) != expect:
        raise RuntimeError(f"engine: pulled {got} does not match version {target}'s file")
    log(f"engine cold load: {out['cold_s']:.3f} s (pulled {got.relative_to(base)})")
    # the same on a "new host": an empty cache dir, so the query index is rebuilt from the log
    caches = iter(fresh_dir(work / "cache-newhost", "c-") for _ in range(a.cold_repeat))

    def clear_pull_and_cache():
        clear_pull()
        os.environ["MLOPS_CACHE_DIR"] = str(next(caches))

    try:
        out["cold_newhost_s"] = wall_best([py, "-c", code], a.cold_repeat, before=clear_pull_and_cache,
                                          env=env, warmup=False)
    finally:
        os.environ["MLOPS_CACHE_DIR"] = str(work / "cache")
    if sha256(only_file(base / "pull")) != expect:
        raise RuntimeError("engine: pulled file (new host) does not match")
    log(f"engine cold load, empty host cache: {out['cold_newhost_s']:.3f} s")
    del reg

    # 5. storage: the same file twice
    sstore = base / "dup"
    reg = Registry(str(sstore))
    mv1 = reg.register(MODEL, str(same), kind="model")
    before, cache_before = disk_usage(sstore)[0], disk_usage(work / "cache")[0]
    mv2 = reg.register(MODEL, str(same), kind="model")
    after, cache_after = disk_usage(sstore)[0], disk_usage(work / "cache")[0]
    out.update(storage_before=before, storage_after=after, storage_growth=after - before,
               storage_cache_growth=cache_after - cache_before,
               storage_refs=[mv1.ref, mv2.ref], storage_ids_equal=mv1.id == mv2.id)
    log(f"engine storage: {before} -> {after} bytes (+{after - before}); "
        f"{mv1.ref} and {mv2.ref}, ids {'equal' if mv1.id == mv2.id else 'differ'}")
    return out


# ----------------------------------------------------------------------------- mlflow
def bench_mlflow(work: Path, files: list[Path], same: Path, a) -> dict:
    out: dict = {"version": mlflow_side("version")["mlflow"]}
    base = work / "mlflow"

    # 4. init
    bare = wall_best([str(MLFLOW_PY), "-c", "pass"], 5, env=subprocess_env())
    inproc, proc = float("inf"), float("inf")
    for _ in range(a.mlflow_init_repeat):
        d = fresh_dir(base, "init-")
        t0 = time.perf_counter()
        r = mlflow_side("init", str(d))
        proc = min(proc, time.perf_counter() - t0)
        inproc = min(inproc, r["init_s"])
    out.update(init_inproc_s=inproc, init_process_s=proc, bare_python_s=bare,
               init_process_minus_bare_s=proc - bare)
    log(f"mlflow init: {inproc:.3f} s in-process, {proc:.3f} s as a process ({bare * 1e3:.1f} ms bare python)")

    # 1. registration
    store = base / "store"
    if a.same_file:
        src = files[0]
    else:
        src = base / "files"  # a directory of links to the same files, in version order
        src.mkdir(parents=True)
        for f in files:
            os.symlink(f, src / f.name)
    args = ["register", str(store), str(a.versions), str(src)] + (["--meta"] if a.meta else [])
    r = mlflow_side(*args)
    out.update(register_s=r["per_version_s"], register_median_s=r["median_s"], register_max_s=r["max_s"])
    log(f"mlflow register: {r['per_version_s'] * 1e3:.2f} ms per version (median {r['median_s'] * 1e3:.2f}, "
        f"max {r['max_s'] * 1e3:.1f}); latest v{r['latest_version']}")

    # 2. alias
    target = min(ALIAS_VERSION, a.versions)
    r = mlflow_side("alias", str(store), "--version", str(target), "--repeat", str(a.mlflow_alias_repeat))
    out["alias_s"] = r["best_ms"] / 1e3
    log(f"mlflow alias: {r['best_ms']:.3f} ms best of {a.mlflow_alias_repeat} (v{r['version']})")
    expect = sha256(files[0] if a.same_file else files[target - 1])

    # 3. cold
    pull = base / "pull"

    def clear_pull():
        shutil.rmtree(pull, ignore_errors=True)
        pull.mkdir()

    out["cold_s"] = wall_best([str(MLFLOW_PY), str(MLFLOW_SIDE), "coldload", str(store), str(pull)],
                              a.cold_repeat, before=clear_pull, env=subprocess_env())
    got = only_file(pull)
    if sha256(got) != expect:
        raise RuntimeError(f"mlflow: downloaded {got} does not match version {target}'s file")
    log(f"mlflow cold load: {out['cold_s']:.3f} s")

    # 5. storage
    r = mlflow_side("storage", str(base / "dup"), str(same))
    out.update(storage_before=r["store_before"], storage_after=r["store_after"],
               storage_growth=r["store_after"] - r["store_before"],
               storage_growth_artifacts=r["growth_artifacts"])
    log(f"mlflow storage: {r['store_before']} -> {r['store_after']} bytes (+{r['growth_artifacts']} artifacts)")
    return out


# ----------------------------------------------------------------------------- report
def fmt_s(sec: float | None) -> str:
    if sec is None:
        return "-"
    if sec >= 1:
        return f"{sec:.2f} s"
    if sec >= 1e-3:
        return f"{sec * 1e3:.2f} ms"
    return f"{sec * 1e6:.1f} µs"


def fmt_b(n: int | None) -> str:
    return "-" if n is None else f"{n / (1 << 20):.3f} MiB"


def ratio(m, e) -> str:
    if m is None or e is None:
        return "-"
    return "inf" if e <= 0 else f"{m / e:.1f}x"


def table(eng: dict | None, mlf: dict | None, size: int) -> list[dict]:
    """Rows of (measurement, engine, mlflow, mlflow/engine, target, verdict)."""
    e, m = eng or {}, mlf or {}
    rows = []

    def row(name, key, fmt, target, check):
        met = None if e.get(key) is None else check(e[key], m.get(key))
        rows.append({"measurement": name, "engine": fmt(e.get(key)), "mlflow": fmt(m.get(key)),
                     "ratio": ratio(m.get(key), e.get(key)), "target": target,
                     "verdict": "-" if met is None else ("met" if met else "NOT MET"),
                     "engine_raw": e.get(key), "mlflow_raw": m.get(key)})

    row("register, per version", "register_s", fmt_s, ">= 10x faster",
        lambda ev, mv: None if mv is None else mv / ev >= 10)
    if "floor_median_s" in e:
        rows.append({"measurement": "  durable floor (1 file + fsync, commit + fsync, dir fsync)",
                     "engine": f"{fmt_s(e['floor_median_s'])} (best {fmt_s(e['floor_best_s'])})",
                     "mlflow": "-", "ratio": "-", "target": "-", "verdict": "-",
                     "engine_raw": e["floor_median_s"], "mlflow_raw": None})
        r = e["floor_ratio_median"]
        rows.append({"measurement": "  register / durable floor, medians (bests)",
                     "engine": f"{r:.2f}x ({e['floor_ratio_best']:.2f}x)", "mlflow": "-", "ratio": "-",
                     "target": "<= 1.5x", "verdict": "met" if r <= 1.5 else "NOT MET",
                     "engine_raw": r, "mlflow_raw": None})
        rows.append({"measurement": "  fsync + fdatasync per registration (engine)",
                     "engine": f"{e['syncs_per_register']:.2f} ({e['syncs_min']}-{e['syncs_max']})",
                     "mlflow": "-", "ratio": "-", "target": "-", "verdict": "-",
                     "engine_raw": e["syncs_per_register"], "mlflow_raw": None})
    row("alias resolution, warm", "alias_s", fmt_s, "< 1 ms", lambda ev, mv: ev < 1e-3)
    row("cold: import + load by alias + pull", "cold_s", fmt_s, "< 0.5 s", lambda ev, mv: ev < 0.5)
    if "cold_newhost_s" in e:
        rows.append({"measurement": "  the same, empty host cache (engine)", "engine": fmt_s(e["cold_newhost_s"]),
                     "mlflow": fmt_s(m.get("cold_s")), "ratio": ratio(m.get("cold_s"), e["cold_newhost_s"]),
                     "target": "< 0.5 s", "verdict": "met" if e["cold_newhost_s"] < 0.5 else "NOT MET",
                     "engine_raw": e["cold_newhost_s"], "mlflow_raw": m.get("cold_s")})
    row("init, in-process", "init_inproc_s", fmt_s, "< 0.2 s", lambda ev, mv: ev < 0.2)
    row("init, fresh process - bare python", "init_process_minus_bare_s", fmt_s, "< 0.2 s",
        lambda ev, mv: ev < 0.2)
    # "stored once": the second registration adds under a tenth of the file (metadata only)
    row("store growth, same file again", "storage_growth", fmt_b, "stored once",
        lambda ev, mv: ev < 0.1 * size)
    return rows


def print_table(rows: list[dict]) -> None:
    cols = [("measurement", "<"), ("engine", ">"), ("mlflow", ">"), ("ratio", ">"), ("target", "<"),
            ("verdict", "<")]
    head = {"ratio": "mlflow/engine"}
    w = {c: max(len(head.get(c, c)), *(len(r[c]) for r in rows)) for c, _ in cols}
    print("  ".join(f"{head.get(c, c):{al}{w[c]}}" for c, al in cols))
    print("  ".join("-" * w[c] for c, _ in cols))
    for r in rows:
        print("  ".join(f"{r[c]:{al}{w[c]}}" for c, al in cols))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="The measurements: " + __doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--versions", type=int, default=200, help="versions to register (200)")
    ap.add_argument("--size", type=parse_size, default=1 << 20, help="bytes per artifact file (1MiB)")
    ap.add_argument("--same-file", action="store_true",
                    help="register the same file for every version (default: a new random file each)")
    ap.add_argument("--meta", action="store_true",
                    help="log a metric and a param with every version (both tools)")
    ap.add_argument("--alias-repeat", type=int, default=1000, help="engine alias lookups, best of (1000)")
    ap.add_argument("--mlflow-alias-repeat", type=int, default=100, help="MLflow alias lookups, best of (100)")
    ap.add_argument("--cold-repeat", type=int, default=3, help="cold processes per tool, best of (3)")
    ap.add_argument("--init-repeat", type=int, default=3,
                    help="engine init runs are 5x this (in-process and as a process), best of (3)")
    ap.add_argument("--mlflow-init-repeat", type=int, default=3, help="MLflow fresh stores, best of (3)")
    ap.add_argument("--tools", default="engine,mlflow", help="comma-separated: engine,mlflow")
    ap.add_argument("--workdir", type=Path, default=None, help="work directory (default: a temp dir in /tmp)")
    ap.add_argument("--json", default=None, help="also write all numbers to this JSON file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--seed", type=int, default=2026, help="seed of the random files")
    a = ap.parse_args(argv)
    tools = {t.strip() for t in a.tools.split(",") if t.strip()}
    if a.versions < 1:
        ap.error("--versions must be >= 1")

    run_mlflow = "mlflow" in tools
    if run_mlflow and not MLFLOW_PY.exists():
        print(f"MLflow is not installed in {MLFLOW_PY.parent.parent}; skipping its column. Install it with:\n"
              f"    {INSTALL_HINT}")
        run_mlflow = False

    work = a.workdir or Path(tempfile.mkdtemp(prefix="bench_registry_", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    # the engine's host-local query index (a cache, outside the store) goes here, not ~/.cache
    os.environ["MLOPS_CACHE_DIR"] = str(work / "cache")
    log(f"work dir {work}; generating {a.versions} files of {a.size} bytes")
    files, same = generate(work, a.versions, a.size, a.seed)
    results: dict = {"versions": a.versions, "size": a.size, "same_file": a.same_file, "meta": a.meta,
                     "machine": platform.platform(), "python": platform.python_version(),
                     "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
                     "loadavg_start": os.getloadavg()}
    try:
        eng = bench_engine(work, files, same, a) if "engine" in tools else None
        mlf = bench_mlflow(work, files, same, a) if run_mlflow else None
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    results.update(engine=eng, mlflow=mlf, loadavg_end=os.getloadavg())

    print(f"# bench_registry: {a.versions} versions of {a.size / (1 << 20):g} MiB "
          f"({'the same file' if a.same_file else 'a new random file each'}"
          f"{', with a metric and a param' if a.meta else ''}), "
          f"{'MLflow ' + mlf['version'] + ' (SQLite)' if mlf else 'no MLflow'}, Python {platform.python_version()}, "
          f"load average {results['loadavg_start'][0]:.1f} at the start, {results['loadavg_end'][0]:.1f} at the end")
    rows = table(eng, mlf, a.size)
    results["rows"] = rows
    print_table(rows)
    notes = []
    for name, r in (("engine", eng), ("mlflow", mlf)):
        if r:
            notes.append(f"{name}: bare python {fmt_s(r['bare_python_s'])}, "
                         f"init as a whole process {fmt_s(r['init_process_s'])}")
    print("(" + "; ".join(notes) + ")")
    if not mlf:
        print("issue's MLflow reference: " + ", ".join(f"{k} {fmt_s(v)}" for k, v in ISSUE_MLFLOW.items()))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
