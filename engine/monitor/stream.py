"""The streaming monitor: windows of production traffic, calibrated alarms, incidents, signals.

``Monitor(reference).observe(batch, predictions)`` cuts traffic into windows (by row
count, or by time), and for each closed window builds

* a profile (``profile(window, edges_from=reference)``: mergeable with the others),
* a drift report against the reference profile (:func:`engine.monitor.drift`),
* the guard's violation rates when a guard is given: the fraction of rows with any
  violation (inputs via ``guard.check``, predictions via ``guard.check_output``) and
  the fraction of rows per check (output checks as ``"output:<check>"``).

Alarm rule and its calibration
------------------------------
Each *cause* has one per-window statistic and one CUSUM:

``drift``
    ``X`` = the sum over numeric and categorical columns of Pearson's chi-square of the
    window's counts against the reference's proportions, read from the window profile:
    numeric columns on the reference's quantile bins (the two outer bins merged into
    their neighbours) plus a null/NaN bucket; categorical columns on the reference's
    categories plus an "other/unseen" bucket and a null bucket. Reference proportions
    are floored at ``0.5 / n_ref``. Text columns are in the drift report, not in ``X``.
``violations`` (with a guard)
    ``X`` = the number of rows of the window with any violation.

``X`` is standardized, ``z = (X - mu0) / sd0``, with the mean and standard deviation of
``X`` over simulated in-control windows, and fed to a one-sided CUSUM
``S_t = max(0, S_{t-1} + z_t - k)`` (Page 1954) with reference value ``k`` (0.5). An
*alarm* is ``S_t > h``; the CUSUM restarts at 0 after it.

``h`` is calibrated for the target expected run length without drift ``ert`` (in
windows), as alibi-detect's online detectors take it:

1. Simulate ``calibration_windows`` (``20 * ert``, at least 20,000 and at most 200,000)
   in-control windows of the window size by
   resampling the reference: a bootstrap of whole rows of the reference data when it is
   given as data (so dependence between columns is kept), otherwise independent
   multinomial draws from each column's reference proportions (a profile only). For
   ``violations``: binomial counts at the in-control violation rate ``violation_rate``
   (default: the guard's rate on the reference data, at least 0.001).
2. Compute the mean run length of the CUSUM for a given ``h`` on the empirical
   distribution of the simulated ``z`` with the Markov-chain method of Brook & Evans
   (1972): ``S`` discretized into 400 states, ``(I - Q) L = 1``. This is the value a
   simulation of infinitely many runs would give, without its noise, for any ERT.
3. Bisect ``h`` until that run length equals ``ert``.

Time windows are calibrated at the row count of the first window.

Window log
----------
With ``log_dir``, each closed window's rows are written to
``<log_dir>/window-<index:06d>.parquet`` (the predictions, when given, as the column
``__prediction__``), atomically: to a temporary file beside it, then renamed, so that a
reader never sees half a window. :func:`read_window_log` reads them back in window order
(``mlops monitor replay`` feeds them to a fresh monitor, one window per file).

Incidents
---------
An alarm of a cause opens an incident unless one of that cause is open; further alarms
are counted on the open incident. It clears when ``z <= clear_level`` (default 1.0)
for ``clear_windows`` (10) consecutive windows. Each incident makes one
:class:`~engine.monitor.signal.RetrainSignal`, recorded in ``registry`` (as a run) when
given and handed to ``on_signal``.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> mon = Monitor({"x": rng.normal(size=2000)}, window=50, ert=100, calibration_windows=2000)
>>> mon.observe({"x": rng.normal(size=500)})
10
>>> len(mon.windows), mon.windows[0].n_rows
(10, 50)
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .drift import drift
from .profile import CategoricalColumn, NumericColumn, Profile, profile
from .signal import RetrainSignal, newest_dataset_version, reference_dataset_of

CAUSES = ("drift", "violations")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_CHAIN_STATES = 400


@dataclass
class Window:
    """A closed window: numbers only (and its small profile), never the rows.

    ``stats`` maps each cause to ``{"x", "z", "cusum", "threshold"}``; ``alarms`` lists the
    causes whose CUSUM crossed its threshold in this window.
    """

    index: int
    start: float
    end: float
    n_rows: int
    profile: Profile = field(repr=False)
    drift_status: str
    drifted_columns: list
    drift_share: float
    violation_rate: float | None
    violation_rates: dict
    stats: dict
    alarms: list
    report_path: str | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in (
            "index", "start", "end", "n_rows", "drift_status", "drifted_columns", "drift_share",
            "violation_rate", "violation_rates", "stats", "alarms", "report_path")}


@dataclass
class Incident:
    """One open or closed incident of a cause."""

    cause: str
    opened: int
    closed: int | None = None
    alarms: int = 1
    peak: float = 0.0
    signal: RetrainSignal | None = None

    @property
    def open(self) -> bool:
        return self.closed is None


class CusumRule:
    """A one-sided CUSUM on standardized window statistics, calibrated for an ERT.

    Parameters
    ----------
    null : array of float
        The statistic of simulated in-control windows.
    ert : float
        Target mean run length (windows) between alarms without drift.
    k : float
        Reference value, in standard deviations of the in-control statistic.

    Examples
    --------
    >>> rule = CusumRule(np.random.default_rng(0).normal(size=20000), ert=100)
    >>> 2.0 < rule.h < 6.0
    True
    """

    def __init__(self, null, ert: float, k: float = 0.5):
        null = np.asarray(null, dtype=float)
        self.mu = float(null.mean())
        sd = float(null.std())
        self.sd = sd if sd > 0 else 1.0
        self.k = float(k)
        self.ert = float(ert)
        self._z = np.sort((null - self.mu) / self.sd)
        self.h = self._calibrate()
        self.s = 0.0

    def standardize(self, x: float) -> float:
        return (x - self.mu) / self.sd

    def update(self, x: float) -> tuple[float, float, bool]:
        """Feed one window's statistic: ``(z, S, alarm)``; S restarts at 0 after an alarm."""
        z = self.standardize(x)
        self.s = max(0.0, self.s + z - self.k)
        alarm = self.s > self.h
        s = self.s
        if alarm:
            self.s = 0.0
        return z, s, alarm

    def run_length(self, h: float) -> float:
        """Mean run length from ``S = 0`` for threshold ``h`` (Brook & Evans 1972)."""
        m = _CHAIN_STATES
        w = h / (m - 0.5)
        s = np.arange(m) * w
        # P(S' < b) = P(z < b - s + k), with the empirical CDF of the simulated z
        bounds = (np.arange(m) + 0.5) * w
        cdf = np.searchsorted(self._z, bounds[None, :] - s[:, None] + self.k, side="left") \
            / len(self._z)
        q = np.diff(np.concatenate([np.zeros((m, 1)), cdf], axis=1), axis=1)
        try:
            lengths = np.linalg.solve(np.eye(m) - q, np.ones(m))
        except np.linalg.LinAlgError:
            return math.inf
        return float(lengths[0]) if lengths[0] > 0 else math.inf

    def _calibrate(self) -> float:
        if self._z[-1] - self.k <= 0:  # the in-control statistic never pushes S up
            return 0.0
        lo, hi = 0.0, 1.0
        while self.run_length(hi) < self.ert:
            lo, hi = hi, hi * 2
            if hi > 1e6:
                return hi
        for _ in range(40):
            mid = (lo + hi) / 2
            if self.run_length(mid) < self.ert:
                lo = mid
            else:
                hi = mid
        return hi


