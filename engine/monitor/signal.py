"""``RetrainSignal``: what a monitor says when a model should be retrained, and on what.

A :class:`~engine.monitor.stream.Monitor` makes one signal per incident (not per
window). A signal names

* the model version being served (``model``, e.g. ``"glucose:v3"``),
* the reference dataset version its reference profile describes (``reference_dataset``),
* the newest version of the dataset of the same name (``newest_dataset``, via
  :func:`engine.data.versions`), so that a retraining job knows what to train on, and
* the evidence: the cause (``"drift"`` or ``"violations"``), the window index, the
  window's standardized statistic, the CUSUM value and its calibrated threshold, the
  numbers of the window (drifted columns, guard violation rates, rows) and, when the
  monitor writes reports, the path of the window's drift report.

Recording in the registry
-------------------------
The registry's artifact kinds are fixed (model, checkpoint, dataset, profile), so a
signal is recorded as a **run** named ``retrain-signal`` (the simplest durable record
the registry supports today): its params hold the signal's JSON fields, its tags the
cause and the versions, its metrics the evidence numbers. In the lineage graph the
signal is the node ``run:<id>`` between the model and the data to retrain on:
``model -> run`` and ``data:<reference> -> run`` (its inputs: what was served, and what
it was compared with), and ``run -> data:<newest>`` (its output, recorded with
``Run.log_output``: the dataset version a retraining job should read). So
``reg.lineage(model)`` shows the signal and the dataset downstream of the model, and
``reg.lineage("run:<id>")`` shows both sides.

Examples
--------
>>> s = RetrainSignal(model="glucose:v3", reference_dataset="glucose-train:v1",
...                   newest_dataset="glucose-train:v2", cause="violations", window=17,
...                   statistic=9.5, cusum=12.0, threshold=4.1,
...                   evidence={"violation_rate": 0.05})
>>> s.to_dict()["evidence"]["violation_rate"]
0.05
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import asdict, dataclass, field

RUN_NAME = "retrain-signal"


@dataclass
class RetrainSignal:
    """One retrain signal (see the module docstring).

    Attributes
    ----------
    model : str or None
        The model version (``name:vN``) the monitor watches.
    reference_dataset : str or None
        The dataset version the reference describes.
    newest_dataset : str or None
        The newest version of the dataset of the same name as ``reference_dataset``.
    cause : str
        ``"drift"`` or ``"violations"``.
    window : int
        Index of the window whose alarm opened the incident.
    statistic : float
        The window's standardized statistic (z under the calibrated null).
    cusum, threshold : float
        The CUSUM value that crossed the calibrated threshold, and the threshold.
    evidence : dict
        The window's numbers (rows, drift share and columns, violation rates, ERT).
    report_path : str or None
        The window's drift report (JSON), when the monitor writes reports.
    run_id : str or None
        The registry run that records this signal (set by :meth:`record`).
    """

    model: str | None
    reference_dataset: str | None
    newest_dataset: str | None
    cause: str
    window: int
    statistic: float
    cusum: float
    threshold: float
    evidence: dict = field(default_factory=dict)
    report_path: str | None = None
    created: str = field(default_factory=lambda: datetime.datetime.now(
        datetime.timezone.utc).isoformat(timespec="seconds"))
    run_id: str | None = None

    def to_dict(self) -> dict:
        """A JSON-able dict (non-finite floats become None)."""
        return _clean(asdict(self))

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def record(self, registry) -> str:
        """Record this signal in ``registry`` as a ``retrain-signal`` run; returns its id.

        The run's inputs are the model version and the reference dataset version, its
        output the newest dataset version (see the module docstring), its params the
        signal's fields, its metrics the evidence numbers.
        """
        d = self.to_dict()
        params = {k: d[k] for k in ("model", "reference_dataset", "newest_dataset", "cause",
                                    "window", "report_path", "created")}
        params["evidence"] = d["evidence"]
        tags = {"cause": self.cause, "kind": "retrain-signal"}
        for key in ("model", "reference_dataset", "newest_dataset"):
            if d[key]:
                tags[key] = d[key]
        inputs = [self.model] if self.model else []
        if self.reference_dataset:
            inputs.append("data:" + self.reference_dataset)
        metrics = {"statistic": self.statistic, "cusum": self.cusum, "threshold": self.threshold}
        for k, v in self.evidence.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                metrics[k] = float(v)
        with registry.start_run(RUN_NAME, params=params, tags=tags, inputs=inputs) as run:
            run.log_metrics(metrics)
            if self.newest_dataset:
                run.log_output("data:" + self.newest_dataset)
        self.run_id = run.id
        return run.id


def newest_dataset_version(reference_dataset: str | None, store) -> str | None:
    """``name:vN`` of the newest version of ``reference_dataset``'s dataset, or None.

    Examples
    --------
    >>> newest_dataset_version(None, None) is None
    True
    """
    if not reference_dataset or store is None:
        return None
    from ..data import versions

    name = reference_dataset.removeprefix("data:").partition("@")[0].partition(":")[0]
    try:
        vs = versions(store, name)
    except (FileNotFoundError, ValueError):
        return None
    return vs[-1].ref if vs else None


def reference_dataset_of(registry, model: str) -> str | None:
    """The dataset version upstream of ``model`` in the registry's lineage (the newest one
    when several are), as ``name:vN``; None when there is none."""
    found = [src for src, _ in registry.lineage(model)["up"] if src.startswith("data:")]
    return sorted(set(found))[-1][5:] if found else None


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        return _clean(x.item())
    return x
