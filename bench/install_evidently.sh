#!/usr/bin/env bash
# Install Evidently (the peer of bench/bench_drift_peers.py) into its own venv .venv-evidently
# at the repo root, so its many dependencies stay out of the project's venv. Evidently needs
# pandas < 3 to import; pyarrow reads the benchmark's Parquet files. EVIDENTLY_VERSION pins
# the version (default: the one measured in docs/benchmarks.md; "latest" for the newest).
# Idempotent: does nothing but print the version when .venv-evidently already imports it.
set -euo pipefail
source "$(dirname "$0")/_peer_venv.sh"
peer_venv evidently 'import evidently, pandas' \
    "import evidently, pandas; print('evidently', evidently.__version__, '(pandas', pandas.__version__ + ')')" \
    "$(pinned evidently "${EVIDENTLY_VERSION:-0.7.23}")" 'pandas<3' pyarrow
