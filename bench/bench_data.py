"""Dataset versioning, side by side: this engine vs ``dvc add`` vs ``restic backup``.

One run generates a dataset in a work directory (default: a fresh temp dir under /tmp; the
disk under it is the one measured): about ``--size`` of incompressible files of 16-64 MiB
each plus a ``small/`` subdirectory of ``--small-files`` files of 1-8 KiB (all seeded).
It measures two physical limits of that disk, before and after the tools (the faster run
counts): a durable copy of the same tree (``cp -a`` then ``os.sync()``: what any tool that
stores the files must at least do) and the durable sequential write speed (``dd
if=/dev/zero bs=1M conv=fsync`` into a new file). Then it gives each tool its own copy of
the data and times:

1. the first snapshot (engine ``snapshot``, ``dvc add``, ``restic backup``),
2. a re-snapshot of the unchanged tree,
3. a snapshot after edits (100 bytes inserted at the start of 4 big files, 1 MiB
   overwritten in the middle of 2 others, 1 MiB appended to 2 others; the same for all),
4. the store growth those edits cause (disk usage, ``du``-style: sum of st_blocks * 512,
   hard links counted once; engine: the store dir, dvc: ``.dvc/cache``, restic: the repo),
5. checkout/restore of the latest version into an empty directory (verified by hash).

``os.sync()`` runs before each timed step. Every tool reads input that is in the page
cache (without ``--settle`` it is simply never dropped). Peers run as subprocesses (their start-up time
counts); the engine runs in this process. Peers missing from PATH are skipped; install
them with ``bench/install_peers.sh`` (``dvc`` is looked up in ``.venv-peers/bin`` first).

With ``--settle`` (root), each timed step starts from the same memory state: the page
cache is dropped and the tool's files (data, store) are read back first (see
:func:`settle` for why this matters on a lazily backed virtual machine).

Usage: python bench/bench_data.py [--size 1GiB] [--small-files 10000] [--workdir DIR]
[--json out.json] [--peers dvc,restic] [--keep] [--settle]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import blake3
import numpy as np

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[1]
TOOLS = ("engine", "dvc", "restic")
STEPS = ("first", "unchanged", "edited", "growth", "checkout")
INSTALL_HINT = {
    "dvc": "bench/install_peers.sh (or: python3 -m venv .venv-peers && .venv-peers/bin/pip install dvc)",
    "restic": "bench/install_peers.sh (or: apt-get install -y restic)",
}


def log(msg: str) -> None:
    print(f"[bench_data {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    """Parse '1GiB', '512MiB', '64M' or '65536' into bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        return int(float(t[:-1]) * mult[t[-1]]) if t and t[-1] in mult else int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 1GiB or 512MiB, got {text!r}") from None


def generate(data: Path, size: int, n_small: int, seed: int) -> int:
    """Write the big files (16-64 MiB) and ``small/`` into `data`; return the total bytes."""
    rng = np.random.default_rng(seed)
    (data / "small").mkdir(parents=True)
    total, i = 0, 0
    while total < size:
        n = min(int(rng.integers(16 * MiB, 64 * MiB + 1)), max(size - total, 16 * MiB))
        (data / f"big_{i:03d}.bin").write_bytes(rng.bytes(n))
        total, i = total + n, i + 1
    for j, n in enumerate(rng.integers(1024, 8 * 1024 + 1, n_small)):
        (data / "small" / f"s_{j:05d}.bin").write_bytes(rng.bytes(int(n)))
        total += int(n)
    return total


def plan_edits(data: Path, seed: int) -> list[tuple[str, str, bytes]]:
    """Choose the edits (kind, file name, payload) once, so every tool gets the same ones."""
    rng = np.random.default_rng(seed + 1)
    bigs = sorted(p.name for p in data.glob("big_*.bin"))
    kinds = ["insert"] * 4 + ["overwrite"] * 2 + ["append"] * 2
    if len(bigs) < len(kinds):
        log(f"warning: only {len(bigs)} big files; applying the first {len(bigs)} edits only")
    names = [bigs[k] for k in rng.permutation(len(bigs))]
    return [(k, n, rng.bytes(100 if k == "insert" else MiB)) for k, n in zip(kinds, names)]