class Monitor:
    """Windows of production traffic, with calibrated alarms (see the module docstring).

    Parameters
    ----------
    reference : data, Profile or str
        The reference (usually the training data): raw data (a Table, mapping, DataFrame)
        is profiled and kept for the bootstrap calibration; a Profile is used as it is; a
        string is read with :func:`engine.monitor.load_input`.
    guard : object, optional
        Anything with ``check(batch)`` and ``check_output(preds)`` returning Arrow tables
        of violations with columns ``row``, ``column``, ``check``, ``value``, ``expected``
        (an :class:`engine.monitor.Guard`).
    window : int or str
        Rows per window, or a duration (``"1h"``, ``"15m"``, ``"30s"``, ``"1d"``).
    time_column : str, optional
        Column of row times for time windows (timestamps or seconds); default: arrival
        time (``observe(..., now=)``, else the clock). It is not profiled.
    ert : float
        Target expected run length without drift, in windows (> 1).
    tests : list of str, optional
        The drift report's tests (``drift(tests=)``).
    on_signal : callable, optional
        Called with each :class:`RetrainSignal`.
    registry : Registry, optional
        Where signals are recorded (as runs) and versions are resolved.
    model : str, optional
        The model version watched (``"glucose@production"`` is resolved to ``name:vN``).
    reference_dataset : str, optional
        The dataset version the reference describes; default: the dataset upstream of
        ``model`` in the registry's lineage.
    store : str or Store, optional
        Store to look up the newest dataset version (default: the registry's).
    k, clear_level, clear_windows
        CUSUM reference value; an incident clears after ``clear_windows`` windows with
        ``z <= clear_level`` (default 1.0: about 85% of in-control windows).
    violation_rate : float, optional
        In-control rate of rows with a violation (default: the guard's rate on the
        reference data, at least 0.001).
    calibration_windows : int, optional
        Simulated in-control windows per cause (default ``20 * ert`` within
        [20,000, 200,000]).
    report_dir : str, optional
        Write each alarming window's drift report there (JSON) and name it in the signal.
    log_dir : str, optional
        Write each closed window's rows there as Parquet (see "Window log" in the module
        docstring).
    seed : int
        Seeds the calibration.
    """

    def __init__(self, reference, *, guard=None, window=1000, ert: float = 100, tests=None,
                 on_signal=None, registry=None, model=None, reference_dataset=None, store=None,
                 time_column=None, k: float = 0.5, clear_level=None, clear_windows: int = 10,
                 violation_rate=None, calibration_windows: int | None = None, report_dir=None,
                 log_dir=None, seed: int = 0):
        if isinstance(ert, bool) or not isinstance(ert, (int, float)) or not ert > 1:
            raise ValueError(f"ert must be a number of windows > 1, got {ert!r}")
        if guard is not None and not (hasattr(guard, "check") and hasattr(guard, "check_output")):
            raise TypeError("guard must have check(batch) and check_output(preds) methods, got "
                            f"{type(guard).__name__}")
        if on_signal is not None and not callable(on_signal):
            raise TypeError(f"on_signal must be callable, got {type(on_signal).__name__}")
        if isinstance(clear_windows, bool) or not isinstance(clear_windows, int) \
                or clear_windows < 1:
            raise ValueError(f"clear_windows must be an integer >= 1, got {clear_windows!r}")
        if calibration_windows is None:  # the tail that a large ERT depends on needs more
            calibration_windows = int(min(max(20_000, 20 * ert), 200_000))
        if isinstance(calibration_windows, bool) or not isinstance(calibration_windows, int) \
                or calibration_windows < 100:
            raise ValueError("calibration_windows must be an integer >= 100, got "
                             f"{calibration_windows!r}")
        if violation_rate is not None and not 0 <= violation_rate < 1:
            raise ValueError(f"violation_rate must lie in [0, 1), got {violation_rate!r}")
        self.window_rows, self.window_seconds = parse_window(window)
        if isinstance(reference, (str, os.PathLike)):
            from .inputs import load_input

            reference = load_input(reference, store)
        self._ref_table = None
        if isinstance(reference, Profile):
            self.reference = reference
        else:
            self._ref_table = _as_table(reference)
            if time_column is not None and time_column in self._ref_table.column_names:
                self._ref_table = self._ref_table.drop_columns([time_column])
            self.reference = profile(self._ref_table)
        self.guard, self.ert, self.tests, self.on_signal = guard, float(ert), tests, on_signal
        self.registry, self.time_column, self.k = registry, time_column, float(k)
        self.clear_level = 1.0 if clear_level is None else float(clear_level)
        self.clear_windows, self.report_dir = clear_windows, report_dir
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir must be a directory path, got {type(log_dir).__name__}")
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.calibration_windows, self.seed = calibration_windows, seed
        self.model = registry.get(model).ref if registry is not None and model else model
        if reference_dataset is None and registry is not None and self.model:
            reference_dataset = reference_dataset_of(registry, self.model)
        self.reference_dataset = reference_dataset
        self._store = store if store is not None else (registry.store if registry else None)
        self._baseline = violation_rate
        self._buckets = _bucket_plan(self.reference)
        self.rules: dict[str, CusumRule] = {}
        self.windows: list[Window] = []
        self.alarms: list[tuple[int, str]] = []
        self.incidents: list[Incident] = []
        self.signals: list[RetrainSignal] = []
        self.last_report = None
        self._calm = dict.fromkeys(CAUSES, 0)
        self._pending: list[pa.Table] = []
        self._pending_preds: list = []
        self._pending_rows = 0
        self._window_start = None
        if self.window_rows is not None:
            self.calibrate(self.window_rows)

    # ------------------------------------------------------------------ calibration
    def calibrate(self, n: int) -> None:
        """Calibrate every cause's CUSUM for windows of ``n`` rows (see the module docstring)."""
        rng = np.random.default_rng(self.seed)
        self.rules = {"drift": CusumRule(self._simulate_drift(n, rng), self.ert, self.k)}
        if self.guard is not None:
            p0 = self._baseline
            if p0 is None:
                p0 = max(self._reference_violation_rate(), 0.001)
            self._baseline = p0
            null = rng.binomial(n, p0, self.calibration_windows).astype(float)
            self.rules["violations"] = CusumRule(null, self.ert, self.k)

    def _simulate_drift(self, n: int, rng) -> np.ndarray:
        w = self.calibration_windows
        out = np.zeros(w)
        if self._ref_table is not None and self._ref_table.num_rows > 0:
            codes = {name: _codes(self._ref_table.column(name), plan)
                     for name, plan in self._buckets.items()}
            nref = self._ref_table.num_rows
            block = max(1, 2_000_000 // max(n, 1))
            for a in range(0, w, block):
                b = min(w, a + block)
                idx = rng.integers(0, nref, size=(b - a, n))
                for name, plan in self._buckets.items():
                    c = codes[name][idx] + plan["size"] * np.arange(b - a)[:, None]
                    counts = np.bincount(c.ravel(), minlength=(b - a) * plan["size"])
                    out[a:b] += _chi2(counts.reshape(b - a, plan["size"]), plan["p"], n)
            return out
        for plan in self._buckets.values():
            out += _chi2(rng.multinomial(n, plan["p"], size=w), plan["p"], n)
        return out

    def _reference_violation_rate(self) -> float:
        if self._ref_table is None or self._ref_table.num_rows == 0:
            return 0.0
        v = self.guard.check(self._ref_table)
        return len(set(v.column("row").to_pylist())) / self._ref_table.num_rows

    # ------------------------------------------------------------------ traffic
    def observe(self, batch, predictions=None, *, now: float | None = None) -> int:
        """Feed a batch of traffic (and its predictions); returns the windows it closed.

        ``batch`` is what :func:`engine.monitor.profile` takes (a Table, RecordBatch,
        DataFrame or mapping of columns); ``predictions`` an array, list or Arrow array
        aligned with its rows. ``now`` is the arrival time (seconds) for time windows
        without a ``time_column``.
        """
        table = _as_table(batch)
        preds = None
        if predictions is not None:
            preds = np.asarray(predictions.to_numpy(zero_copy_only=False)
                               if hasattr(predictions, "to_numpy") else predictions)
            if len(preds) != table.num_rows:
                raise ValueError(f"predictions must have one value per row of the batch "
                                 f"({table.num_rows}), got {len(preds)}")
        if table.num_rows == 0:
            return 0
        before = len(self.windows)
        if self.window_rows is not None:
            self._add(table, preds)
            while self._pending_rows >= self.window_rows:
                self._close(*self._take(self.window_rows), None, None)
            return len(self.windows) - before
        times = self._times(table, now)
        order = np.argsort(times, kind="stable")
        if (np.diff(order) != 1).any():
            table, times = table.take(pa.array(order)), times[order]
            preds = preds[order] if preds is not None else None
        if self.time_column is not None:
            table = table.drop_columns([self.time_column])
        ws = self.window_seconds
        if self._window_start is None:
            self._window_start = math.floor(times[0] / ws) * ws
        i = 0
        while i < len(times):
            end = self._window_start + ws
            j = int(np.searchsorted(times, end, side="left"))
            if j > i:
                self._add(table.slice(i, j - i), None if preds is None else preds[i:j])
                i = j
            if i < len(times):  # a later row: this window is over
                self.flush()
                self._window_start = math.floor(times[i] / ws) * ws
        return len(self.windows) - before

    def flush(self) -> int:
        """Close the current window (with whatever rows it holds); returns 1 or 0."""
        if self._pending_rows == 0:
            return 0
        start = self._window_start
        end = start + self.window_seconds if self.window_seconds is not None else None
        self._close(*self._take(self._pending_rows), start, end)
        return 1

    def _times(self, table, now) -> np.ndarray:
        if self.time_column is None:
            t = time.time() if now is None else float(now)
            return np.full(table.num_rows, t)
        if self.time_column not in table.column_names:
            raise ValueError(f"time_column {self.time_column!r} is not a column of the batch "
                             f"(columns: {table.column_names})")
        col = table.column(self.time_column)
        if pa.types.is_timestamp(col.type):
            return pc.cast(pc.cast(col, pa.timestamp("us")), pa.int64()).to_numpy(
                zero_copy_only=False) / 1e6
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)

    def _add(self, table, preds) -> None:
        self._pending.append(table)
        self._pending_preds.append(preds)
        self._pending_rows += table.num_rows

    def _take(self, n):
        table = pa.concat_tables(self._pending, promote_options="default").combine_chunks() \
            if len(self._pending) > 1 else self._pending[0]
        have = [p for p in self._pending_preds if p is not None]
        preds = np.concatenate(have) if len(have) == len(self._pending_preds) and have else None
        rest = table.slice(n)
        self._pending = [rest] if rest.num_rows else []
        self._pending_preds = [preds[n:]] if rest.num_rows and preds is not None else \
            ([None] if rest.num_rows else [])
        self._pending_rows = rest.num_rows
        return table.slice(0, n), (preds[:n] if preds is not None else None)

    # ------------------------------------------------------------------ one window
    def _close(self, table, preds, start, end) -> None:
        index = len(self.windows)
        n = table.num_rows
        if not self.rules:
            self.calibrate(n)
        if start is None:
            start = self.windows[-1].end if self.windows else 0.0  # row offsets
            end = start + n
        if self.log_dir is not None:
            write_window_log(self.log_dir, index, table, preds)
        prof = profile(table, edges_from=self.reference)
        rep = drift(self.reference, prof, tests=self.tests, progress=False)
        self.last_report = rep
        x = {"drift": _window_chi2(prof, self._buckets)}
        rate, rates = None, {}
        if self.guard is not None:
            rate, rates, bad = _violations(self.guard, table, preds, n)
            x["violations"] = float(bad)
        stats, alarms = {}, []
        for cause, rule in self.rules.items():
            if cause not in x:
                continue
            z, s, alarm = rule.update(x[cause])
            stats[cause] = {"x": x[cause], "z": z, "cusum": s, "threshold": rule.h}
            if alarm:
                alarms.append(cause)
                self.alarms.append((index, cause))
        report_path = None
        if alarms and self.report_dir is not None:
            os.makedirs(self.report_dir, exist_ok=True)
            report_path = os.path.join(self.report_dir, f"window-{index:06d}.json")
            rep.to_json(report_path)
        win = Window(index, float(start), float(end), n, prof, rep.status, rep.drifted_columns,
                     float(rep.verdict.get("share") or 0.0), rate, rates, stats, alarms,
                     report_path)
        self.windows.append(win)
        self._incidents(win)

    def _incidents(self, win: Window) -> None:
        for cause, st in win.stats.items():
            inc = next((i for i in self.incidents if i.cause == cause and i.open), None)
            if cause in win.alarms:
                self._calm[cause] = 0
                if inc is None:
                    inc = Incident(cause, win.index, peak=st["z"])
                    self.incidents.append(inc)
                    inc.signal = self._signal(win, cause, st)
                else:
                    inc.alarms += 1
                    inc.peak = max(inc.peak, st["z"])
                continue
            if inc is None:
                continue
            inc.peak = max(inc.peak, st["z"])
            self._calm[cause] = self._calm[cause] + 1 if st["z"] <= self.clear_level else 0
            if self._calm[cause] >= self.clear_windows:
                inc.closed = win.index
                self._calm[cause] = 0

    def _signal(self, win: Window, cause: str, st: dict) -> RetrainSignal:
        evidence = {"n_rows": win.n_rows, "ert": self.ert, "drift_status": win.drift_status,
                    "drift_share": win.drift_share, "drifted_columns": list(win.drifted_columns)}
        if win.violation_rate is not None:
            evidence["violation_rate"] = win.violation_rate
            evidence["violation_rates"] = dict(win.violation_rates)
            evidence["baseline_violation_rate"] = self._baseline
        sig = RetrainSignal(
            model=self.model, reference_dataset=self.reference_dataset,
            newest_dataset=newest_dataset_version(self.reference_dataset, self._store),
            cause=cause, window=win.index, statistic=float(st["z"]), cusum=float(st["cusum"]),
            threshold=float(st["threshold"]), evidence=evidence, report_path=win.report_path)
        if self.registry is not None:
            sig.record(self.registry)
        self.signals.append(sig)
        if self.on_signal is not None:
            self.on_signal(sig)
        return sig

    @property
    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents if i.open]


