"""``mlops monitor ...``: build profiles, test drift, watch a stream, replay a window log.

Exit codes of ``drift``: 0 no drift, 1 drift, 4 untestable (nothing could be compared),
2 bad usage or input, 3 store damaged or I/O error. Of ``watch`` and ``replay``: 0 no
retrain signal (replay: no window alerted), 1 at least one, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from .args import add_group, number_above
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


def _window_arg(text: str):
    """argparse type of ``--window``: a row count (``500``) or a duration (``15m``)."""
    from ..monitor.stream import parse_window

    value = int(text) if text.strip().isdigit() else text
    try:
        parse_window(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a row count >= 1 or a duration like 30s, "
                                         f"15m, 1h, 1d, got {text!r}") from None
    return value


#: argparse type of ``--ert``: a number of windows > 1
_ert_arg = number_above(1, "a number of windows > 1", finite=True)
#: argparse type of ``--interval``: seconds > 0
_interval_arg = number_above(0, "a number of seconds > 0")


def _model_setup(args):
    """(registry or None, guard or None, model ref or None, reference dataset or None)."""
    if not args.model:
        return None, None, None, None
    from ..monitor import Guard
    from ..monitor.signal import reference_dataset_of
    from .args import open_registry

    reg = open_registry(args)
    try:
        ref = reg.get(args.model).ref
        guard = Guard.from_registry(ref, registry=reg)
        return reg, guard, ref, reference_dataset_of(reg, ref)
    except BaseException:
        reg.close()
        raise


def _alarm_line(win) -> str:
    causes = ", ".join(f"{c} z={win.stats[c]['z']:.2f} cusum={win.stats[c]['cusum']:.2f}"
                       f">{win.stats[c]['threshold']:.2f}" for c in win.alarms)
    text = f"ALARM window {win.index} ({win.n_rows} rows): {causes}; report: {win.drift_status}"
    if win.drifted_columns:
        text += f" ({', '.join(win.drifted_columns)})"
    if win.violation_rate is not None:
        text += f"; violation rate {win.violation_rate:.4f}"
    return text


def _signal_line(sig) -> str:
    return (f"SIGNAL {sig.cause} at window {sig.window}: model {sig.model or '-'}, reference "
            f"{sig.reference_dataset or '-'}, newest dataset {sig.newest_dataset or '-'}"
            + (f", recorded as run {sig.run_id}" if sig.run_id else ""))


def _emit(args, kind: str, obj: dict, text: str) -> None:
    """One event: a JSON line under ``--json``, else one line of text; flushed at once (a
    watch runs for long)."""
    if args.json:
        print(json.dumps({"event": kind, **obj}, default=str))
    else:
        print(text)
    sys.stdout.flush()


def _stderr_fd():
    """This process's stderr as a descriptor for a child (None where it has none)."""
    try:
        sys.stderr.flush()
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _run_on_signal(cmd: str, sig) -> None:
    """Run ``cmd`` through the shell with the signal as JSON on stdin and in
    ``$MLOPS_RETRAIN_SIGNAL`` (so that a job it submits with ``mlops submit`` gets it in
    its environment); its output goes to stderr, keeping stdout the watch's own. A
    failure is reported on stderr and does not stop the watch."""
    sys.stdout.flush()
    try:
        r = subprocess.run(cmd, shell=True, input=sig.to_json(), text=True, stdout=_stderr_fd(),
                           env={**os.environ, "MLOPS_RETRAIN_SIGNAL": sig.to_json(indent=None)})
    except OSError as exc:
        print(f"mlops monitor watch: --on-signal {cmd!r} could not run: {exc}", file=sys.stderr)
        return
    if r.returncode != 0:
        print(f"mlops monitor watch: --on-signal {cmd!r} exited {r.returncode} for the signal "
              f"at window {sig.window}", file=sys.stderr)


