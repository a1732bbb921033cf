"""``mlops monitor ...``: build profiles, test drift. Exit codes: 0 no drift, 1 drift, 2 error."""

from __future__ import annotations

import json
import math
import os

PROFILE_SUFFIXES = (".profile",)


def load_input(spec: str, store=None):
    """A Table or Profile from a Parquet/Arrow/Feather/CSV file, a saved profile, or a
    table-version reference in the store (``name:vN``, ``name@latest``)."""
    if os.path.exists(spec):
        low = spec.lower()
        if low.endswith(PROFILE_SUFFIXES):
            from .monitor.profile import Profile

            return Profile.load(spec)
        if low.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            return pq.read_table(spec)
        if low.endswith((".arrow", ".feather", ".ipc")):
            import pyarrow.feather as feather

            return feather.read_table(spec)
        if low.endswith((".csv", ".csv.gz", ".tsv")):
            import pyarrow.csv as pacsv

            opts = pacsv.ParseOptions(delimiter="\t") if low.endswith(".tsv") else None
            return pacsv.read_csv(spec, parse_options=opts)
        raise ValueError(f"{spec!r}: expected a .parquet, .arrow/.feather, .csv or .profile file")
    if any(ch in spec for ch in ":@") or os.sep not in spec:
        prof = _registry_profile(spec, store)
        if prof is not None:
            return prof
        from .data import load_table

        return load_table(spec, store=store)
    raise FileNotFoundError(f"no such file: {spec!r}")


def _registry_profile(spec: str, store):
    """The registry's ``profile`` artifact named by ``spec``, or None if it names none."""
    from .registry import MalformedReference, Registry, parse_ref

    try:
        name = parse_ref(spec).name
        reg = Registry(store, create=False)
    except (MalformedReference, FileNotFoundError):
        return None
    with reg:
        reg.refresh()
        if reg._kind_of(name) != "profile":
            return None
        return reg.load_profile(spec)


def cmd_profile(args) -> int:
    from .monitor.profile import profile

    if not args.output and not args.register:
        raise ValueError("give -o/--output FILE, --register NAME, or both")
    edges_from = None
    if args.edges_from:
        from .monitor.profile import Profile

        edges_from = load_input(args.edges_from, args.store)
        if not isinstance(edges_from, Profile):
            raise ValueError(f"--edges-from {args.edges_from!r}: expected a reference profile "
                             "(a .profile file or a registry profile), got a table")
    data = load_input(args.data, args.store)
    p = profile(data, sample_size=args.sample_size, bins=args.bins, edges_from=edges_from)
    where = []
    if args.output:
        p.save(args.output)
        where.append(args.output)
    if args.register:
        from .registry import Registry

        is_file = os.path.exists(args.data)
        with Registry(args.store) as reg:
            mv = reg.register(args.register, p, kind="profile",
                              inputs=None if is_file else [args.data],
                              message=f"profile of {args.data}")
        where.append(f"registry {mv.ref}")
    kinds: dict[str, int] = {}
    for c in p.columns.values():
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    print(f"profile of {args.data}: {p.n_rows} rows, {len(p.columns)} columns "
          f"({', '.join(f'{v} {k}' for k, v in kinds.items())}) -> {', '.join(where)}")
    return 0


