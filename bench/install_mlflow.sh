#!/usr/bin/env bash
# Install MLflow (the peer of bench/bench_registry.py) into its own venv .venv-mlflow at the
# repo root, so its many dependencies stay out of the project's venv. Idempotent: does
# nothing but print the version when .venv-mlflow already has mlflow.
set -euo pipefail
source "$(dirname "$0")/_peer_venv.sh"
peer_venv mlflow 'import mlflow' "import mlflow; print('mlflow', mlflow.__version__)" mlflow
