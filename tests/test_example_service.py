"""examples/guarded_service.py: started on 127.0.0.1 as its users start it, sent ordinary,
flagged and rejected requests over real HTTP, and stopped by the pid the test started."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "guarded_service.py"


@pytest.fixture
def service():
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # "listening on HOST:PORT", once the model is built
        assert line.startswith("listening on 127.0.0.1:"), (line, proc.stderr.read())
        yield f"http://127.0.0.1:{int(line.rsplit(':', 1)[1])}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def post(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url + "/predict", data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


ORDINARY = {"age": 54, "bmi": 27.0, "heart_rate": 72, "note": "paciente en ayunas sin síntomas"}


def test_the_service_answers_what_fits_and_refuses_what_does_not(service):
    with urllib.request.urlopen(service + "/health", timeout=30) as r:
        assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
    # an ordinary request: answered, nothing flagged
    status, body = post(service, ORDINARY)
    assert status == 200 and body["flags"] == [] and 40 <= body["prediction"] <= 200
    # a note in Russian: rejected before the model runs, with its reason
    status, body = post(service, {**ORDINARY, "note": "пациент натощак, жалоб нет"})
    assert status == 422 and body["error"] == "out of distribution"
    assert [(v["column"], v["check"], v["action"]) for v in body["violations"]] == \
        [("note", "unseen_script", "reject")]
    assert "Latin" in body["violations"][0]["expected"]
    # an input outside the training range: answered, and flagged
    status, body = post(service, {**ORDINARY, "age": 140})
    assert status == 200 and [(v["column"], v["check"]) for v in body["flags"]] == [("age", "range")]
    # an input that drives the prediction far past anything the model predicted in training
    status, body = post(service, {**ORDINARY, "bmi": 800})
    assert status == 200 and body["prediction"] > 1000
    assert ("glucose", "output_range", "flag") in {
        (v["column"], v["check"], v["action"]) for v in body["flags"]}
    # a missing column is rejected; malformed JSON is a bad request
    status, body = post(service, {"age": 54, "bmi": 27.0, "note": "sin cambios"})
    assert status == 422 and {"missing_column"} == {v["check"] for v in body["violations"]}
    status, body = post(service, b"{not json")
    assert status == 400 and body["error"].startswith("bad request")
    # the service still answers after all that
    assert post(service, ORDINARY)[0] == 200