# ---------------------------------------------------------------------- window log
LOG_PREDICTIONS = "__prediction__"
_LOG_NAME = re.compile(r"window-(\d+)\.parquet")


def write_window_log(log_dir: str, index: int, table: pa.Table, preds=None) -> str:
    """Write one window's rows (and predictions) as ``window-<index:06d>.parquet`` under
    ``log_dir``, atomically (temporary file, then rename); returns its path."""
    import pyarrow.parquet as pq

    if preds is not None:
        if LOG_PREDICTIONS in table.column_names:
            raise ValueError(f"a batch column is named {LOG_PREDICTIONS!r}, the window log's "
                             "name for the predictions; rename it to log windows")
        table = table.append_column(LOG_PREDICTIONS, pa.array(np.asarray(preds)))
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, f"window-{index:06d}.parquet")
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_window_log(log_dir):
    """The windows :class:`Monitor` logged under ``log_dir``, in window order: a list of
    ``(index, table, predictions or None)``.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = write_window_log(d, 0, pa.table({"x": [1.0, 2.0]}), [0.5, 0.7])
    >>> [(i, t.column_names, p.tolist()) for i, t, p in read_window_log(d)]
    [(0, ['x'], [0.5, 0.7])]
    """
    import pyarrow.parquet as pq

    log_dir = os.fspath(log_dir)
    if not os.path.isdir(log_dir):
        raise FileNotFoundError(f"log_dir {log_dir!r} is not a directory")
    found = sorted((int(m.group(1)), name) for name in os.listdir(log_dir)
                   if (m := _LOG_NAME.fullmatch(name)))
    out = []
    for index, name in found:
        table = pq.read_table(os.path.join(log_dir, name))
        preds = None
        if LOG_PREDICTIONS in table.column_names:
            preds = table.column(LOG_PREDICTIONS).to_numpy()
            table = table.drop_columns([LOG_PREDICTIONS])
        out.append((index, table, preds))
    return out


