"""``mlops chunk`` and ``mlops backends``: content-defined chunking of a file, and the
kernels with the backends usable on this machine."""

from __future__ import annotations

import time

from .args import parse_size
from .format import count, human_bytes, out

RATE_MIN_BYTES = 1 << 20  # below this, chunking takes well under a millisecond: no rate


def cmd_chunk(args) -> int:
    from ..kernels import CdcParams
    from ..store import pipeline

    params = CdcParams(args.avg_size, args.min_size, args.max_size)
    pipeline.warm_up(params, args.backend)  # load (and compile) the kernel off the clock
    t0 = time.perf_counter()
    table = pipeline.chunk_file(args.file, params, backend=args.backend,
                                progress=None if not args.json else False)
    dt = time.perf_counter() - t0
    size = int(sum(table.column("length").to_pylist())) if table.num_rows else 0
    summary = {
        "file": args.file,
        "size": size,
        "chunks": table.num_rows,
        "file_id": pipeline.file_id(table).hex(),
        "seconds": round(dt, 6),
    }
    if args.json:
        summary["chunk_list"] = [
            {"offset": o, "length": n, "id": i.hex()}
            for o, n, i in zip(table.column("offset").to_pylist(), table.column("length").to_pylist(),
                               table.column("id").to_pylist())
        ]
    rate = f", {human_bytes(size / dt)}/s" if size >= RATE_MIN_BYTES and dt > 0 else ""
    out(args, summary, f"{args.file}: {human_bytes(size)} in {count(table.num_rows, 'chunk')}, "
                       f"file id {summary['file_id'][:16]}…{rate}")
    return 0


def cmd_backends(args) -> int:
    from .. import kernels as K

    rows = []
    for k in K.kernels():
        usable = K.usable_backends(k)
        rows.append({"kernel": k, "backends": K.backends(k), "usable": usable,
                     "selected": K.resolve(k) if usable else None})
    if not out(args, rows):
        width = max((len(r["kernel"]) for r in rows), default=0)
        for r in rows:
            marks = [f"{b}{'*' if b == r['selected'] else ''}{'' if b in r['usable'] else ' (unusable)'}"
                     for b in r["backends"]]
            print(f"{r['kernel']:<{width}}  {', '.join(marks)}")
        print("(* = selected; force with MLOPS_BACKEND=name or MLOPS_BACKEND=kernel=name)")
        for backend, why in _unusable_reasons(K, rows).items():
            print(f"{backend}: {why}")
    return 0


def _unusable_reasons(K, rows) -> dict[str, str]:
    """Why each backend that some kernel lists but cannot use is unusable (the registry's
    own message, with its install hint), once per backend."""
    reasons: dict[str, str] = {}
    for r in rows:
        for b in r["backends"]:
            if b in r["usable"] or b in reasons:
                continue
            try:
                K.get(r["kernel"], b)
            except K.BackendUnavailable as exc:
                msg = str(exc).split(" is not usable (", 1)[-1]
                msg = msg.removeprefix("BackendUnavailable: ")
                reasons[b] = msg[:-1] if msg.endswith(")") and msg.count("(") < msg.count(")") \
                    else msg
    return reasons


def add_parser(sub, parser_class) -> None:
    c = sub.add_parser("chunk", help="split a file into content-defined chunks and hash them",
                       description="Split FILE into content-defined chunks (gear hash) and print "
                       "their BLAKE3 ids. The same bytes give the same chunks on any machine.")
    c.add_argument("file", help="a regular file")
    c.add_argument("--avg-size", type=parse_size, default=64 * 1024,
                   help="target chunk size, a power of two (default 64KiB)")
    c.add_argument("--min-size", type=parse_size, default=None, help="minimum chunk size (default avg/8)")
    c.add_argument("--max-size", type=parse_size, default=None, help="maximum chunk size (default avg*2)")
    c.add_argument("--backend", choices=["cython", "numba", "reference"], default=None,
                   help="force a chunker backend (default: fastest usable)")
    c.add_argument("--json", action="store_true", help="print every chunk as JSON")
    c.set_defaults(func=cmd_chunk)

    b = sub.add_parser("backends", help="list kernels and the backends usable here",
                       description="List every kernel with its backends, which of them load on "
                       "this machine and which one is selected.")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=cmd_backends)