def _report_windows(args, mon, first: int, seen_signals: int, on_signal=None) -> int:
    """Print the alarming windows from ``first`` on and the new signals; the signal count."""
    for win in mon.windows[first:]:
        if win.alarms:
            _emit(args, "alarm", win.to_dict(), _alarm_line(win))
        for sig in mon.signals[seen_signals:]:
            if sig.window != win.index:
                continue
            _emit(args, "signal", sig.to_dict(), _signal_line(sig))
            if on_signal:
                _run_on_signal(on_signal, sig)
    return len(mon.signals)


def _read_batch(path: str, predictions: str | None):
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if predictions is None:
        return table, None
    if predictions not in table.column_names:
        raise ValueError(f"--predictions {predictions!r} is not a column of {path!r} "
                         f"(columns: {table.column_names})")
    return table.drop_columns([predictions]), table.column(predictions)


def cmd_watch(args) -> int:
    from ..monitor import Monitor

    if not os.path.isdir(args.source):
        raise FileNotFoundError(f"SOURCE {args.source!r} is not a directory (expected a "
                                "directory of Parquet files)")
    reg, guard, model, ref_data = _model_setup(args)
    try:
        mon = Monitor(args.reference, guard=guard, window=args.window, ert=args.ert,
                      registry=reg, model=model, reference_dataset=ref_data,
                      store=args.store, time_column=args.time_column, log_dir=args.log_dir,
                      seed=args.seed)
        done: set[str] = set()
        signals = 0
        old_term = None
        stop: list = []
        if args.follow:  # a scheduler stops a job with SIGTERM: end after the current file
            old_term = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
        try:
            while not stop:
                new = sorted(n for n in os.listdir(args.source)
                             if n.endswith((".parquet", ".pq")) and n not in done)
                for name in new:
                    batch, preds = _read_batch(os.path.join(args.source, name), args.predictions)
                    first = len(mon.windows)
                    mon.observe(batch, preds)
                    signals = _report_windows(args, mon, first, signals, args.on_signal)
                    done.add(name)
                    if stop:
                        break
                if not args.follow or stop:
                    break
                time.sleep(args.interval)
        except KeyboardInterrupt:  # Ctrl-C: anywhere, maybe while a window was reported
            pass
        finally:
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
        signals = len(mon.signals)  # what the monitor raised, even if a report was cut short
        if mon.window_seconds is not None:  # the data's end closes the last time window
            first = len(mon.windows)
            mon.flush()
            signals = _report_windows(args, mon, first, signals, args.on_signal)
        alarms = sum(1 for w in mon.windows if w.alarms)
        _emit(args, "summary", {"files": len(done), "windows": len(mon.windows),
                                "alarms": alarms, "signals": signals,
                                "pending_rows": mon._pending_rows},
              f"watched {len(done)} files: {len(mon.windows)} windows, {alarms} alarming, "
              f"{signals} signals")
        return 1 if signals else 0
    finally:
        if reg is not None:
            reg.close()