def cmd_drift(args) -> int:
    from .monitor.drift import drift

    ref = load_input(args.reference, args.store)
    cur = load_input(args.current, args.store)
    thresholds = None
    if args.thresholds:
        try:
            thresholds = json.loads(args.thresholds)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--thresholds: not valid JSON ({exc}): {args.thresholds!r}; "
                             'expected e.g. \'{"psi": 0.2, "age": {"ks": 0.01}}\'') from None
        if not isinstance(thresholds, dict):
            raise ValueError(f"--thresholds: expected a JSON object, got {args.thresholds!r}")
    rep = drift(ref, cur, tests=args.test or None, alpha=args.alpha, share=args.share,
                correction=None if args.correction == "none" else args.correction,
                thresholds=thresholds)
    rep.meta.update({"reference": args.reference, "current": args.current})
    if args.html:
        rep.to_html(args.html)
    if args.json:
        print(rep.to_json())
    else:
        print(rep.summary())
        for r in rep.table.to_pylist():
            if r["primary"] and (r["drifted"] or r["drifted"] is None):
                what = "DRIFT" if r["drifted"] else (
                    "no verdict" if r["test"] != "none" and math.isfinite(r["statistic"])
                    else "not tested")
                why = r["reason"] or (f"{r['test']} statistic {r['statistic']:.4g}"
                                      + (f", p={r['p_adjusted']:.3g}" if r["p_adjusted"] is not None else ""))
                print(f"  {what:<10} {r['column']}: {why}")
        if args.html:
            print(f"report: {args.html}")
    return 1 if rep.drift else 0


def add_parser(sub, parser_class) -> None:
    mon = sub.add_parser("monitor", help="profiles and drift tests of tabular data",
                         description="Profile reference data and test current data for drift. "
                         "DATA, REF and CURRENT are Parquet/Arrow/CSV files, saved profiles "
                         "(.profile), table versions in the store (NAME:vN, NAME@latest) or "
                         "profile artifacts of the registry (NAME@production).")
    msub = mon.add_subparsers(dest="monitor_command", metavar="SUBCOMMAND", parser_class=parser_class)
    mon.set_defaults(func=lambda a: (mon.print_help(), 2)[1])

    p = msub.add_parser("profile", help="build a reference profile",
                        description="Build a mergeable profile of DATA (counts, moments, quantile "
                        "histogram and a bounded sample per numeric column; value counts per "
                        "categorical column; script and trigram histograms per text column).")
    p.add_argument("data", help="Parquet/Arrow/CSV file or table version")
    p.add_argument("-o", "--output", default=None, help="profile file to write (.profile)")
    p.add_argument("--register", metavar="NAME", default=None,
                   help="also store the profile in the registry as a 'profile' artifact NAME, "
                   "linked to DATA when DATA is a table version (then `mlops monitor drift "
                   "NAME@latest CURRENT` uses it)")
    p.add_argument("--sample-size", type=int, default=100_000,
                   help="values kept per numeric column for exact tests (default 100000)")
    p.add_argument("--bins", type=int, default=10, help="quantile bins per numeric column (default 10)")
    p.add_argument("--edges-from", metavar="REF", default=None,
                   help="reference profile (.profile file or registry profile) whose histogram "
                   "edges this profile uses, so that `mlops monitor drift REF THIS` compares the "
                   "same bins (needed when this profile's sample is not complete)")
    p.add_argument("--store", default=None, help="store for table-version references")
    p.set_defaults(func=cmd_profile)

    d = msub.add_parser("drift", help="test CURRENT against REF; exit 1 on drift",
                        description="Test every column of CURRENT against REF. Exit 0: no drift; "
                        "1: the share of drifted columns reached --share; 2: error.")
    d.add_argument("reference", help="reference: file, .profile, table version or registry profile")
    d.add_argument("current", help="current data: file, .profile or table version")
    d.add_argument("--test", action="append", default=None,
                   help="run this test instead of the defaults (repeatable): ks, wasserstein, "
                   "wasserstein_normed, cvm, psi, jensenshannon, hellinger, chi2, gtest, linf, mmd")
    d.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    d.add_argument("--share", type=float, default=0.5,
                   help="dataset drift when this share of columns drifted (default 0.5)")
    d.add_argument("--correction", choices=["bh", "bonferroni", "none"], default="bh",
                   help="multiple-testing correction across columns (default bh)")
    d.add_argument("--thresholds", default=None,
                   help='JSON thresholds, e.g. \'{"psi": 0.2, "age": {"ks": 0.01}}\'')
    d.add_argument("--html", default=None, help="also write a self-contained HTML report here")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.add_argument("--store", default=None, help="store for table-version references")
    d.set_defaults(func=cmd_drift)
