#!/usr/bin/env bash
# Install Evidently (the peer of bench/bench_drift_peers.py) into its own venv .venv-evidently
# at the repo root, so its many dependencies stay out of the project's venv. Evidently needs
# pandas < 3 to import; pyarrow reads the benchmark's Parquet files. EVIDENTLY_VERSION pins
# the version (default: the one measured in docs/benchmarks.md; "latest" for the newest).
# Idempotent: does nothing but print the version when .venv-evidently already imports it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv-evidently"
EVIDENTLY_VERSION="${EVIDENTLY_VERSION:-0.7.23}"

check='import evidently, pandas'
if ! "$VENV/bin/python" -c "$check" >/dev/null 2>&1; then
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    spec="evidently==$EVIDENTLY_VERSION"
    [ "$EVIDENTLY_VERSION" = latest ] && spec="evidently"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$spec" 'pandas<3' pyarrow
fi
"$VENV/bin/python" -c "import evidently, pandas; print('evidently', evidently.__version__, '(pandas', pandas.__version__ + ')')"
