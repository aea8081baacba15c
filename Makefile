# keras_mm developer commands. Everything installs itself into .venv on first use.
#   make demo   - the project's main job: train CLIP on the bundled shapes data,
#                 print the evaluation table, export a SavedModel (runs/demo)
#   make test   - lint, then the whole test suite once per backend
#   make lint   - ruff check + format check only

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BACKENDS ?= tensorflow jax torch
export HF_HUB_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export PYTHONUNBUFFERED := 1

.PHONY: install demo fusion-demo test lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the CPU wheel (plain `torch` pulls a multi-GB CUDA build).
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[jax,torch,tests]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/keras-mm train --family clip --dataset shapes --epochs 5 --output runs/demo --overwrite --verbose 2
	$(BIN)/keras-mm evaluate runs/demo --fail-under zero_shot_top1=0.95
	$(BIN)/keras-mm export runs/demo --overwrite

fusion-demo: $(STAMP)
	$(BIN)/python -m keras_mm.demo

lint: $(STAMP)
	$(BIN)/ruff check keras_mm tests benchmarks
	$(BIN)/ruff format --check keras_mm tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format keras_mm tests benchmarks
	$(BIN)/ruff check --fix keras_mm tests benchmarks

test: lint
	@failed=""; \
	for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend ==="; \
		threads=""; [ "$$backend" = torch ] && threads="OMP_NUM_THREADS=1"; \
		env $$threads KERAS_BACKEND=$$backend $(BIN)/python -m pytest -q -p no:cacheprovider tests \
			|| failed="$$failed $$backend"; \
	done; \
	if [ -n "$$failed" ]; then echo "FAILED backends:$$failed"; exit 1; fi; \
	echo "all backends passed: $(BACKENDS)"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
