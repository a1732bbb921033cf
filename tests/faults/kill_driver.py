"""A process for test_kill.py to SIGKILL: one store operation after another, in a loop.

    python kill_driver.py OP STORE WORK SEED [ARG ...]

Prints ``ready`` once imports and setup are done, then one JSON line before each
operation (``{"ev": "begin", ...}``) and one after it returned (``{"ev": "done", ...}``),
flushed at once, so that the test knows which operations were reported finished when
the kill came, and which one was in flight. Content comes from ``faultkit`` and the
seeds printed (and stored in each version's message), so the test can rebuild it.

OP is one of ``snapshot``, ``checkout``, ``register``, ``alias``, ``promote``,
``gc-data``, ``gc-model``. The gc operations run once, then the process exits 0.
"""

from __future__ import annotations

import json
import os
import sys
import time

import faultkit as fk


def say(**ev) -> None:
    print(json.dumps({**ev, "t": time.time()}), flush=True)


def main(argv: list[str]) -> int:
    op, root, work, seed = argv[0], argv[1], argv[2], int(argv[3])
    extra = argv[4:]
    import engine.data as D
    from engine.registry import GateRejected, Registry

    print("ready", flush=True)
    i = 0
    if op == "snapshot":
        src = os.path.join(work, "src")
        while True:
            i += 1
            fk.write_tree(src, fk.tree_files(seed, i))
            say(ev="begin", op=op, i=i)
            v = D.snapshot(src, "ds", store=root, message=json.dumps([seed, i]))
            say(ev="done", op=op, i=i, ref=v.ref, unchanged=v.unchanged)
    if op == "checkout":
        dest = os.path.join(work, "dest")
        while True:
            ref = extra[i % len(extra)]
            i += 1
            say(ev="begin", op=op, i=i, ref=ref)
            D.checkout(ref, dest, store=root)
            say(ev="done", op=op, i=i, ref=ref)
    if op in ("register", "alias", "promote", "gc-model"):
        reg = Registry(root)
    if op == "register":
        while True:
            i += 1
            say(ev="begin", op=op, i=i)
            mv = reg.register("m", fk.blob(seed, i), message=json.dumps([seed, i]))
            say(ev="done", op=op, i=i, ref=mv.ref)
    if op == "alias":
        while True:
            target = extra[i % len(extra)]
            i += 1
            say(ev="begin", op=op, i=i, target=target)
            reg.set_alias(target, "production")
            say(ev="done", op=op, i=i, target=target)
    if op == "promote":
        i = int(extra[0])  # versions so far: each new one has a lower val_loss than all
        while True:
            i += 1
            say(ev="begin", op="register", i=i)
            mv = reg.register("p", fk.blob(seed, i, 64 << 10), metrics={"val_loss": 1 / (i + 2)},
                              message=json.dumps([seed, i]))
            say(ev="done", op="register", i=i, ref=mv.ref)
            say(ev="begin", op=op, i=i, target=mv.ref)
            reg.promote(mv.ref, "production", gate="val_loss<=")
            say(ev="done", op=op, i=i, target=mv.ref)
            if i % 3 == 0:  # a worse version: the gate refuses it, nothing is committed
                say(ev="begin", op="reject", i=i, target="p:v1")
                try:
                    reg.promote("p:v1", "production", gate="val_loss<=")
                except GateRejected:
                    say(ev="done", op="reject", i=i, target="p:v1")
                else:
                    say(ev="error", op="reject", i=i, why="the gate let a worse version pass")
                    return 1
    if op == "gc-data":
        say(ev="begin", op=op)
        rep = D.gc(store=root, keep_last=2, grace=0)
        say(ev="done", op=op, deleted=rep.versions_deleted)
        return 0
    if op == "gc-model":
        say(ev="begin", op=op)
        rep = reg.gc(keep_last=2, grace=0)
        say(ev="done", op=op, deleted=rep["versions_deleted"])
        return 0
    print(f"unknown operation {op!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