# ---------------------------------------------------------------------- helpers
def parse_window(window):
    """``(rows, seconds)`` of a window given as a row count (``1000``) or a duration
    (``"1h"``, ``"15m"``, ``"30s"``, ``"1d"``); the other is None. Raises ValueError."""
    if isinstance(window, bool):
        raise ValueError(f"window must be a row count or a duration like '1h', got {window!r}")
    if isinstance(window, int):
        if window < 1:
            raise ValueError(f"window must be a row count >= 1 or a duration like '1h', "
                             f"got {window!r}")
        return window, None
    if isinstance(window, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d)\s*", window)
        if m and float(m.group(1)) > 0:
            return None, float(m.group(1)) * _UNITS[m.group(2)]
    raise ValueError(f"window must be a row count >= 1 or a duration like '1h', '15m', '30s', "
                     f"'1d', got {window!r}")


def _as_table(data) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, dict):
        return pa.table({str(k): (v if isinstance(v, (pa.Array, pa.ChunkedArray))
                                  else pa.array(np.asarray(v) if not isinstance(v, list) else v))
                         for k, v in data.items()})
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, np.ndarray) and data.ndim == 2:
        return pa.table({str(i): data[:, i] for i in range(data.shape[1])})
    raise TypeError("a batch must be a pyarrow Table or RecordBatch, a pandas DataFrame, a 2-D "
                    f"array or a mapping of columns, got {type(data).__name__}")