def apply_edits(data: Path, edits: list[tuple[str, str, bytes]]) -> None:
    for kind, name, payload in edits:
        p = data / name
        if kind == "insert":
            p.write_bytes(payload + p.read_bytes())
        elif kind == "overwrite":
            with open(p, "r+b") as f:
                f.seek(max(p.stat().st_size // 2 - len(payload) // 2, 0))
                f.write(payload)
        else:
            with open(p, "ab") as f:
                f.write(payload)


def disk_usage(path: Path) -> tuple[int, int]:
    """Return (sum of st_blocks * 512, sum of st_size) of the files under `path`, each inode once."""
    seen, blocks, apparent = set(), 0, 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                blocks, apparent = blocks + st.st_blocks * 512, apparent + st.st_size
    return blocks, apparent


def tree_digest(path: Path) -> dict[str, str]:
    """BLAKE3 of every file under `path`, by relative path (to verify restores)."""
    out = {}
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = Path(dirpath, f)
            out[str(p.relative_to(path))] = blake3.blake3(p.read_bytes()).hexdigest()
    return out


def dd_durable(path: Path, mib: int) -> dict:
    """Time ``dd if=/dev/zero of=path bs=1M count=mib conv=fsync``; MB/s from our own clock."""
    os.sync()
    t0 = time.perf_counter()
    r = subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "conv=fsync"],
                       capture_output=True, text=True, check=True)
    sec = time.perf_counter() - t0
    path.unlink()
    summary = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    return {"mib": mib, "seconds": sec, "mb_s": mib * MiB / sec / 1e6, "dd_says": summary}


def cp_durable(src: Path, dest: Path, nbytes: int) -> dict:
    """Time ``cp -a src dest`` then ``os.sync()``: a durable copy of the same tree."""
    os.sync()
    t0 = time.perf_counter()
    subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
    os.sync()
    sec = time.perf_counter() - t0
    return {"seconds": sec, "mb_s": nbytes / sec / 1e6}


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


class Tool:
    """One tool's copy of the data, its store, and the five operations."""

    def __init__(self, name: str, base: Path, exe: str | None = None):
        self.name, self.base, self.exe = name, base, exe
        self.data = base / "data"
        self.restore_dir = base / "restore"
        self.env = dict(os.environ, DVC_NO_ANALYTICS="1", RESTIC_PASSWORD="bench-data",
                        RESTIC_REPOSITORY=str(base / "repo"), RESTIC_CACHE_DIR=str(base / "cache"))

    def store(self) -> Path:
        return {"engine": self.base / "store", "dvc": self.base / ".dvc" / "cache",
                "restic": self.base / "repo"}[self.name]

    def setup(self) -> None:
        if self.name == "dvc":
            run([self.exe, "init", "--no-scm", "-q"], self.base, self.env)
            run([self.exe, "config", "core.analytics", "false"], self.base, self.env)
        elif self.name == "restic":
            run([self.exe, "init"], self.base, self.env)

    def snapshot(self) -> None:
        if self.name == "engine":
            import engine.data

            engine.data.snapshot(str(self.data), name="bench", store=str(self.store()))
        elif self.name == "dvc":
            run([self.exe, "add", "-q", "data"], self.base, self.env)
        else:
            run([self.exe, "backup", "-q", str(self.data)], self.base, self.env)

    def prepare_checkout(self) -> None:
        # dvc restores in place: move its data dir aside (not deleted: a just-freed block is
        # faster to write on some virtual disks, see the notes printed with the table)
        if self.name == "dvc":
            self.data.rename(self.base / "data.moved-aside")
        else:
            self.restore_dir.mkdir()

    def checkout(self) -> Path:
        """Restore the latest version; return the directory holding the restored tree."""
        if self.name == "engine":
            import engine.data

            engine.data.checkout("bench@latest", str(self.restore_dir), store=str(self.store()))
            return self.restore_dir
        if self.name == "dvc":
            run([self.exe, "checkout", "-q"], self.base, self.env)
            return self.data
        run([self.exe, "restore", "latest", "--target", str(self.restore_dir)], self.base, self.env)
        return self.restore_dir / str(self.data).lstrip("/")

    def version(self) -> str:
        if self.name == "engine":
            import engine

            return engine.__version__
        if self.name == "dvc":
            return run([self.exe, "--version"], self.base, self.env).strip()
        return run([self.exe, "version"], self.base, self.env).split()[1]  # "restic 0.14.0 ..."


DROP_CACHES = Path("/proc/sys/vm/drop_caches")
SETTLE = {"on": False}


