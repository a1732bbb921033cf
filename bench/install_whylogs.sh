#!/usr/bin/env bash
# Install whylogs (the peer of bench/bench_guard.py) into its own venv .venv-whylogs at the
# repo root, so its dependencies stay out of the project's venv. whylogs' last release is
# 1.6.4 (2024); WHYLOGS_VERSION pins another ("latest" for the newest). pandas < 3 and
# numpy < 2: whylogs 1.6 predates both (it uses np.unicode_). Idempotent: does nothing but
# print the version when .venv-whylogs already imports it with numpy < 2.
set -euo pipefail
source "$(dirname "$0")/_peer_venv.sh"
peer_venv whylogs \
    'import numpy, whylogs, pandas; assert int(numpy.__version__.split(".")[0]) < 2' \
    "import whylogs, pandas; print('whylogs', whylogs.__version__, '(pandas', pandas.__version__ + ')')" \
    "$(pinned whylogs "${WHYLOGS_VERSION:-1.6.4}")" 'pandas<3' 'numpy<2'
