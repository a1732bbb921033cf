"""The demo's clinic: synthetic patients, the glucose model and its held-out slice.

A clinic predicts blood glucose (mg/dL) from four measurements and a short note
written in Spanish. :func:`patients` draws them: the first cohort (``shift=0``) is the
training population; a later cohort (``shift`` up to 1) is older and heavier, the drift
the monitor must notice. Glucose rises with age, BMI, heart rate and HbA1c, and steeply
above a BMI of 30, a region the first cohort barely covers, so a model trained on it
extrapolates there and one retrained on the new cohort does better.

The model (:func:`build_model`) is a small PyTorch MLP whose input standardization is
fixed from the training population's ranges (kept as buffers in its state dict), so a
registered state dict is the whole model. :func:`held_out` is the deterministic split
(every fifth ``patient_id``), the same for every version of the data: scoring two models
on the held-out rows of one version compares them on the same slice.

torch is imported only by the functions that build or run the model.
"""

from __future__ import annotations

import numpy as np

#: the model's inputs, in order
FEATURES = ("age", "bmi", "heart_rate", "hba1c")
TARGET = "glucose"
#: glucose is clipped to this range (mg/dL): the training set's targets lie in it
GLUCOSE_RANGE = (40.0, 200.0)
#: the first cohort's ranges; the model standardizes its inputs with them
RANGES = {"age": (18.0, 90.0), "bmi": (17.0, 35.0), "heart_rate": (50.0, 110.0),
          "hba1c": (4.5, 9.0)}
#: where a fully shifted cohort (``shift=1``) lies
SHIFTED = {"age": (45.0, 95.0), "bmi": (27.0, 41.0), "heart_rate": (55.0, 115.0),
           "hba1c": (5.5, 10.0)}

_WHO = ("paciente en ayunas", "control de rutina", "refiere cansancio", "toma metformina",
        "sin cambios", "glucosa medida", "visita de seguimiento", "paciente tranquila",
        "acude con su hija", "consulta programada")
_WHAT = ("sin síntomas", "después del desayuno", "y sed por la tarde", "dos veces al día",
         "desde la última visita", "antes de la cena", "tras caminar media hora",
         "por la mañana")
_MORE = ("", ", buena adherencia", ", dieta baja en azúcar", ", camina cada día",
         ", duerme mal", ", sin mareos", ", revisar en tres meses")

#: a note in Russian (Cyrillic): a script the model never saw in training
RUSSIAN_NOTE = "пациент натощак, жалоб нет"


def true_glucose(age, bmi, heart_rate, hba1c) -> np.ndarray:
    """The clinic's (synthetic) physiology, before noise and clipping."""
    return (8.0 + 0.45 * age + 1.3 * bmi + 0.12 * heart_rate + 9.0 * hba1c
            + 0.9 * np.maximum(bmi - 30.0, 0.0) ** 2)


def patients(rows: int, *, seed: int, shift: float = 0.0, first_id: int = 0):
    """``rows`` patients as a ``pyarrow.Table``: ``patient_id``, the :data:`FEATURES`, a
    Spanish ``note`` and ``glucose`` (within :data:`GLUCOSE_RANGE`).

    ``shift`` in [0, 1] moves every feature's range from :data:`RANGES` towards
    :data:`SHIFTED`; ``first_id`` numbers the patients from there.
    """
    import pyarrow as pa

    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be an integer >= 1, got {rows!r}")
    if not 0.0 <= float(shift) <= 1.0:
        raise ValueError(f"shift must lie in [0, 1], got {shift!r}")
    rng = np.random.default_rng(seed)
    cols = {}
    for f in FEATURES:
        lo = RANGES[f][0] + shift * (SHIFTED[f][0] - RANGES[f][0])
        hi = RANGES[f][1] + shift * (SHIFTED[f][1] - RANGES[f][1])
        cols[f] = np.round(rng.uniform(lo, hi, rows), 1)
    glucose = true_glucose(*(cols[f] for f in FEATURES)) + rng.normal(0.0, 6.0, rows)
    glucose = np.round(np.clip(glucose, *GLUCOSE_RANGE), 1)
    notes = [f"{_WHO[a]} {_WHAT[b]}{_MORE[c]}" for a, b, c in zip(
        rng.integers(0, len(_WHO), rows), rng.integers(0, len(_WHAT), rows),
        rng.integers(0, len(_MORE), rows))]
    return pa.table({"patient_id": pa.array(np.arange(first_id, first_id + rows), pa.int64()),
                     **{f: pa.array(cols[f], pa.float64()) for f in FEATURES},
                     "note": pa.array(notes, pa.string()),
                     TARGET: pa.array(glucose, pa.float64())})


def requests(table) -> list[dict]:
    """The rows of ``table`` as prediction requests: the features and the note."""
    cols = {c: table.column(c).to_pylist() for c in (*FEATURES, "note")}
    return [dict(zip(cols, vals)) for vals in zip(*cols.values())]


def inputs(table):
    """The columns a request carries (features and note), without id and target."""
    return table.select([*FEATURES, "note"])


def held_out(table) -> np.ndarray:
    """Boolean mask of the held-out rows: every fifth ``patient_id``, in every version."""
    return table.column("patient_id").to_numpy() % 5 == 0


def matrix(table) -> np.ndarray:
    """The feature matrix (rows x :data:`FEATURES`) as float32."""
    return np.column_stack([table.column(f).to_numpy() for f in FEATURES]).astype(np.float32)


def build_model(hidden: int = 32):
    """The glucose MLP (a ``torch.nn.Module``), seeded, inputs standardized inside."""
    import torch

    class GlucoseNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            lo = torch.tensor([RANGES[f][0] for f in FEATURES], dtype=torch.float32)
            hi = torch.tensor([RANGES[f][1] for f in FEATURES], dtype=torch.float32)
            self.register_buffer("center", (lo + hi) / 2)
            self.register_buffer("scale", (hi - lo) / 2)
            self.net = torch.nn.Sequential(
                torch.nn.Linear(len(FEATURES), hidden), torch.nn.ReLU(),
                torch.nn.Linear(hidden, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

        def forward(self, x):
            return 120.0 + 40.0 * self.net((x - self.center) / self.scale).squeeze(-1)

    torch.manual_seed(0)
    return GlucoseNet()


class GlucoseModel:
    """A registered state dict as a predictor: ``predict(request) -> mg/dL`` for one
    request (a mapping with the :data:`FEATURES`), ``predict_table(table)`` for many."""

    def __init__(self, state_dict):
        import torch

        self.net = build_model()
        self.net.load_state_dict({k: torch.as_tensor(v) for k, v in state_dict.items()})
        self.net.eval()

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.net(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()

    def predict(self, request) -> float:
        x = np.array([[float(request[f]) for f in FEATURES]], np.float32)
        return float(self.predict_matrix(x)[0])

    def predict_table(self, table) -> np.ndarray:
        return self.predict_matrix(matrix(table))


def mae(model: GlucoseModel, table) -> float:
    """Mean absolute error (mg/dL) of ``model`` on ``table``."""
    y = table.column(TARGET).to_numpy()
    return float(np.mean(np.abs(model.predict_table(table) - y)))