def _bucket_plan(ref: Profile) -> dict:
    """Per numeric/categorical column: its buckets and the reference's proportions."""
    plans = {}
    for name, col in ref.columns.items():
        if isinstance(col, NumericColumn) and col.count > 0 and len(col.edges):
            counts = np.asarray(col.hist, dtype=float)
            inner = counts[1:-1].copy()
            inner[0] += counts[0]
            inner[-1] += counts[-1]
            c = np.concatenate([inner, [col.nulls + col.nans]])
            plans[name] = {"kind": "numeric", "edges": np.asarray(col.edges, dtype=float)}
        elif isinstance(col, CategoricalColumn) and col.count > 0:
            cats = list(col.counts)
            c = np.array([col.counts[v] for v in cats] + [col.other, col.nulls], dtype=float)
            plans[name] = {"kind": "categorical", "index": {v: i for i, v in enumerate(cats)}}
        else:
            continue
        total = c.sum()
        p = np.maximum(c / total, 0.5 / total)
        plans[name].update(p=p / p.sum(), size=len(c))
    return plans


def _codes(arr, plan) -> np.ndarray:
    """The bucket of each reference value (for the row bootstrap)."""
    size = plan["size"]
    if plan["kind"] == "numeric":
        x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        x = np.where(pd_isnull(arr), np.nan, x)
        e = plan["edges"]
        b = np.searchsorted(e, x, side="right")  # 0 below e[0], len(e) at or above e[-1]
        b = np.where(x == e[-1], len(e) - 1, b)
        b = np.clip(b, 1, len(e) - 1) - 1
        return np.where(np.isnan(x), size - 1, b).astype(np.int64)
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    vals = pc.cast(arr, pa.string()).to_pylist()
    idx, other = plan["index"], size - 2
    return np.array([size - 1 if v is None else idx.get(v, other) for v in vals], dtype=np.int64)


