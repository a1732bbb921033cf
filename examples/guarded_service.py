"""A small prediction service behind the guard: an HTTP endpoint on the standard library.

A clinic's model predicts blood glucose (mg/dL) from a few measurements and a short note
written in Spanish. The model only answers requests that fit its training set:
``Guard.wrap`` checks every request before the model runs and every prediction after.

- ``POST /predict`` with a JSON object (one request) answers ``200`` with
  ``{"prediction": ..., "flags": [...]}``; flagged values (an input outside the training
  range, a prediction outside the range the model ever predicted) are listed, and the
  model still answers.
- A rejected request (a note in a script never seen in training, such as Russian, or a
  missing column) answers ``422`` with ``{"error": "out of distribution", "violations":
  [...]}``; the model does not run.
- Malformed JSON answers ``400``; ``GET /health`` answers ``200``.

The model here is a least-squares fit on synthetic training data, made when the service
starts (``--seed``); a real service loads its model and the profiles registered with it
(``Guard.from_registry("glucose@production")``).

Usage::

    python examples/guarded_service.py --port 8080
    curl -s localhost:8080/predict -d '{"age": 54, "bmi": 27.0, "heart_rate": 72,
        "note": "paciente en ayunas, sin síntomas"}'

``--port 0`` picks a free port; the first line printed is ``listening on HOST:PORT``.
"""

from __future__ import annotations

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from engine.monitor import Guard, OutOfDistributionError, profile

FEATURES = ("age", "bmi", "heart_rate")
# notes are free text: fragments combined into a few hundred distinct sentences
_WHO = ("paciente en ayunas", "control de rutina", "refiere cansancio", "toma metformina",
        "sin cambios", "glucosa medida", "visita de seguimiento", "paciente tranquila")
_WHAT = ("sin síntomas", "después del desayuno", "y sed por la tarde", "dos veces al día",
         "desde la última visita", "antes de la cena", "tras caminar media hora")
_MORE = ("", ", buena adherencia", ", dieta baja en azúcar", ", camina cada día",
         ", duerme mal", ", sin mareos")


def training_data(rows: int = 2000, seed: int = 0) -> dict:
    """Synthetic training rows: measurements, a Spanish note, glucose in 40..200 mg/dL."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 90, rows)
    bmi = rng.uniform(17, 40, rows)
    hr = rng.uniform(50, 110, rows)
    glucose = np.clip(40 + 0.6 * age + 2.2 * bmi + 0.1 * hr + rng.normal(0, 8, rows), 40, 200)
    notes = [f"{_WHO[a]} {_WHAT[b]}{_MORE[c]}" for a, b, c in zip(
        rng.integers(0, len(_WHO), rows), rng.integers(0, len(_WHAT), rows),
        rng.integers(0, len(_MORE), rows))]
    return {"age": age, "bmi": bmi, "heart_rate": hr, "note": notes, "glucose": glucose}


class GlucoseModel:
    """Least squares on the measurements (the note is context, not a feature)."""

    def __init__(self, data: dict):
        x = np.column_stack([data[f] for f in FEATURES] + [np.ones(len(data["glucose"]))])
        self.coef, *_ = np.linalg.lstsq(x, data["glucose"], rcond=None)

    def predict(self, request: dict) -> float:
        x = np.array([float(request[f]) for f in FEATURES] + [1.0])
        return float(x @ self.coef)


def build(seed: int = 0):
    """The model and its guarded ``predict``: input profile from the training inputs,
    output profile from the model's predictions on them."""
    data = training_data(seed=seed)
    model = GlucoseModel(data)
    inputs = {k: data[k] for k in (*FEATURES, "note")}
    preds = [model.predict({f: data[f][i] for f in FEATURES}) for i in range(len(data["age"]))]
    guard = Guard(profile(inputs), profile({"glucose": preds}))
    return model, guard.wrap(model.predict, on_violation=_collect)


_FLAGS: list = []  # the flagged violations of the request being answered (one thread each)


def _collect(violations) -> None:
    _FLAGS.extend(violations)


def _violation(v) -> dict:
    return {"column": v.column, "check": v.check, "value": v.value, "expected": v.expected,
            "action": v.action}


def make_handler(predict):
    import threading

    lock = threading.Lock()  # the flags list is shared: one request at a time through it

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - the http.server API
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": f"no such path: {self.path}"})

        def do_POST(self):  # noqa: N802
            if self.path != "/predict":
                self._send(404, {"error": f"no such path: {self.path}"})
                return
            try:
                n = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(n))
                if not isinstance(request, dict):
                    raise ValueError("the body must be a JSON object")
            except ValueError as exc:
                self._send(400, {"error": f"bad request: {exc}"})
                return
            with lock:
                _FLAGS.clear()
                try:
                    y = predict(request)
                except OutOfDistributionError as exc:
                    self._send(422, {"error": "out of distribution",
                                     "violations": [_violation(v) for v in exc.violations]})
                    return
                flags = [_violation(v) for v in _FLAGS]
            self._send(200, {"prediction": round(y, 1), "flags": flags})

        def log_message(self, fmt, *args):  # one line per request on stderr
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    return Handler


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="A glucose prediction service behind the guard.")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8080, help="port (0: a free one; default 8080)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic training data")
    args = ap.parse_args(argv)
    _, predict = build(args.seed)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(predict))
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
