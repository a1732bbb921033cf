#!/usr/bin/env bash
# Install the peer tools for bench/bench_data.py (run from anywhere; needs root for apt).
#   restic: the Debian package (0.14 on bookworm), via apt-get.
#   dvc:    pip into a separate venv .venv-peers at the repo root, so its many
#           dependencies stay out of the project's .venv.
#   evidently: bench/install_evidently.sh, its own .venv-evidently (bench_drift_peers.py).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

if ! command -v restic >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update
    $SUDO apt-get install -y restic
fi
restic version

if [ ! -x "$ROOT/.venv-peers/bin/dvc" ]; then
    "$PYTHON" -m venv "$ROOT/.venv-peers"
    "$ROOT/.venv-peers/bin/pip" install -q --disable-pip-version-check dvc
fi
"$ROOT/.venv-peers/bin/dvc" --version
bash "$ROOT/bench/install_mlflow.sh"
bash "$ROOT/bench/install_evidently.sh"
