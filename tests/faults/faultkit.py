"""Shared pieces of the fault suites (tests/faults, docs/faults.md).

Deterministic content from seeds (so that a test can rebuild what a killed process
wrote from the seed it printed), looks into a store for the garbage a fault may leave,
the ``mlops data verify`` / ``mlops model verify`` commands run in this process, and
the count tables the suites print and write to ``$MLOPS_FAULT_REPORT``.

Imported by the test modules and by ``kill_driver.py`` (a separate process), so it
imports nothing of pytest.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import stat

#: Base seed of every suite; ``MLOPS_FAULT_SEED`` replays a run (each failure prints the
#: seed of its trial).
BASE_SEED = int(os.environ.get("MLOPS_FAULT_SEED", "20261204"))

#: checkout's temporaries (engine.data.restore.TMP_NAME): a killed checkout may leave them
CHECKOUT_TMP = re.compile(r".+\.[0-9a-f]{8}\.mlops-tmp$")


def rng_for(*parts) -> random.Random:
    """A generator seeded by ``parts`` (strings and ints), the same in every process."""
    return random.Random("/".join(map(str, parts)))


# ----------------------------------------------------------------------------- content


def tree_files(seed: int, i: int, scale: int = 1) -> dict[str, bytes]:
    """The files of tree ``i`` of series ``seed``: six files (16 KiB to 400 KiB times
    ``scale``), two of them in a subdirectory. Files keep the content of tree 0 where
    ``(i + k) % 3`` is not 0, so that consecutive trees share chunks (deduplication)."""
    out = {}
    for k in range(6):
        gen = rng_for(seed, k, i if (i + k) % 3 == 0 or i == 0 else 0)
        size = int(gen.uniform(16 << 10, 400 << 10) * scale)
        name = f"f{k}.bin" if k < 4 else f"sub/g{k}.bin"
        out[name] = gen.randbytes(size)
    out["note.txt"] = f"tree {seed}/{i}\n".encode()
    return out


def blob(seed: int, i: int, size: int = 200 << 10) -> bytes:
    """Artifact bytes ``i`` of series ``seed`` (registrations)."""
    return rng_for("blob", seed, i).randbytes(size)


def write_tree(root, files: dict[str, bytes], mtime_ns: int | None = None) -> None:
    """Make directory ``root`` hold exactly ``files`` (path -> bytes), each file with the
    modification time ``mtime_ns`` if given (so that manifests come out the same)."""
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    have = read_tree(root)
    for rel in have:
        if rel not in files:
            os.unlink(os.path.join(root, *rel.split("/")))
    for rel, data in files.items():
        p = os.path.join(root, *rel.split("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if have.get(rel) != data:
            with open(p, "wb") as f:
                f.write(data)
        if mtime_ns is not None:
            os.utime(p, ns=(mtime_ns, mtime_ns))


def read_tree(root, *, skip_tmp: bool = False) -> dict[str, bytes]:
    """path -> bytes of every regular file under ``root`` (checkout temporaries left out
    with ``skip_tmp``)."""
    out = {}
    root = os.fspath(root)
    for dp, _dirs, names in os.walk(root):
        for n in names:
            p = os.path.join(dp, n)
            if skip_tmp and CHECKOUT_TMP.match(n):
                continue
            if stat.S_ISREG(os.lstat(p).st_mode):
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root).replace(os.sep, "/")] = f.read()
    return out


def checkout_temporaries(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(dp, n), root)
                  for dp, _, names in os.walk(root) for n in names if CHECKOUT_TMP.match(n))


# ----------------------------------------------------------------------------- store state


def leftovers(root) -> dict[str, list[str]]:
    """What crashed or failed writers may leave in a store: ``tmp`` (files under tmp/),
    ``unpublished`` (packs without an index), ``dot_tmp`` (temporaries of atomic writes)
    and ``locks`` (lock files other than gc.epoch)."""
    root = os.fspath(root)
    out: dict[str, list[str]] = {"tmp": [], "unpublished": [], "dot_tmp": [], "locks": []}
    for dp, _, names in os.walk(root):
        rel_dir = os.path.relpath(dp, root).replace(os.sep, "/")
        for n in names:
            rel = n if rel_dir == "." else f"{rel_dir}/{n}"
            if rel.startswith("tmp/"):
                out["tmp"].append(rel)
            elif n.startswith(".") and n.endswith(".tmp"):
                out["dot_tmp"].append(rel)
            elif rel.startswith("locks/"):
                if n != "gc.epoch":
                    out["locks"].append(rel)
            elif rel.startswith("packs/") and n.endswith(".pack") and n[:-5] + ".idx" not in names:
                out["unpublished"].append(rel)
    return {k: sorted(v) for k, v in out.items()}


def dead_packs(root) -> list[str]:
    """Published packs of which no live root (dataset or registry version) uses a chunk."""
    from engine.store import Store
    from engine.store.roots import live_set, load_providers

    with Store(root, create=False) as st:
        live = live_set(st, load_providers(st))
        return [pid for pid in st.pack_ids()
                if not any(e["id"].tobytes() in live for e in st.read_index(pid))]


def store_files(root) -> dict[str, bytes]:
    """Every file of a store (relative path -> bytes), locks/ left out."""
    return {k: v for k, v in read_tree(root).items() if not k.startswith("locks/")}


# ----------------------------------------------------------------------------- the CLI


def cli(*argv) -> tuple[int, str, str]:
    """``mlops ARGV`` in this process: (exit status, stdout, stderr)."""
    import warnings

    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def verify_both(root) -> tuple[tuple[int, dict], tuple[int, dict]]:
    """``mlops data verify --json`` and ``mlops model verify --json`` of store ``root``:
    ((exit status, report), (exit status, report)). A store without a registry log is
    not given to ``model verify`` (its report is then ``{}`` with status 0)."""
    code, out, err = cli("data", "verify", "--store", root, "--json")
    data = (code, json.loads(out) if out.strip() else {"error": err})
    if os.path.isdir(os.path.join(os.fspath(root), "registry")):
        code, out, err = cli("model", "verify", "--store", root, "--json")
        model = (code, json.loads(out) if out.strip() else {"error": err})
    else:
        model = (0, {})
    return data, model


# ----------------------------------------------------------------------------- reports


def format_table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_report(name: str, payload: dict) -> str | None:
    """Write ``payload`` as ``$MLOPS_FAULT_REPORT/<name>.json`` if the variable is set;
    returns the path written."""
    d = os.environ.get("MLOPS_FAULT_REPORT")
    if not d:
        return None
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{name}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True)
    return path