def settle(base: Path) -> None:
    """With ``--settle``: drop the page cache, then read every file under ``base`` back
    into it, so that each tool starts each step with the same memory state: its inputs
    and its store cached, and free memory that the kernel has used before.

    On a virtual machine whose memory is backed lazily by the host (this benchmark's
    machines), the first use of a guest page costs a host fault inside the kernel: a
    checkout of 3 GiB took 1.4 s of system time right after a drop and 8.6 s with 13 GiB
    of older cache around (same data, same code). Which tool runs into fresh pages
    would otherwise decide part of the result.
    """
    os.sync()
    DROP_CACHES.write_text("1\n")
    buf = bytearray(8 << 20)
    for dirpath, _, files in os.walk(base):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                continue
            with open(p, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass


def timed(fn, base: Path | None = None) -> tuple[float, float]:
    """os.sync() (and :func:`settle` of ``base`` with ``--settle``), then time fn();
    return (seconds, seconds of an os.sync() right after)."""
    if SETTLE["on"] and base is not None:
        settle(base)
    os.sync()
    t0 = time.perf_counter()
    fn()
    t1 = time.perf_counter()
    os.sync()
    return t1 - t0, time.perf_counter() - t1


def bench_tool(tool: Tool, src: Path, edits, nbytes: int) -> dict:
    log(f"{tool.name}: copying the dataset")
    tool.base.mkdir(parents=True)
    shutil.copytree(src, tool.data)
    tool.setup()
    res: dict = {"version": tool.version()}
    log(f"{tool.name}: first snapshot ({nbytes / MiB:.0f} MiB)")
    res["first_s"], res["first_sync_s"] = timed(tool.snapshot, tool.base)
    res["first_mb_s"] = nbytes / res["first_s"] / 1e6
    res["first_durable_s"] = res["first_s"] + res["first_sync_s"]
    res["first_durable_mb_s"] = nbytes / res["first_durable_s"] / 1e6
    res["store_after_first"] = disk_usage(tool.store())[0]
    log(f"{tool.name}: first snapshot {res['first_s']:.2f} s; re-snapshot of the unchanged tree")
    res["unchanged_s"], _ = timed(tool.snapshot, tool.base)
    apply_edits(tool.data, edits)
    expected = tree_digest(tool.data)
    before = disk_usage(tool.store())
    log(f"{tool.name}: snapshot after edits")
    res["edited_s"], _ = timed(tool.snapshot, tool.base)
    after = disk_usage(tool.store())
    res["growth_bytes"], res["growth_apparent_bytes"] = after[0] - before[0], after[1] - before[1]
    res["store_after_edits"] = after[0]
    log(f"{tool.name}: checkout of the latest version")
    tool.prepare_checkout()
    holder: list[Path] = []
    res["checkout_s"], _ = timed(lambda: holder.append(tool.checkout()), tool.base)
    got = tree_digest(holder[0])
    res["checkout_ok"] = got == expected
    if not res["checkout_ok"]:
        diff = sorted(set(got.items()) ^ set(expected.items()))[:5]
        log(f"{tool.name}: RESTORED TREE DIFFERS from the snapshotted one, e.g. {diff}")
    return res


def fmt(x, kind: str) -> str:
    if x is None:
        return "-"
    if kind == "bytes":
        return f"{x / MiB:,.2f} MiB"
    return f"{x:,.1f}" if kind == "mb_s" else f"{x:,.2f}"


def report(r: dict) -> list[str]:
    """Format the table and the targets; fill r['ratios'] and r['targets']."""
    t, dd, cp = r["tools"], r["dd_best_mb_s"], r["cp_best_mb_s"]
    rows = [("first snapshot (s)", "first_s", "s"), ("first snapshot (MB/s)", "first_mb_s", "mb_s"),
            ("first snapshot + os.sync() (s)", "first_durable_s", "s"),
            ("first snapshot + os.sync() (MB/s)", "first_durable_mb_s", "mb_s"),
            ("re-snapshot, unchanged (s)", "unchanged_s", "s"),
            ("snapshot after edits (s)", "edited_s", "s"),
            ("store growth from edits", "growth_bytes", "bytes"),
            ("checkout latest (s)", "checkout_s", "s")]
    get = {name: (lambda k, name=name: t.get(name, {}).get(k)) for name in TOOLS}
    head = ["measurement", *TOOLS, "engine/dvc", "engine/restic", "engine/cp", "engine/dd"]
    table, r["ratios"] = [], {}
    for label, key, kind in rows:
        e = get["engine"](key)
        ratios = []
        for peer in ("dvc", "restic"):
            p = get[peer](key)
            q = e / p if e is not None and p else None
            r["ratios"][f"{key}:engine/{peer}"] = q
            ratios.append("-" if q is None else f"{q:.3f}")
        vs_cp = f"{e / cp:.2f}" if key.endswith("mb_s") and e is not None else ""
        vs_dd = f"{e / dd:.2f}" if key.endswith("mb_s") and e is not None else ""
        table.append([label, *(fmt(get[n](key), kind) for n in TOOLS), *ratios, vs_cp, vs_dd])
    widths = [max(len(str(row[i])) for row in [head, *table]) for i in range(len(head))]
    lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                       for i, (c, w) in enumerate(zip(row, widths))) for row in [head, *table]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    e = t.get("engine", {})

    def check(desc, ok, detail):
        r["targets"][desc] = ok
        lines.append(f"  [{'n/a' if ok is None else 'MET' if ok else 'NOT MET':>7}] {desc}: {detail}")

    def vs(peer, key, limit, desc, unit="s"):
        p, v = t.get(peer, {}).get(key), e.get(key)
        if p is None or v is None:
            return check(desc, None, f"{'engine' if v is None else peer} not measured")
        ok = v <= limit * p if key == "growth_bytes" else v < p if key == "first_s" else v <= p
        shown = (f"{v / MiB:.2f} MiB vs {p / MiB:.2f} MiB" if unit == "bytes" else f"{v:.2f} s vs {p:.2f} s")
        check(desc, ok, shown + (f" (ratio {v / p:.4f}, limit {limit:.4f})" if unit == "bytes" else ""))

    r["targets"] = {}
    lines += ["", "targets:"]
    vs("dvc", "first_s", 1, "first snapshot faster than dvc")
    vs("restic", "first_s", 1, "first snapshot faster than restic")
    if e.get("first_mb_s") is None:
        check("first snapshot + sync >= 80% of a durable copy", None, "engine not measured")
        check("first snapshot >= 80% of durable write speed", None, "engine not measured")
    else:
        check("first snapshot + sync >= 80% of a durable copy", e["first_durable_mb_s"] >= 0.8 * cp,
              f"{e['first_durable_mb_s']:.1f} MB/s = {e['first_durable_mb_s'] / cp:.2f} x "
              f"cp -a + sync {cp:.1f} MB/s")
        check("first snapshot >= 80% of durable write speed", e["first_mb_s"] >= 0.8 * dd,
              f"{e['first_mb_s']:.1f} MB/s = {e['first_mb_s'] / dd:.2f} x dd {dd:.1f} MB/s "
              f"(with the os.sync() after it: {e['first_durable_mb_s'] / dd:.2f} x)")
    vs("restic", "growth_bytes", 1 / 3, "growth after edits <= 1/3 of restic's", "bytes")
    vs("dvc", "growth_bytes", 1 / 100, "growth after edits <= 1/100 of dvc's", "bytes")
    vs("dvc", "unchanged_s", 1, "unchanged re-snapshot no slower than dvc's")
    floor = sum(n for _, _, n in r.get("edits", []))
    if floor and e.get("growth_bytes") is not None:
        # The edits write random (incompressible) bytes: no store can grow by less.
        lines.append(f"  note: the edits write {floor / MiB:.2f} MiB of new random bytes, a floor for any "
                     f"store; engine growth = {e['growth_bytes'] / floor:.2f} x that floor"
                     + (f"; 1/100 of dvc's growth is {t['dvc']['growth_bytes'] / 100 / MiB:.2f} MiB, "
                        "below the floor" if t.get("dvc", {}).get("growth_bytes") and
                        t["dvc"]["growth_bytes"] / 100 < floor else ""))
    return lines