def pd_isnull(arr) -> np.ndarray:
    return pc.is_null(arr).to_numpy(zero_copy_only=False)


def _chi2(counts: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    expected = n * p
    return (((counts - expected) ** 2) / expected).sum(axis=-1)


def _window_chi2(prof: Profile, plans: dict) -> float:
    """The drift statistic X of one window, from its profile (see the module docstring)."""
    n = prof.n_rows
    total = 0.0
    for name, plan in plans.items():
        col = prof.columns.get(name)
        counts = np.zeros(plan["size"])
        if col is None:
            counts[-1] = n  # a missing column: every value is missing
        elif plan["kind"] == "numeric" and isinstance(col, NumericColumn) and len(col.hist) \
                == plan["size"] + 1:
            h = np.asarray(col.hist, dtype=float)
            counts[:-1] = h[1:-1]
            counts[0] += h[0]
            counts[-2] += h[-1]
            counts[-1] = col.nulls + col.nans
        elif plan["kind"] == "categorical" and isinstance(col, CategoricalColumn):
            for v, c in col.counts.items():
                counts[plan["index"].get(v, plan["size"] - 2)] += c
            counts[-2] += col.other
            counts[-1] = col.nulls
        else:  # another kind now: every value counts as unseen
            counts[-2] = n
        total += float(_chi2(counts, plan["p"], n))
    return total


def _violations(guard, table, preds, n):
    """(rate of rows with any violation, rate per check, rows with any violation)."""
    per_check: dict[str, set] = {}
    parts = [("", guard.check(table))]
    if preds is not None:
        parts.append(("output:", guard.check_output(preds)))
    bad: set = set()
    for prefix, res in parts:
        rows = res.column("row").to_pylist()
        checks = res.column("check").to_pylist()
        for r, c in zip(rows, checks):
            per_check.setdefault(prefix + str(c), set()).add(r)
            bad.add(r)
    rates = {c: len(rows) / n for c, rows in sorted(per_check.items())}
    return len(bad) / n, rates, len(bad)