def cmd_replay(args) -> int:
    from ..monitor import Monitor
    from ..monitor.stream import read_window_log

    if not os.path.isdir(args.log_dir):
        raise FileNotFoundError(f"LOGDIR {args.log_dir!r} is not a directory (expected the "
                                "log_dir of a monitor: window-NNNNNN.parquet files)")
    logged = read_window_log(args.log_dir)
    if not logged:
        raise ValueError(f"LOGDIR {args.log_dir!r} holds no window-NNNNNN.parquet files")
    # the model is only resolved: a replay is a what-if and records no signal
    reg, guard, model, ref_data = _model_setup(args)
    if reg is not None:
        reg.close()
    mon = Monitor(args.reference, guard=guard, window=logged[0][1].num_rows, ert=args.ert,
                  model=model, reference_dataset=ref_data, store=args.store, seed=args.seed)
    alerted = []
    for index, table, preds in logged:
        first = len(mon.windows)
        mon.observe(table, preds)
        mon.flush()  # one logged window, one replayed window (a shorter last one too)
        for win in mon.windows[first:]:
            if win.alarms:
                alerted.append({"logged_window": index, **win.to_dict()})
                if not args.json:
                    print(_alarm_line(win).replace(f"window {win.index}",
                                                   f"window {index}", 1))
    if args.json:
        print(json.dumps({"windows": len(mon.windows), "alerted": alerted,
                          "signals": [s.to_dict() for s in mon.signals]}, indent=1,
                         default=str))
    else:
        print(f"replayed {len(logged)} windows: {len(alerted)} would have alerted, "
              f"{len(mon.signals)} signals")
    return 1 if alerted else 0


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

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--reference", required=True, metavar="REF",
                        help="the reference: a .profile, Parquet/Arrow/CSV file, table version "
                        "or registry profile")
    common.add_argument("--model", metavar="NAME@ALIAS", default=None,
                        help="the model version watched: its guard comes from the input and "
                        "output profiles logged for it (Guard.from_registry)")
    common.add_argument("--ert", type=_ert_arg, default=100.0,
                        help="expected run length without drift, in windows, that the alarms "
                        "are calibrated for (default 100)")
    common.add_argument("--seed", type=int, default=0, help="seed of the calibration (default 0)")
    common.add_argument("--store", default=None, help="store for references and the registry")
    common.add_argument("--json", action="store_true", help="print JSON (see the description)")

    w = msub.add_parser("watch", parents=[common], help="run a monitor over a directory of "
                        "Parquet files; exit 1 on a retrain signal",
                        description="Feed the Parquet files of SOURCE (in name order) to a "
                        "monitor calibrated on REF. Prints one line per closed window that "
                        "alarms and one line per retrain signal (with --json: one JSON object "
                        "per line, with an 'event' of alarm, signal or summary). With --model, "
                        "signals are recorded in the registry. Exit status 0: no signal; 1: at "
                        "least one retrain signal; 2: bad usage or input.")
    w.add_argument("source", help="directory of Parquet files")
    w.add_argument("--window", type=_window_arg, default=1000,
                   help="rows per window, or a duration (30s, 15m, 1h, 1d) (default 1000)")
    w.add_argument("--time-column", default=None,
                   help="column of row times for duration windows (default: arrival time)")
    w.add_argument("--predictions", metavar="COLUMN", default=None,
                   help="the column of the files that holds the model's predictions (checked "
                   "by the guard's output checks); the other columns are features")
    w.add_argument("--on-signal", metavar="CMD", default=None,
                   help="run CMD through the shell for each signal, with the signal as JSON on "
                   "its standard input and in $MLOPS_RETRAIN_SIGNAL (e.g. 'mlops submit "
                   "retrain.py': the job gets it in its environment); CMD's output goes to "
                   "stderr; a failing CMD is reported on stderr, the watch goes on")
    w.add_argument("--log-dir", default=None,
                   help="write each closed window's rows there (Parquet), for `monitor replay`")
    w.add_argument("--follow", action="store_true",
                   help="keep polling SOURCE for new files until interrupted (Ctrl-C, or "
                   "SIGTERM, which ends it after the file being read: the summary is printed, "
                   "the exit status is as without it)")
    w.add_argument("--interval", type=_interval_arg, default=2.0,
                   help="seconds between polls with --follow (default 2)")
    w.set_defaults(func=cmd_watch)

    r = msub.add_parser("replay", parents=[common], help="replay a window log; exit 1 if a "
                        "window would have alerted",
                        description="Replay the windows a monitor logged (--log-dir) through "
                        "a fresh monitor calibrated on REF, one window per logged file, and "
                        "print the windows that would have alerted. No signal is recorded. "
                        "Exit status 0: none would have alerted; 1: at least one; 2: bad usage "
                        "or input.")
    r.add_argument("log_dir", metavar="LOGDIR", help="a monitor's window log directory")
    r.set_defaults(func=cmd_replay)
