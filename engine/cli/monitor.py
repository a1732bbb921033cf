"""``mlops monitor ...``: build profiles, test drift.

Exit codes of ``drift``: 0 no drift, 1 drift, 4 untestable (nothing could be compared),
2 bad usage or input, 3 store damaged or I/O error.
"""

from __future__ import annotations

import argparse
import json

from .args import add_group
from .format import bar, out

#: ``mlops monitor drift``'s exit status for each verdict of the report
DRIFT_EXIT = {"no drift": 0, "drift": 1, "untestable": 4}


class _ColumnsAction(argparse.Action):
    """``--columns a,b --columns c`` -> ``["a", "b", "c"]``; an empty or repeated name is a
    usage error."""

    def __call__(self, parser, namespace, values, option_string=None):
        names = list(getattr(namespace, self.dest) or [])
        for name in (n.strip() for n in values.split(",")):
            if not name:
                raise argparse.ArgumentError(self, f"empty column name in {values!r}")
            if name in names:
                raise argparse.ArgumentError(self, f"column {name!r} is given twice")
            names.append(name)
        setattr(namespace, self.dest, names)


class _TypesAction(argparse.Action):
    """``--types age=categorical --types note=text`` -> ``{"age": "categorical", ...}``."""

    def __call__(self, parser, namespace, values, option_string=None):
        from ..monitor.profile_base import KINDS

        types = dict(getattr(namespace, self.dest) or {})
        col, eq, kind = values.partition("=")
        col, kind = col.strip(), kind.strip()
        if not eq or not col:
            raise argparse.ArgumentError(self, f"expected COLUMN=KIND (KIND: {', '.join(KINDS)}), "
                                               f"got {values!r}")
        if kind not in KINDS:
            raise argparse.ArgumentError(self, f"{values!r}: kind must be one of "
                                               f"{', '.join(KINDS)}, got {kind!r}")
        if col in types:
            raise argparse.ArgumentError(self, f"column {col!r} is given twice")
        types[col] = kind
        setattr(namespace, self.dest, types)


