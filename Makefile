# keras_mm developer commands. Everything installs itself into .venv on first use.
#   make demo   - the project's main job: train CLIP on the bundled shapes data,
#                 print the evaluation table, export a SavedModel (runs/demo)
#   make test   - lint, then the whole test suite once per backend
#   make lint   - ruff check + format check only
#   make docs   - the documentation site in site/ (mkdocs build --strict)
#   make notebooks - regenerate notebooks/ from their _make_*.py and execute them
#                 (JAX backend) to store their outputs

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BACKENDS ?= jax torch tensorflow
export HF_HUB_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONUNBUFFERED := 1

.PHONY: install demo fusion-demo test lint format docs notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU wheel (plain `torch` pulls a multi-GB CUDA build),
	# by pip so that the machine's pip configuration (local wheels, constraints) applies.
	$(BIN)/python -m pip install -q "torch==2.13.0" uv
	# The rest by uv, which downloads and unpacks in parallel: 25 s instead of ~3 min for
	# pip on the 2-core machine (same resolved versions); it keeps the torch above.
	$(BIN)/uv pip install -q -p $(BIN)/python -e ".[jax,torch,tests,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/keras-mm train --family clip --dataset shapes --epochs 5 --output runs/demo --overwrite --verbose 2
	$(BIN)/keras-mm evaluate runs/demo --fail-under zero_shot_top1=0.95
	$(BIN)/keras-mm export runs/demo --overwrite

fusion-demo: $(STAMP)
	$(BIN)/python -m keras_mm.demo

lint: $(STAMP)
	$(BIN)/ruff check keras_mm tests benchmarks tools
	$(BIN)/ruff format --check keras_mm tests benchmarks tools

format: $(STAMP)
	$(BIN)/ruff format keras_mm tests benchmarks tools
	$(BIN)/ruff check --fix keras_mm tests benchmarks tools

# The site reads the docstrings statically and the notebooks' stored outputs: it
# imports neither Keras nor a backend (tests/docs_site_test.py builds it in CI).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# One notebook after the other, each in a fresh kernel (CPU heavy: minutes each).
notebooks: $(STAMP)
	for generator in notebooks/_make_*.py; do $(BIN)/python $$generator || exit 1; done
	KERAS_BACKEND=jax XLA_FLAGS=--xla_backend_optimization_level=0 \
		$(BIN)/python tools/execute_notebooks.py

# Backends run one after the other, each in its own pytest process (Keras fixes the
# backend at import) spread over TEST_WORKERS pytest-xdist workers that take one test
# file at a time, costly files first (tests/conftest.py), with its log in
# test-logs/<backend>.log. Running the three backends as parallel jobs instead left
# one core idle whenever one backend's run was much longer than the others'.
# Three workers on the 2-core machine: a worker often waits (on a subprocess it
# started, a multi-process test's peers, a file another process writes), and a third
# fills those gaps. Measured on the JAX run: 2 workers ~550 s, 3 workers 468 s.
TEST_JOBS ?= 1
TEST_WORKERS ?= 3
PYTEST_ARGS ?= -q -p no:cacheprovider --durations=30 -n $(TEST_WORKERS)

# KERAS_MM_TEST_SHARED_DIR (fresh per `make test`): files one backend's run writes once
# for the other two runs (tests/models/cross_backend_training_test.py).
test: lint
	@mkdir -p test-logs; rm -f test-logs/*.failed
	@start=$$(date +%s); export JAX_COMPILATION_CACHE_DIR=$$(mktemp -d) \
		KERAS_MM_TEST_SHARED_DIR=$$(mktemp -d); \
	$(MAKE) --no-print-directory -k -j$(TEST_JOBS) $(addprefix test-,$(BACKENDS)); \
	echo "test time: $$(( $$(date +%s) - start )) s"; \
	failed=$$(cd test-logs && ls *.failed 2>/dev/null | sed 's/.failed//' | tr '\n' ' '); \
	if [ -n "$$failed" ]; then echo "FAILED backends: $$failed"; exit 1; fi; \
	echo "all backends passed: $(BACKENDS)"

# JAX compiles every train/predict step with XLA, and on the suite's tiny models the
# compilation, not the run, is most of the time: LLVM's optimisation level 0 cuts the
# jax run's CPU time by 26% (measured on the VQA and captioner learning tests, 120 s ->
# 88 s; 18% on notebooks 01-02). It changes code generation only, not the HLO graph.
# It is set for every backend's run: the JAX subprocesses that the torch and TensorFlow
# runs start (cross-backend tests) compile too, and TensorFlow uses XLA on CPU only where
# a test asks for `jit_compile=True`.
# Two more compile-time flags: XLA's older loop emitters instead of the fusion emitters and
# no expensive LLVM passes: tests/models/vlmp_test.py 57 -> 25 s CPU (with level 0), the
# VQA + VLP notebooks (run time more than compile time) 109 -> 101 s; the whole JAX run
# 632 s with the fusion emitters, 468 s without.
JAX_TEST_XLA_FLAGS := --xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false \
	--xla_llvm_disable_expensive_passes=true
# The TensorFlow run: one intra-op thread per op. Three workers with TensorFlow's default
# pools (one thread per core each) spin for work on 2 cores; in a clean-clone `.ci/run` the
# run took 382 s with one intra-op thread against 417 s with the default (the tests'
# models are tiny).
# JAX's persistent compilation cache (fresh per `make test`) lets a test reuse what an
# earlier test, an xdist worker or a JAX subprocess compiled for the same program: -11% CPU on
# tests/models/vlmp_test.py alone (57 -> 51 s), more across files.
test-%: $(STAMP)
	@mkdir -p test-logs
	@echo "=== KERAS_BACKEND=$* started ==="
	@if [ "$*" = torch ]; then export OMP_NUM_THREADS=1; fi; \
	if [ "$*" = tensorflow ]; then export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=2; fi; \
	export XLA_FLAGS="$(JAX_TEST_XLA_FLAGS)" JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
		JAX_COMPILATION_CACHE_DIR=$${JAX_COMPILATION_CACHE_DIR:-$$(mktemp -d)}; \
	start=$$(date +%s); \
	KERAS_BACKEND=$* $(BIN)/python -m pytest $(PYTEST_ARGS) tests \
		> test-logs/$*.log 2>&1 || touch test-logs/$*.failed; \
	echo "=== KERAS_BACKEND=$* finished in $$(( $$(date +%s) - start )) s ==="; \
	cat test-logs/$*.log

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-logs site .cache
