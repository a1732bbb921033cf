"""whylogs' side of bench/bench_guard.py; runs in .venv-whylogs, not the project's venv.

Reads a JSON file written by bench_guard.py: the checks (numeric bounds with the engine's
tolerance already applied, the categories seen per column, a regex of letters of scripts
training never saw per text column) and the request sets (lists of mappings). For every
set it builds whylogs' closest per-request API: ``ConditionValidator`` objects attached
to the columns through a ``DeclarativeSchema`` with no metric resolvers (only the
validators run; no profile is built), and ``why.log(row=request, schema=schema)`` per
request, each call timed with ``perf_counter_ns``. Failed conditions are collected by
the validators' action. whylogs' validators see only present, non-null values: they
have no null and no missing-column check, so those violations are not counted.

Prints one JSON line: ``tool``, ``version``, ``api``, and per set ``p50_us``, ``p99_us``,
``mean_us``, ``n`` and ``failures`` (failed conditions counted by name).

Usage: .venv-whylogs/bin/python bench/_whylogs_side.py SPEC.json [--warmup 200]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
import warnings


def _schema(spec, columns):
    from whylogs.core.metrics.condition_count_metric import Condition
    from whylogs.core.relations import Predicate
    from whylogs.core.schema import DeclarativeSchema
    from whylogs.core.validators import ConditionValidator

    failures: dict = {}

    def action(validator, condition, value, *_):
        failures[condition] = failures.get(condition, 0) + 1

    x = Predicate()
    validators = {}
    for c in columns:
        if c in spec["bounds"]:
            lo, hi = spec["bounds"][c]
            cond = {"range": Condition(x.greater_or_equals(lo).and_(x.less_or_equals(hi)))}
        elif c in spec["categories"]:
            seen = frozenset(spec["categories"][c])
            cond = {"unseen_category": Condition(x.is_(seen.__contains__))}
        elif c in spec["text"]:
            bad = re.compile(spec["text"][c])
            cond = {"unseen_script": Condition(x.is_(lambda s, b=bad: b.search(s) is None))}
        else:
            continue
        validators[c] = [ConditionValidator(name=f"{c}_guard", conditions=cond,
                                            actions=[action], enable_sampling=False)]
    return DeclarativeSchema([], validators=validators), failures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec", help="JSON file written by bench_guard.py")
    ap.add_argument("--warmup", type=int, default=200, help="untimed calls first (default 200)")
    a = ap.parse_args(argv)
    os.environ.setdefault("WHYLOGS_NO_ANALYTICS", "True")  # no network call from a benchmark
    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)
    import numpy as np
    import whylogs
    import whylogs as why

    with open(a.spec, encoding="utf-8") as f:
        spec = json.load(f)
    out = {"tool": "whylogs", "version": getattr(whylogs, "__version__", "?"),
           "api": "why.log(row=...) + ConditionValidator, DeclarativeSchema without resolvers",
           "sets": {}}
    for name, reqs in spec["sets"].items():
        schema, failures = _schema(spec, spec["columns"][name])
        for r in reqs[:a.warmup]:
            why.log(row=r, schema=schema)
        failures.clear()
        ns = np.empty(len(reqs), dtype=np.int64)
        clock = time.perf_counter_ns
        for i, r in enumerate(reqs):
            t0 = clock()
            why.log(row=r, schema=schema)
            ns[i] = clock() - t0
        us = ns / 1e3
        out["sets"][name] = {"n": len(reqs), "p50_us": float(np.percentile(us, 50)),
                             "p99_us": float(np.percentile(us, 99)),
                             "mean_us": float(us.mean()), "failures": dict(failures)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
