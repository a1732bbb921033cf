"""The ``mlops`` command.

Exit codes: 0 success; 1 a check failed (verify found damage, diff or status
--exit-code found differences, drift found, a promotion gate rejected a version);
2 bad usage or input (an unknown reference, a missing file); 3 the store is damaged
or an I/O error (disk full) stopped the command; 4 the drift verdict is
"untestable" (``mlops monitor drift`` could compare nothing); 141 (128 + SIGPIPE)
stdout was closed early (``mlops ... | head``): the command stops quietly, as a
Unix tool killed by SIGPIPE does.

With ``--json``, an error is one JSON object on stderr:
``{"error": ..., "type": ..., "exit_code": ..., "command": ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from . import __version__

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_STORE, EXIT_UNTESTABLE = 0, 1, 2, 3, 4
EXIT_PIPE = 128 + 13  # 128 + SIGPIPE: what a shell reports for `yes | head`


class _UsageError(Exception):
    """argparse found bad usage; main() reports it (as text or JSON) and exits 2."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # raised, not exited, so that main() can report it as JSON too
        raise _UsageError(self, message)


def _size(text: str) -> int:
    """Parse '65536', '64K', '64KiB', '8M', '1G' into bytes."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if t and t[-1] in mult:
            return int(float(t[:-1]) * mult[t[-1]])
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 65536, 64K or 8MiB, got {text!r}") from None


def _params(args):
    from .kernels.cdc import CdcParams

    return CdcParams(args.avg_size, args.min_size, args.max_size)


RATE_MIN_BYTES = 1 << 20  # below this, chunking takes well under a millisecond: no rate


def cmd_chunk(args) -> int:
    from . import chunking
    from .progress import count, human_bytes

    params = _params(args)
    chunking.warm_up(params, args.backend)  # load (and compile) the kernel off the clock
    t0 = time.perf_counter()
    table = chunking.chunk_file(args.file, params, backend=args.backend,
                                progress=None if not args.json else False)
    dt = time.perf_counter() - t0
    size = int(sum(table.column("length").to_pylist())) if table.num_rows else 0
    summary = {
        "file": args.file,
        "size": size,
        "chunks": table.num_rows,
        "file_id": chunking.file_id(table).hex(),
        "seconds": round(dt, 6),
    }
    if args.json:
        summary["chunk_list"] = [
            {"offset": o, "length": n, "id": i.hex()}
            for o, n, i in zip(table.column("offset").to_pylist(), table.column("length").to_pylist(),
                               table.column("id").to_pylist())
        ]
        json.dump(summary, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        rate = f", {human_bytes(size / dt)}/s" if size >= RATE_MIN_BYTES and dt > 0 else ""
        print(f"{args.file}: {human_bytes(size)} in {count(table.num_rows, 'chunk')}, "
              f"file id {summary['file_id'][:16]}…{rate}")
    return EXIT_OK


def cmd_backends(args) -> int:
    from . import kernels as K

    rows = []
    for k in K.kernels():
        usable = K.usable_backends(k)
        rows.append({"kernel": k, "backends": K.backends(k), "usable": usable,
                     "selected": K.resolve(k) if usable else None})
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for r in rows:
            marks = [f"{b}{'*' if b == r['selected'] else ''}{'' if b in r['usable'] else ' (unusable)'}"
                     for b in r["backends"]]
            print(f"{r['kernel']:<12} {', '.join(marks)}")
        print("(* = selected; force with MLOPS_BACKEND=name or MLOPS_BACKEND=kernel=name)")
    return EXIT_OK


def cmd_demo(args) -> int:
    from .demo import check_workdir, run_demo

    if args.dir is not None:
        check_workdir(args.dir, "--dir")
    return run_demo(size_mib=args.size_mib, workdir=args.dir, seed=args.seed, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="mlops",
        description="mlops-engine: versioned data, MPI training, artifact registry and "
        "drift monitoring for HPC clusters.",
        epilog="Run 'mlops COMMAND --help' for the options of a command.",
    )
    p.add_argument("--version", action="version", version=f"mlops-engine {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    c = sub.add_parser("chunk", help="split a file into content-defined chunks and hash them",
                       description="Split FILE into content-defined chunks (gear hash) and print "
                       "their BLAKE3 ids. The same bytes give the same chunks on any machine.")
    c.add_argument("file", help="a regular file")
    c.add_argument("--avg-size", type=_size, default=64 * 1024,
                   help="target chunk size, a power of two (default 64KiB)")
    c.add_argument("--min-size", type=_size, default=None, help="minimum chunk size (default avg/8)")
    c.add_argument("--max-size", type=_size, default=None, help="maximum chunk size (default avg*2)")
    c.add_argument("--backend", choices=["cython", "numba", "reference"], default=None,
                   help="force a chunker backend (default: fastest usable)")
    c.add_argument("--json", action="store_true", help="print every chunk as JSON")
    c.set_defaults(func=cmd_chunk)

    b = sub.add_parser("backends", help="list kernels and the backends usable here",
                       description="List every kernel with its backends, which of them load on "
                       "this machine and which one is selected.")
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=cmd_backends)

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

    from .cli_data import add_parser as add_data_parser

    add_data_parser(sub, _Parser)

    from .cli_monitor import add_parser as add_monitor_parser

    add_monitor_parser(sub, _Parser)

    from .cli_registry import add_parser as add_registry_parser

    add_registry_parser(sub, _Parser)
    return p


def _gate_rejected() -> tuple:
    """The registry's GateRejected if the registry was imported (only it raises it), so
    commands that never touch the registry do not pay for importing it."""
    mod = sys.modules.get(f"{__package__}.registry.errors")
    return (mod.GateRejected,) if mod is not None else ()


def _report(cmd: str, code: int, kind: str, message: str, as_json: bool) -> int:
    """Print an error for a person (``mlops CMD: KIND: MESSAGE``) or a script (JSON)."""
    if as_json:
        json.dump({"error": message, "type": kind, "exit_code": code, "command": cmd}, sys.stderr)
        sys.stderr.write("\n")
    else:
        print(f"mlops{' ' + cmd if cmd else ''}: {kind}: {message}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    """Point stdout's descriptor at /dev/null, so that the interpreter's final flush of
    what is still buffered does not fail again ("Exception ignored ... BrokenPipeError")."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing flushes it to a pipe at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        cmd = exc.parser.prog.removeprefix("mlops").strip()
        if "--json" in argv:  # parsing failed, so args.json is unknown: go by the word
            return _report(cmd, EXIT_USAGE, "error", str(exc), True)
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    from .store.errors import StoreCorruption, StoreError, StoreFormatError

    cmd = " ".join(x for x in (args.command, getattr(args, "data_command", None),
                                getattr(args, "monitor_command", None),
                                getattr(args, "model_command", None),
                                getattr(args, "runs_command", None)) if x)
    as_json = bool(getattr(args, "json", False))
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
        return code
    except BrokenPipeError:  # `mlops chunk --json f | head`: stop quietly, like a Unix tool
        _silence_stdout()
        return EXIT_PIPE
    except _gate_rejected() as exc:  # a check that failed, not an error: before StoreError
        return _report(cmd, EXIT_FAIL, "rejected", str(exc), as_json)
    except (StoreCorruption, StoreFormatError) as exc:
        return _report(cmd, EXIT_STORE, "store error", str(exc), as_json)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, ValueError,
            TypeError, KeyError, StoreError) as exc:
        return _report(cmd, EXIT_USAGE, "error", str(exc), as_json)
    except OSError as exc:  # ENOSPC, EIO, ...: a store is left as it was
        # only commands that have a store say so; `mlops chunk` has none to speak of
        unchanged = "; the store is unchanged" if hasattr(args, "store") else ""
        return _report(cmd, EXIT_STORE, "I/O error", f"{exc}{unchanged}", as_json)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
