"""What the ``mlops`` command groups share on the way in: argument types, the common
``--store``/``--json`` options, a subcommand with examples, the registry ``--store`` names.

Internal to :mod:`engine.cli`.
"""

from __future__ import annotations

import argparse
import json

STORE_HELP = "store root: a path or pyarrow.fs URI (default $MLOPS_HOME or ./.mlops)"


def parse_size(text: str) -> int:
    """argparse type of a size: ``'65536'``, ``'64K'``, ``'64KiB'``, ``'8M'``, ``'1G'`` -> bytes.

    Examples
    --------
    >>> parse_size("64KiB"), parse_size("1.5M")
    (65536, 1572864)
    """
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if t and t[-1] in mult:
            return int(float(t[:-1]) * mult[t[-1]])
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 65536, 64K or 8MiB, got {text!r}") from None


def int_at_least(low: int, what: str | None = None):
    """argparse type of an integer ``>= low``; the error says ``expected WHAT``.

    Examples
    --------
    >>> int_at_least(1)("3"), int_at_least(0, "a count")("0")
    (3, 0)
    """
    what = what or f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            n = low - 1
        if n < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return n

    return parse


def number_above(low: float, what: str, *, finite: bool = False, or_equal: bool = False):
    """argparse type of a number ``> low`` (``>= low`` with ``or_equal``; NaN never;
    infinity only unless ``finite``); the error says ``expected WHAT``.

    Examples
    --------
    >>> number_above(1, "a number of windows > 1", finite=True)("100")
    100.0
    """

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        if not (v >= low if or_equal else v > low) or (finite and v == float("inf")):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


def add_wait(p: argparse.ArgumentParser) -> None:
    """``--wait SECONDS`` of the commands that take the store's gc lock (gc, purge): how long
    to wait for snapshots and registrations in progress before refusing."""
    p.add_argument("--wait", type=number_above(0, "a number of seconds >= 0", finite=True,
                                               or_equal=True), default=0.0, metavar="SECONDS",
                   help="wait up to this long for snapshots and registrations in progress on "
                   "the store (default 0: refuse at once, exit 1)")


def key_value(kind: str):
    """argparse type of ``--metric/--param/--tag KEY=VALUE`` -> ``(key, value)``.

    A metric's value must be a number; a param's is parsed as JSON if it parses, else
    kept as a string; a tag's is a string.

    Examples
    --------
    >>> key_value("param")("lr=3e-4"), key_value("tag")("team=vision")
    (('lr', 0.0003), ('team', 'vision'))
    """

    def parse(text: str):
        key, eq, val = text.partition("=")
        key = key.strip()
        if not eq or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
        if kind == "metric":
            try:
                return key, float(val)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"metric {key!r}: value must be a number, got {val!r}") from None
        if kind == "param":
            try:
                return key, json.loads(val)
            except ValueError:
                return key, val
        return key, val

    return parse


def add_common(p: argparse.ArgumentParser) -> None:
    """The ``--store`` and ``--json`` options of the data, model and runs commands."""
    p.add_argument("--store", default=None, help=STORE_HELP)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def add_command(parent, name: str, help: str, description: str, examples: list[str], func):
    """A subcommand of ``parent`` (a subparsers object) running ``func``, with an
    ``examples:`` epilog laid out as written."""
    p = parent.add_parser(name, help=help, description=description,
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog="examples:\n" + "\n".join(f"  {e}" for e in examples))
    p.set_defaults(func=func)
    return p


def add_group(sub, name: str, help: str, description: str, dest: str, parser_class, **kw):
    """A command with subcommands (``mlops data``, ``mlops model``, ...): the subparsers
    object; the group alone prints its help and exits 2."""
    group = sub.add_parser(name, help=help, description=description, **kw)
    subs = group.add_subparsers(dest=dest, metavar="SUBCOMMAND", parser_class=parser_class)
    group.set_defaults(func=lambda a: (group.print_help(), 2)[1])
    return subs


def open_registry(args, create: bool = False):
    """The registry of ``--store``; read-only commands (``create=False``) never create a
    store, and say how to make one when there is none."""
    from .. import config
    from ..registry import Registry

    try:
        return Registry(args.store, create=create)
    except FileNotFoundError:
        if create:
            raise
        root = args.store if args.store is not None else config.store_root()
        raise FileNotFoundError(f"no store at {root!r}: register something first "
                                "(mlops model register) or pass --store / set $MLOPS_HOME") from None
