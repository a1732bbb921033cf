#!/usr/bin/env bash
# Install MLflow (the peer of bench/bench_registry.py) into its own venv .venv-mlflow at the
# repo root, so its many dependencies stay out of the project's venv. Idempotent: does
# nothing but print the version when .venv-mlflow already has mlflow.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv-mlflow"

if ! "$VENV/bin/python" -c "import mlflow" >/dev/null 2>&1; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check mlflow
fi
"$VENV/bin/python" -c "import mlflow; print('mlflow', mlflow.__version__)"
