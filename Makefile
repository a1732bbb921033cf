# mlops-engine: two commands set everything up on a fresh machine.
#   make demo   create .venv, install, run the end-to-end demo
#   make test   create/update .venv, install .[dev], run the tests
#   make bench  run the benchmarks (see docs/benchmarks.md)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The tested torch version; override with `make test TORCH_VERSION=...` (CPU build here).
TORCH_VERSION ?= 2.13.0
PIP_FLAGS ?= -q --disable-pip-version-check
BENCH_SIZE ?= 1GiB

.PHONY: demo test bench bench-data bench-peers lint venv install install-dev install-torch clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install $(PIP_FLAGS) --upgrade pip

venv: $(PY)

# Editable install: setup.py compiles the Cython kernels in place.
install: $(PY)
	$(PIP) install $(PIP_FLAGS) -e .

install-dev: $(PY)
	$(PIP) install $(PIP_FLAGS) -e '.[dev]'

# torch pinned to the tested version (a CPU build on the project's machines).
install-torch: $(PY)
	$(PIP) install $(PIP_FLAGS) torch==$(TORCH_VERSION)

demo: install
	$(VENV)/bin/mlops demo

test: install-dev
	$(PY) -m pytest --doctest-modules engine kernels -q
	$(PY) -m pytest

lint: install-dev
	$(VENV)/bin/ruff check engine kernels tests bench examples setup.py

bench: install-dev
	$(PY) bench/bench_cdc.py --size $(BENCH_SIZE)
	$(PY) bench/bench_import.py
	$(PY) bench/bench_index.py
	$(PY) bench/bench_drift_kernels.py
	$(PY) bench/bench_drift.py
	$(PY) -m pytest bench -q --benchmark-columns=min,mean,max,ops

# Peers for bench-data: restic (apt) and dvc (pip, in its own .venv-peers).
bench-peers:
	bash bench/install_peers.sh

# Dataset versioning side by side with DVC and restic (about 2 minutes for 1 GiB).
bench-data: install-dev bench-peers
	$(PY) bench/bench_data.py --size $(BENCH_SIZE)

clean:
	rm -rf build $(VENV) *.egg-info .pytest_cache .hypothesis .benchmarks
	rm -f kernels/*.c kernels/*.so
