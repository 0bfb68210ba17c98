# gitops-ml — every target bootstraps .venv on first use. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:

VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON_BOOT ?= python3
# Folders of local wheels, passed to uv when present (this platform keeps the CPU
# build of torch in /opt/wheels). GPU runners take the CUDA build from PyPI instead.
FIND_LINKS ?= $(wildcard /opt/wheels)
# Extra index for torch, e.g. https://download.pytorch.org/whl/cpu on CPU-only runners.
TORCH_INDEX ?=
UV_FLAGS := --python $(BIN)/python --compile-bytecode \
	$(if $(FIND_LINKS),--find-links $(FIND_LINKS)) \
	$(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX) --index-strategy unsafe-best-match)
PYTEST_ARGS ?=

# Stages run `python -m pipeline.<stage>` through dvc: the venv must come first on PATH.
export PATH := $(BIN):$(PATH)
export BENTOML_DO_NOT_TRACK := true
# The BentoML model store lives in the checkout (git-ignored), like the DVC remote.
export BENTOML_HOME ?= $(CURDIR)/.bentoml
export MPLBACKEND := Agg

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON_BOOT) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip install $(UV_FLAGS) -c requirements/constraints.txt -e '.[serving,monitoring,dev]'
	touch $@

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: $(VENV)/.installed ## Create .venv and install the project with its pinned dependencies

PORT ?= 3000
GIT_SHA = $(shell git rev-parse --short=7 HEAD 2>/dev/null || echo nogit)

.PHONY: demo
demo: install ## Train, evaluate, export, build the Bento and smoke-test it, on embedded synthetic data
	dvc repro
	@echo
	dvc metrics show
	@echo
	python -m scripts.build_bento
	python -m scripts.smoke --serve credit_risk:$(GIT_SHA)
	@echo
	@echo "Outputs: data/ (raw, split), metrics.json, reports/ (validation.json, plots/, figures/),"
	@echo "         models/ (model.joblib, model.onnx, serving.json, model_card.md), dist/*.bento"
	@echo "Next: make serve, then see README for a curl example."

.PHONY: gates
gates: install ## Check the validation gates (params.yaml gates:) against main; writes reports/gates.json
	python -m scripts.gates

.PHONY: bento
bento: install ## Build the Bento (version = git short sha) and export it to dist/
	python -m scripts.build_bento

.PHONY: serve
serve: bento ## Serve the built Bento on http://127.0.0.1:$(PORT)
	bentoml serve credit_risk:$(GIT_SHA) --host 127.0.0.1 --port $(PORT)

.PHONY: test
test: install ## Run the whole test suite (unit, data, integration)
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: install ## Run unit and data tests only
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

.PHONY: lint
lint: install ## Run every pre-commit hook on all files (ruff, black, mypy, file checks)
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

.PHONY: bench
bench: bench-pipeline bench-serving ## Run every benchmark (tables for docs/benchmarks.md)

.PHONY: bench-pipeline
bench-pipeline: install ## Benchmark the pipeline: full run, no-op repro vs dvc status
	python -m scripts.bench_pipeline

.PHONY: bench-serving
bench-serving: bento ## Benchmark the Bento against a FastAPI+joblib baseline with wrk
	python -m scripts.bench_serving --bento credit_risk:$(GIT_SHA)

.PHONY: lock
lock: install ## Re-pin requirements/constraints.txt from the current .venv
	$(BIN)/uv pip freeze --python $(BIN)/python --exclude-editable \
	  | sed -E 's/^(torch==[0-9.]+)\+cpu$$/\1/' > requirements/constraints.txt

.PHONY: clean
clean: ## Remove caches (not .venv, not DVC outputs)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
