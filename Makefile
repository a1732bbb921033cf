# mlops-engine: two commands set everything up on a fresh machine.
#   make demo   create .venv, install .[mpi] and torch, run the whole-loop demo
#   make test   create/update .venv, install .[dev], run the tests
#   make bench  run the benchmarks (see docs/benchmarks.md)
#   make docs   build the documentation site into site/ (MkDocs, warnings are errors)
#   make test-gpu, make bench-gpu   the GPU tests and benchmark, on a CUDA node
#   make soak   the long fault, fuzz, race and object-storage runs (see docs/faults.md)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The tested torch version; override with `make test TORCH_VERSION=...` (CPU build here).
TORCH_VERSION ?= 2.13.0
PIP_FLAGS ?= -q --disable-pip-version-check
BENCH_SIZE ?= 1GiB

.PHONY: demo test docs test-gpu bench-gpu soak bench bench-startup bench-data bench-data-large bench-dist bench-peers bench-registry bench-drift-peers bench-drift-large lint venv install install-dev install-torch clean

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

# The whole loop: training needs torch (the pinned version) and MPI (mpi4py, mpich).
demo: install-torch
	$(PIP) install $(PIP_FLAGS) -e '.[mpi]'
	$(VENV)/bin/mlops demo

test: install-dev install-torch
	# engine/chunking.py is a deprecated alias whose every attribute warns: no doctests there.
	# Doctests import kernels/ as a top-level package `kernels`: their numba compilations go to a
	# cache of their own, or later processes would find cache entries naming module `kernels.*`.
	NUMBA_CACHE_DIR=$(abspath $(VENV))/numba-doctest-cache \
		$(PY) -m pytest --doctest-modules engine kernels -q --ignore=engine/chunking.py
	$(PY) -m pytest

# On a CUDA node: CuPy for its driver (GPU_EXTRA=gpu for CUDA 12, gpu13 for CUDA 13), then
# every kernel test on the GPU (MLOPS_CUDA_MIN_BYTES=0: the cuda backend takes even the small
# cases) and the GPU benchmark (see docs/gpu.md and docs/benchmarks.md).
GPU_EXTRA ?= gpu13
test-gpu: install-dev install-torch
	$(PIP) install $(PIP_FLAGS) -e '.[$(GPU_EXTRA)]'
	MLOPS_CUDA_MIN_BYTES=0 $(PY) -m pytest -q -m gpu tests
	MLOPS_CUDA_MIN_BYTES=0 $(PY) -m pytest -q tests/test_kernels.py tests/test_cuda_runtime.py

bench-gpu: install-dev install-torch
	$(PIP) install $(PIP_FLAGS) -e '.[$(GPU_EXTRA)]'
	$(PY) bench/bench_gpu.py

# Long runs of what `make test` samples (about 20 minutes): 100+ SIGKILL trials per
# operation, ENOSPC at every write site, byte flips in every kind of file, Hypothesis with
# thousands of examples per parser (and atheris where its wheel installs), 150 gc races
# per writer, and the whole S3 suite against a local moto server. MLOPS_FAULT_REPORT=DIR
# writes the counts as JSON there.
FAULT_REPORT ?= soak-report
soak: install-dev install-torch
	-$(PIP) install $(PIP_FLAGS) atheris==3.0.0
	$(PY) -m pytest -m "soak or s3" -q tests --ignore=tests/faults
	MLOPS_FAULT_REPORT=$(FAULT_REPORT) $(PY) -m pytest -m soak -s -q tests/faults

# The documentation site (MkDocs, API reference from the docstrings by mkdocstrings) in
# site/; warnings (a broken link or anchor, a docstring that does not parse) are errors.
docs: $(PY)
	$(PIP) install $(PIP_FLAGS) -e '.[docs]'
	$(VENV)/bin/mkdocs build --strict -q

lint: install-dev
	$(VENV)/bin/ruff check engine kernels tests bench examples setup.py

bench: install-dev
	$(PY) bench/bench_cdc.py --size $(BENCH_SIZE)
	$(PY) bench/bench_import.py
	$(PY) bench/bench_startup.py
	$(PY) bench/bench_index.py
	$(PY) bench/bench_drift_kernels.py
	$(PY) bench/bench_drift.py
	$(PY) bench/bench_encrypt.py
	$(PY) -m pytest bench -q --benchmark-columns=min,mean,max,ops

# CLI start-up: an unchanged re-snapshot of 2,000 files, `mlops data log`, `mlops model list`,
# each a fresh process beside `python -c pass` (about 10 s).
bench-startup: install-dev
	$(PY) bench/bench_startup.py

# Peers for bench-data: restic (apt) and dvc (pip, in its own .venv-peers).
bench-peers:
	bash bench/install_peers.sh

# Dataset versioning side by side with DVC and restic (about 3 minutes for 1 GiB);
# bench-data-large is the same at 4x (4 GiB + 40,000 small files, about 8 minutes, 45 GiB
# of free disk). As root both settle the page cache before each timed step (--settle).
SETTLE := $(if $(filter 0,$(shell id -u)),--settle,)
bench-data: install-dev bench-peers
	$(PY) bench/bench_data.py --size $(BENCH_SIZE) $(SETTLE)

bench-data-large: install-dev bench-peers
	$(PY) bench/bench_data.py --size 4GiB --small-files 40000 $(SETTLE)

# Distributed training over 2 MPI ranks: raw Allreduce, compute-only, engine.dist, DDP-gloo;
# and checkpoint cost against torch.save + fsync (see docs/benchmarks.md).
bench-dist: install-dev install-torch
	$(PY) bench/bench_dist.py
	$(PY) bench/bench_checkpoint.py
	$(PY) -m engine.cli run -n 2 bench/bench_preempt.py

# Model registry side by side with MLflow (SQLite backend; MLflow in its own .venv-mlflow).
bench-registry: install-dev
	bash bench/install_mlflow.sh
	$(PY) bench/bench_registry.py

# Drift side by side with a scipy loop and Evidently (Evidently in its own .venv-evidently);
# about 2 minutes, most of it Evidently's 3 runs.
bench-drift-peers: install-dev
	bash bench/install_evidently.sh
	$(PY) bench/bench_drift_peers.py

# drift() on two 1,000,000 x 1,000 float32 tables: time and peak memory (writes 8 GB of
# Arrow files to a temporary directory; several minutes). Scale down with
# `make bench-drift-large DRIFT_LARGE_ARGS="--cols 100"`.
DRIFT_LARGE_ARGS ?=
bench-drift-large: install-dev
	$(PY) bench/bench_drift_large.py $(DRIFT_LARGE_ARGS)

clean:
	rm -rf build $(VENV) *.egg-info .pytest_cache .hypothesis .benchmarks
	rm -f kernels/*.c kernels/*.so
