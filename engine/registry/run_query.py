"""Questions about runs: filter and sort them by final metrics, compare them side by
side, and summarize one metric's series (with a text sparkline).

A run's *final* metric is the last value it logged (the ``last`` of its ``run_end``
summary); a run still ``RUNNING`` has none yet.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

FILTER_FORM = ("KEY<OP>VALUE with OP one of <, <=, >, >=, ==, != (e.g. 'val_loss<0.3', "
               "'acc>=0.9', 'lr==0.01', 'opt==adam')")
_FILTER_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(<=|>=|==|!=|<|>)\s*(\S.*?)\s*$")
_SORT_RE = re.compile(r"^-?[A-Za-z0-9_./-]+$")
_OPS = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}
BARS = "▁▂▃▄▅▆▇█"


def parse_filter(expr, what: str = "where") -> tuple[str, str, object]:
    """``"val_loss<0.3"`` -> ``("val_loss", "<", 0.3)``; a ValueError names ``what``.

    The value is read as JSON when it parses (numbers, ``true``, ``"quoted"``), else
    taken as a string; ``<``, ``<=``, ``>`` and ``>=`` need a number.
    """
    m = _FILTER_RE.match(expr) if isinstance(expr, str) else None
    if m:
        key, op, text = m.groups()
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if op not in _OPS or isinstance(value, (int, float)) and not isinstance(value, bool):
            return key, op, value
    raise ValueError(f"{what} {expr!r} is not a filter; expected {FILTER_FORM}")


def parse_sort(sort, what: str = "sort") -> tuple[str, bool]:
    """``"val_loss"`` -> ``("val_loss", False)``; ``"-val_loss"`` -> descending."""
    if not isinstance(sort, str) or not _SORT_RE.match(sort) or sort == "-":
        raise ValueError(f"{what} must be a metric key (e.g. 'val_loss'), with a leading '-' "
                         f"for descending order; got {sort!r}")
    return sort.lstrip("-"), sort.startswith("-")


def final_metric(run: dict, key: str) -> float | None:
    v = (run.get("metrics") or {}).get(key, {}).get("last")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def value_of(run: dict, key: str):
    """A filter key: the run's final metric ``key``, else its param ``key``."""
    if key in (run.get("metrics") or {}):
        return final_metric(run, key)
    return (run.get("params") or {}).get(key)


def _holds(run: dict, cond: tuple[str, str, object]) -> bool:
    key, op, want = cond
    have = value_of(run, key)
    if op in _OPS:
        num = isinstance(have, (int, float)) and not isinstance(have, bool)
        return num and _OPS[op](float(have), float(want))
    if have is None:  # a run without the key matches neither == nor !=
        return False
    return (have == want) == (op == "==")


def select(runs: list[dict], where=None, sort=None, limit=None) -> list[dict]:
    """Filter (every condition of ``where`` holds), sort by a final metric (runs without
    it last; ties keep their order) and cut to ``limit``."""
    if where is None:
        where = []
    conds = [parse_filter(w) for w in (where if isinstance(where, (list, tuple)) else [where])]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an integer >= 1 or None, got {limit!r}")
    out = [r for r in runs if all(_holds(r, c) for c in conds)]
    if sort is not None:
        key, desc = parse_sort(sort)

        def order(r):
            v = final_metric(r, key)
            return (v is None, 0.0 if v is None else (-v if desc else v))

        out.sort(key=order)
    return out[:limit] if limit is not None else out


def compare_runs(records: list[dict]) -> dict:
    """Params and final metrics of runs side by side: ``{key: [value per run]}``, and the
    keys whose values differ (``"param lr"``, ``"metric val_loss"``)."""
    params = {k: [r["params"].get(k) for r in records]
              for k in sorted({k for r in records for k in r["params"]})}
    metrics = {k: [final_metric(r, k) for r in records]
               for k in sorted({k for r in records for k in r["metrics"]})}
    differ = [f"param {k}" for k, vs in params.items() if any(v != vs[0] for v in vs)]
    differ += [f"metric {k}" for k, vs in metrics.items() if any(v != vs[0] for v in vs)]
    return {"runs": [{k: r[k] for k in ("run_id", "name", "status", "start")} for r in records],
            "params": params, "metrics": metrics, "different": differ}


def sparkline(values, width: int = 40) -> str:
    """A one-line chart of ``values`` in block characters (▁ lowest, █ highest).

    More than ``width`` values are averaged in ``width`` equal buckets first; NaN shows
    as a space, a constant series as a row of ▄.

    Examples
    --------
    >>> sparkline([1, 2, 3, 4, 5, 6, 7, 8])
    '▁▂▃▄▅▆▇█'
    """
    a = np.asarray(values, dtype=np.float64)
    a[np.isinf(a)] = np.nan  # an inf would flatten every other point
    if a.size > width:
        buckets = np.array_split(a, width)
        a = np.array([b[~np.isnan(b)].mean() if (~np.isnan(b)).any() else np.nan
                      for b in buckets])
    ok = ~np.isnan(a)
    if not ok.any():
        return " " * a.size
    lo, hi = a[ok].min(), a[ok].max()
    if hi == lo:
        idx = np.full(a.size, 3)
    else:
        idx = np.minimum(((np.where(ok, a, lo) - lo) / (hi - lo) * len(BARS)).astype(int), 7)
    return "".join(BARS[i] if good else " " for i, good in zip(idx, ok))


def summarize(values: list, steps: list, width: int = 40) -> dict:
    """Count, first and last (as logged), min and max (of the finite values), the first
    and last step, and a sparkline of a metric series (NaN and inf as None in the result)."""
    def num(v):
        return v if v is not None and math.isfinite(v) else None

    finite = [v for v in values if v is not None and math.isfinite(v)]
    return {"count": len(values), "first": num(values[0]) if values else None,
            "last": num(values[-1]) if values else None,
            "min": min(finite) if finite else None, "max": max(finite) if finite else None,
            "first_step": steps[0] if steps else None, "last_step": steps[-1] if steps else None,
            "sparkline": sparkline([np.nan if v is None else v for v in values], width)}