class _DriftHelp(argparse.HelpFormatter):
    """Fills in the names of the drift tests and finding policies only when help is shown:
    they come from :mod:`engine.monitor`, too heavy to import for every command."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "{tests}" in text or "{policies}" in text:
            from ..monitor.drift_options import KNOWN_TESTS
            from ..monitor.drift_report import FINDING_POLICIES

            text = text.replace("{tests}", ", ".join(sorted(KNOWN_TESTS)))
            text = text.replace("{policies}", ", ".join(FINDING_POLICIES))
        return text


def cmd_profile(args) -> int:
    from ..monitor import Profile, load_input, profile
    from ..monitor.inputs import resolve_input

    if not args.output and not args.register:
        raise ValueError("give -o/--output FILE, --register NAME, or both")
    edges_from = None
    if args.edges_from:
        edges_from = load_input(args.edges_from, args.store)
        if not isinstance(edges_from, Profile):
            raise ValueError(f"--edges-from {args.edges_from!r}: expected a reference profile "
                             "(a .profile file or a registry profile), got a table")
    src = resolve_input(args.data, args.store)
    if isinstance(src.data, Profile):
        raise ValueError(f"{args.data!r} is a profile ({src.source} {src.ref}); DATA must be a "
                         "table: a Parquet/Arrow/CSV file or a table version")
    p = profile(src.data, columns=args.columns, types=args.types, sample_size=args.sample_size,
                bins=args.bins, edges_from=edges_from, progress=bar(args))
    if args.output:
        p.save(args.output)
    registered = None
    if args.register:
        from ..registry import Registry

        with Registry(args.store) as reg:
            mv = reg.register(args.register, p, kind="profile",
                              inputs=[src.ref] if src.source == "table version" else None,
                              message=f"profile of {args.data}")
        registered = mv.ref
    kinds: dict[str, int] = {}
    for c in p.columns.values():
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    where = [w for w in (args.output, registered and f"registry {registered}") if w]
    out(args, {"data": args.data, "source": src.source, "ref": src.ref, "rows": p.n_rows,
               "columns": {n: c.kind for n, c in p.columns.items()}, "kinds": kinds,
               "output": args.output, "registered": registered},
        f"profile of {args.data}: {p.n_rows} rows, {len(p.columns)} columns "
        f"({', '.join(f'{v} {k}' for k, v in kinds.items())}) -> {', '.join(where)}")
    return 0


def cmd_drift(args) -> int:
    from ..monitor import check_options, drift, load_input

    thresholds = None
    if args.thresholds:
        try:
            thresholds = json.loads(args.thresholds)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--thresholds: not valid JSON ({exc}): {args.thresholds!r}; "
                             'expected e.g. \'{"psi": 0.2, "age": {"ks": 0.01}}\'') from None
    # the API's own validation, before the inputs are read (which can take a while)
    opts = check_options(tests=args.test, thresholds=thresholds, alpha=args.alpha,
                         share=args.share, correction=args.correction, missing=args.missing,
                         new_columns=args.new_columns)
    ref = load_input(args.reference, args.store)
    cur = load_input(args.current, args.store)
    rep = drift(ref, cur, columns=args.columns, types=args.types, progress=bar(args),
                **opts)
    rep.meta.update({"reference": args.reference, "current": args.current})
    if args.html:
        rep.to_html(args.html)
    if args.json:
        print(rep.to_json())
    else:
        print(rep.summary())
        for c in rep.columns:  # the report's one decision per column
            if c["status"] != "no drift":
                print(f"  {c['status'].upper():<10} {c['column']}: {c['reason']}")
        if args.html:
            print(f"report: {args.html}")
    return DRIFT_EXIT[rep.status]


def _add_columns_types(p) -> None:
    p.add_argument("--columns", action=_ColumnsAction, metavar="A,B", default=None,
                   help="only these columns, comma-separated (repeatable)")
    p.add_argument("--types", action=_TypesAction, metavar="COLUMN=KIND", default=None,
                   help="the kind of COLUMN instead of the inferred one: numeric, categorical "
                   "or text (repeatable)")


def add_parser(sub, parser_class) -> None:
    msub = add_group(sub, "monitor", "profiles and drift tests of tabular data",
                     "Profile reference data and test current data for drift. "
                     "DATA, REF and CURRENT are Parquet/Arrow/CSV files, saved profiles "
                     "(.profile), table versions in the store (NAME:vN, NAME@latest) or "
                     "profile artifacts of the registry (NAME@production). A path that "
                     "does not exist is a missing file; only a name without a path "
                     "separator or a file suffix is looked up in the store.",
                     "monitor_command", parser_class)

    p = msub.add_parser("profile", help="build a reference profile",
                        description="Build a mergeable profile of DATA (counts, moments, quantile "
                        "histogram and a bounded sample per numeric column; value counts per "
                        "categorical column; script and trigram histograms per text column). "
                        "A progress bar over the columns is drawn when stderr is a terminal.")
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
    _add_columns_types(p)
    p.add_argument("--json", action="store_true",
                   help="print rows, columns with their kinds, and where the profile was "
                   "written and registered, as JSON")
    p.add_argument("--store", default=None, help="store for table-version references")
    p.set_defaults(func=cmd_profile)

    d = msub.add_parser("drift", help="test CURRENT against REF; exit 1 on drift",
                        formatter_class=_DriftHelp,
                        description="Test every column of CURRENT against REF. Exit status "
                        "0: no drift; 1: drift (the share of drifted columns reached --share); "
                        "4: untestable (nothing could be compared: no rows, all values null, "
                        "no shared column); 2: bad usage or input; 3: store damaged or I/O "
                        "error. A progress bar over the columns is drawn when stderr is a "
                        "terminal.")
    d.add_argument("reference", help="reference: file, .profile, table version or registry profile")
    d.add_argument("current", help="current data: file, .profile or table version")
    d.add_argument("--test", action="append", default=None,
                   help="run this test instead of the defaults (repeatable): {tests}")
    _add_columns_types(d)
    d.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    d.add_argument("--share", type=float, default=0.5,
                   help="dataset drift when this share of columns drifted (default 0.5)")
    d.add_argument("--correction", default="bh", metavar="{bh,bonferroni,none}",
                   help="multiple-testing correction across columns (default bh)")
    d.add_argument("--missing", default="drift", metavar="POLICY",
                   help="{policies}: a column missing from CURRENT, or all null there, counts "
                   "as drifted (drift, the default), is listed only (report) or left out "
                   "(ignore)")
    d.add_argument("--new-columns", default="report", metavar="POLICY",
                   help="{policies}: a column of CURRENT that REF lacks is listed only "
                   "(report, the default), counts as drifted (drift) or is left out (ignore)")
    d.add_argument("--thresholds", default=None,
                   help='JSON thresholds, e.g. \'{"psi": 0.2, "age": {"ks": 0.01}}\'')
    d.add_argument("--html", default=None, help="also write a self-contained HTML report here")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    d.add_argument("--store", default=None, help="store for table-version references")
    d.set_defaults(func=cmd_drift)
