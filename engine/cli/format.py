"""How every ``mlops`` command prints: JSON or text, tables, sizes, counts and times.

Internal to :mod:`engine.cli`: the command modules format their results only through
these helpers, so that one command's table or JSON looks like another's.
"""

from __future__ import annotations

import json
import sys

from ..progress import count, human_bytes

# count() and human_bytes() live in engine.progress (the progress bar words sizes the same
# way); commands take them from here, with the rest of their wording.
__all__ = ["bar", "count", "human_bytes", "kvs", "num", "out", "table", "value", "when"]


def out(args, obj, text: str | None = None) -> bool:
    """Print ``obj`` as JSON under ``--json``, else ``text`` (when given).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line; only ``args.json`` is read.
    obj : object
        What ``--json`` prints; values JSON cannot encode are printed as ``str()``.
    text : str, optional
        What a person reads instead; None prints nothing, for a caller that prints its
        own text when this returns False.

    Returns
    -------
    bool
        True if JSON was printed.

    Examples
    --------
    >>> import argparse
    >>> out(argparse.Namespace(json=False), {"n": 1}, "1 file")
    1 file
    False
    """
    if args.json:
        json.dump(obj, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    elif text is not None:
        print(text)
    return bool(args.json)


def bar(args) -> bool | None:
    """The ``progress`` argument of an API call: bars draw on a terminal only (None),
    never under ``--json`` (False), whose output a script reads."""
    return False if args.json else None


def table(header: list[str], rows: list[list], right=()) -> None:
    """Print columns as wide as their widest cell; the columns in ``right`` right-aligned.

    Examples
    --------
    >>> table(["NAME", "SIZE"], [["a", "1 B"], ["bb", "10 KiB"]], right={1})
    NAME    SIZE
    a        1 B
    bb    10 KiB
    """
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(c.rjust(w) if i in right else c.ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip())


def when(t: str | None) -> str:
    """An ISO time to the second, as ``2025-01-31 12:00:00``; ``""`` for None."""
    return (t or "")[:19].replace("T", " ")


def value(v) -> str:
    """A param, tag or metric value in a cell: ``-`` for None, a string as is, else JSON."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True)


def num(v) -> str:
    """Like :func:`value`, with floats to 6 significant digits."""
    if isinstance(v, float):
        return f"{v:.6g}"
    return value(v)


def kvs(d: dict) -> str:
    """``a=1, b=x`` sorted by key; ``-`` for an empty dict."""
    return ", ".join(f"{k}={value(v)}" for k, v in sorted(d.items())) or "-"