def find_peer(name: str) -> str | None:
    local = ROOT / ".venv-peers" / "bin" / name
    if name == "dvc" and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=1 << 30, help="bytes of big files (1GiB)")
    ap.add_argument("--small-files", type=int, default=10_000, help="number of 1-8 KiB files")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="empty or new directory to work in (default: a temp dir under /tmp)")
    ap.add_argument("--json", default=None, help="also write all numbers to this JSON file")
    ap.add_argument("--peers", default="dvc,restic", help="comma-separated peers to run")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--seed", type=int, default=2026, help="seed of the data and the edits")
    ap.add_argument("--settle", action="store_true",
                    help="before each timed step, drop the page cache and read the tool's "
                    "files back (needs root; see settle())")
    args = ap.parse_args(argv)
    if args.settle:
        if not os.access(DROP_CACHES, os.W_OK):
            ap.error(f"--settle needs write access to {DROP_CACHES} (run as root)")
        SETTLE["on"] = True

    peers = [p for p in args.peers.split(",") if p]
    if unknown := set(peers) - {"dvc", "restic"}:
        ap.error(f"unknown peers {sorted(unknown)}")
    if args.workdir is None:
        work = Path(tempfile.mkdtemp(prefix="bench_data-", dir="/tmp"))
    else:
        work = args.workdir.resolve()
        if work.exists() and any(work.iterdir()):
            ap.error(f"--workdir {work} is not empty")
        work.mkdir(parents=True, exist_ok=True)

    tools: list[Tool] = []
    try:
        import engine.data

        engine.data.snapshot, engine.data.checkout  # noqa: B018 (the API must be there)
        tools.append(Tool("engine", work / "engine"))
    except (ImportError, AttributeError) as exc:
        log(f"engine.data API not available ({exc}); skipping the engine column")
    for p in peers:
        exe = find_peer(p)
        if exe is None:
            where = ".venv-peers/bin and PATH" if p == "dvc" else "PATH"
            log(f"{p} not found (looked in {where}); skipping it. Install: {INSTALL_HINT[p]}")
        else:
            tools.append(Tool(p, work / p, exe))

    r: dict = {"size": args.size, "small_files": args.small_files, "seed": args.seed,
               "settle": args.settle,
               "workdir": str(work), "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
               "python": platform.python_version(), "tools": {}}
    try:
        src = work / "src"
        log(f"generating {args.size / MiB:.0f} MiB of big files + {args.small_files} small files")
        nbytes = generate(src, args.size, args.small_files, args.seed)
        edits = plan_edits(src, args.seed)
        r["dataset_bytes"], r["big_files"] = nbytes, len(list(src.glob("big_*.bin")))
        r["edits"] = [(k, n, len(p)) for k, n, p in edits]
        mib = -(-nbytes // MiB)
        log(f"dd: durable write of {mib} MiB; cp -a of the tree + sync")
        r["dd"] = [dd_durable(work / "dd.bin", mib)]
        r["cp"] = [cp_durable(src, work / "cp-1", nbytes)]
        for tool in tools:
            # nothing is deleted until the end, so no tool writes on blocks another just freed
            try:
                r["tools"][tool.name] = bench_tool(tool, src, edits, nbytes)
            except Exception as exc:  # report the others anyway
                log(f"{tool.name} FAILED: {exc!r}")
                r["tools"][tool.name] = {"version": "?", "error": repr(exc)}
        log(f"dd: durable write of {mib} MiB, again")
        r["dd"].append(dd_durable(work / "dd.bin", mib))
        r["cp"].append(cp_durable(src, work / "cp-2", nbytes))  # kept: see the thin-disk note
        r["dd_best_mb_s"] = max(d["mb_s"] for d in r["dd"])
        r["cp_best_mb_s"] = max(d["mb_s"] for d in r["cp"])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    lines = report(r)
    print(f"dataset: {r['big_files']} files of 16-64 MiB + {args.small_files} files of 1-8 KiB, "
          f"{nbytes / MiB:,.1f} MiB in all; work dir {work} ({'kept' if args.keep else 'removed'})")
    print("durable write (dd bs=1M conv=fsync, before / after the tools): "
          + " / ".join(f"{d['mb_s']:.1f}" for d in r["dd"]) + " MB/s; the faster counts")
    print("durable copy of the tree (cp -a + sync, before / after the tools): "
          + " / ".join(f"{d['mb_s']:.1f}" for d in r["cp"]) + " MB/s; the faster counts")
    print("versions: " + "; ".join(f"{n} {v['version']}" for n, v in r["tools"].items()))
    print("notes: - input files are in the page cache for every tool; os.sync() runs before each "
          "timed step" + (", after dropping the page cache and reading the tool's files back "
                          "(--settle)" if args.settle else "") + "\n"
          "       - wall-clock times; the engine runs in-process, the peers as subprocesses\n"
          "       - growth = disk usage (sum of st_blocks * 512); ratios = engine / peer\n"
          "       - dd writes a new file; on thin-provisioned disks, blocks already allocated or "
          "just freed\n         are written much faster, so nothing is deleted until the end\n")
    print("\n".join(lines))
    bad = [n for n, v in r["tools"].items() if not v.get("checkout_ok")]
    if bad:
        print(f"\nERROR: failed, or restored a different tree: {', '.join(bad)}")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
