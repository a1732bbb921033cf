"""The ``mlops`` command: the top-level parser, and how errors become exit codes.

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
import warnings

from .. import __version__
from . import chunk, data, demo, model, monitor, run, runs, slurm

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_STORE, EXIT_UNTESTABLE = 0, 1, 2, 3, 4
#: Subcommands that only read the store: an I/O error there changed nothing in it.
_STORE_READERS = frozenset({"checkout", "diff", "status", "list", "log", "verify", "pull", "show",
                            "compare", "lineage", "history", "search", "jobs", "logs"})
EXIT_PIPE = 128 + 13  # 128 + SIGPIPE: what a shell reports for `yes | head`

#: the command groups in the order ``mlops --help`` lists them
GROUPS = (chunk, demo, data, monitor, model, runs, run, slurm)


class _UsageError(Exception):
    """argparse found bad usage; main() reports it (as text or JSON) and exits 2."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # raised, not exited, so that main() can report it as JSON too
        raise _UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``mlops`` command; each group module adds its own."""
    p = _Parser(
        prog="mlops",
        description="mlops-engine: versioned data, MPI training, artifact registry and "
        "drift monitoring for HPC clusters.",
        epilog="Run 'mlops COMMAND --help' for the options of a command.",
    )
    p.add_argument("--version", action="version", version=f"mlops-engine {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for group in GROUPS:
        group.add_parser(sub, _Parser)
    return p


def _gate_rejected() -> tuple:
    """The registry's GateRejected if the registry was imported (only it raises it), so
    commands that never touch the registry do not pay for importing it."""
    mod = sys.modules.get("engine.registry.errors")
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


def _word_warnings(cmd: str):
    """Print warnings (a damaged pack index skipped, ...) as ``mlops CMD: warning: ...``, not
    with Python's file and line; returns the previous ``warnings.showwarning``."""
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"mlops{' ' + cmd if cmd else ''}: warning: {message}", file=file or sys.stderr)

    shown, warnings.showwarning = warnings.showwarning, show
    return shown


def main(argv: list[str] | None = None) -> int:
    """Run one ``mlops`` command line; its exit status (see the module's docstring).

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``mlops``; default ``sys.argv[1:]``.

    Examples
    --------
    >>> from engine.cli import main
    >>> main(["data", "list", "--store", "/tmp/empty-store", "--json"])  # doctest: +SKIP
    []
    0
    """
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
    from ..store.errors import StoreBusy, StoreCorruption, StoreError, StoreFormatError

    # "data verify": the command and the subcommand of its group (dest "<group>_command")
    cmd = " ".join(v for k, v in vars(args).items()
                   if v and (k == "command" or k.endswith("_command")))
    as_json = bool(getattr(args, "json", False))
    shown = _word_warnings(cmd)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
        return code
    except BrokenPipeError:  # `mlops chunk --json f | head`: stop quietly, like a Unix tool
        _silence_stdout()
        return EXIT_PIPE
    except _gate_rejected() as exc:  # a check that failed, not an error: before StoreError
        return _report(cmd, EXIT_FAIL, "rejected", str(exc), as_json)
    except StoreBusy as exc:  # gc beside a snapshot: nothing was done, try again later
        return _report(cmd, EXIT_FAIL, "busy", str(exc), as_json)
    except (StoreCorruption, StoreFormatError) as exc:
        return _report(cmd, EXIT_STORE, "store error", str(exc), as_json)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, ValueError,
            TypeError, KeyError, StoreError) as exc:
        return _report(cmd, EXIT_USAGE, "error", str(exc), as_json)
    except OSError as exc:  # ENOSPC, EIO, ...: nothing is recorded; gc frees what was written
        # only commands that write to a store say so (`mlops chunk` has none, a checkout
        # writes to its destination only)
        reads = cmd.rsplit(" ", 1)[-1] in _STORE_READERS
        unchanged = ("; no version or commit was recorded (a write that failed may have left "
                     "packs it had published, which `mlops data gc` frees once they are older "
                     "than its grace, a minute by default)"
                     if hasattr(args, "store") and not reads else "")
        return _report(cmd, EXIT_STORE, "I/O error", f"{exc}{unchanged}", as_json)
    finally:
        warnings.showwarning = shown
