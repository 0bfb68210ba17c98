# gitops-ml — every target bootstraps .venv on first use. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DELETE_ON_ERROR:

# VENV may point outside the checkout: a self-hosted runner keeps one prebuilt environment
# (the act harness passes its own), reused as long as the dependency files are unchanged.
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# The install stamp is named after the dependency files' content, not their mtime: a fresh
# checkout or act's copy of the tree must not reinstall an environment that is up to date.
DEPS_HASH := $(shell cat pyproject.toml requirements/constraints.txt | md5sum | cut -c1-12)
STAMP := $(abspath $(VENV))/.installed-$(DEPS_HASH)
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

# A venv restored from a cache saved on another machine can have broken interpreter links
# (hosted and self-hosted runners keep Python in different places): `make install` checks
# that the venv's python runs, is that venv, and finds the core third-party packages, and
# rebuilds it when not — only a venv inside this checkout (the one a cache restores); one
# given from outside (VENV=/opt/..., the act harness's) is never deleted, only reported.
VENV_CHECK := import importlib.util as u, os, sys; \
  ok = os.path.realpath(sys.prefix) == os.path.realpath("$(abspath $(VENV))") \
  and all(u.find_spec(m) for m in ("yaml", "dvc", "sklearn")); sys.exit(0 if ok else 1)
VENV_BROKEN := $(shell test -e $(abspath $(VENV))/pyvenv.cfg && \
  { cd / && $(BIN)/python -c '$(VENV_CHECK)' >/dev/null 2>&1 || echo yes; })
VENV_OURS := $(filter $(CURDIR)/%,$(abspath $(VENV)))

ifeq ($(VENV_BROKEN),yes)
$(STAMP): venv-rebuild
endif

.PHONY: venv-rebuild
venv-rebuild:
	@if [ -z "$(VENV_OURS)" ]; then \
	  echo "install: $(VENV) does not work on this machine, and it is not this checkout's: fix or remove it" >&2; exit 2; fi
	@echo "install: $(VENV) does not work on this machine (interpreter or packages missing): rebuilding it"
	rm -rf $(abspath $(VENV))

$(STAMP):
	test -x $(BIN)/python || $(PYTHON_BOOT) -m venv $(abspath $(VENV))
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip install $(UV_FLAGS) -c requirements/constraints.txt -e '.[serving,monitoring,dev]'
	rm -f $(abspath $(VENV))/.installed-*
	touch $@

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: $(STAMP) ## Create .venv and install the project with its pinned dependencies

# The S3-compatible server the tests and the act sandbox store DVC data in (scripts/dev/s3.py):
# moto's standalone server, in its own environment (its botocore pins differ from ours).
S3_SERVER_VENV ?= .venv-s3
S3_SERVER_STAMP := $(abspath $(S3_SERVER_VENV))/.installed-$(shell md5sum < requirements/s3-server.txt | cut -c1-12)
export GITOPS_ML_S3_SERVER ?= $(abspath $(S3_SERVER_VENV))/bin/moto_server

$(S3_SERVER_STAMP):
	test -x $(abspath $(S3_SERVER_VENV))/bin/python || $(PYTHON_BOOT) -m venv $(abspath $(S3_SERVER_VENV))
	$(abspath $(S3_SERVER_VENV))/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(abspath $(S3_SERVER_VENV))/bin/uv pip install --quiet --python $(abspath $(S3_SERVER_VENV))/bin/python -r requirements/s3-server.txt
	rm -f $(abspath $(S3_SERVER_VENV))/.installed-*
	touch $@

.PHONY: s3-server-env
s3-server-env: $(S3_SERVER_STAMP) ## Install moto's S3 server in .venv-s3 (for the tests)

PORT ?= 3000
GIT_SHA = $(shell git rev-parse --short=7 HEAD 2>/dev/null || echo nogit)

.PHONY: demo
demo: install ## Train, export, build the Bento; deploy staging and an A/B experiment in production; decide
	dvc repro
	@echo
	dvc metrics show
	@echo
	python -m scripts.build_bento
	python -m scripts.smoke --serve credit_risk:$(GIT_SHA)
	@echo
	python -m scripts.dev.demo_ab --bento-file dist/credit_risk-$(GIT_SHA).bento
	@echo
	@echo "Outputs: data/ (raw, split), metrics.json, reports/ (validation.json, plots/, figures/),"
	@echo "         models/ (model.joblib, model.onnx, serving.json, model_card.md), dist/*.bento"
	@echo "Next: make serve (one Bento), or python -m scripts.dev.demo_ab --keep (staging + A/B production); see README."

# Git reference for the regression gate and the report's diffs (CI passes origin/<base>).
AGAINST ?= main
# Files `dvc repro` rewrites that git tracks: a PR must commit them (see check-lock).
LOCKED := dvc.lock metrics.json reports/validation.json reports/plots

.PHONY: repro
repro: install ## Pull what the remote has (outputs and run-cache), reproduce the rest
	python -m scripts.storage check
	dvc pull --run-cache --allow-missing
	dvc repro --pull

# Two trust levels in one bucket (docs/storage-trust.md): the default remote holds main's
# results and only the release role's keys write it; a pull request's job writes the `pr`
# remote (the default's URL + /pr, configured in .dvc/config.local) and nothing else.
# Run-cache entries come from main only (the default remote's, written by releases):
# every PR writes `pr/runs/`, so one PR's entry could hand another its outputs. A PR's own
# earlier results come back as the objects its dvc.lock names (`dvc pull -r pr`, hashed).
.PHONY: ci-repro
ci-repro: install ## CI, a pull request: main's outputs and run-cache, the PR's own outputs; push to the PR remote only
	python -m scripts.storage check
	python -m scripts.storage pr-remote
	dvc pull --run-cache --allow-missing
	dvc pull -r pr --allow-missing
	dvc repro --pull
	dvc push -r pr --run-cache

# Never the PR remote's run-cache (its entries are a pull request's word, unverifiable);
# only the objects main's dvc.lock names, hashed on arrival (verify = true).
.PHONY: release-repro
release-repro: install ## Release (main): main's results, the rest of dvc.lock from the PR remote (verified); push to the default remote
	python -m scripts.storage check
	python -m scripts.storage pr-remote
	dvc pull --run-cache --allow-missing
	dvc pull -r pr --allow-missing
	dvc repro --pull
	dvc push --run-cache

.PHONY: repro-offline
repro-offline: install ## Reproduce without the DVC remote (a fork's PR: no storage credentials)
	dvc repro

.PHONY: lock-changes
lock-changes: ## CI (train.yml): say in the report whether repro changed dvc.lock and the metrics
	python3 -m scripts.gitops lock-changes --report reports/pr_report.md $(LOCKED)

# lock.yml (main's code): the event's fields come from the environment, never make's command
# line (a branch name is text a pull request chose).
.PHONY: lock-commit
lock-commit: ## CI (lock.yml): commit the lock artifact in LOCK_ARTIFACT to HEAD_BRANCH if at HEAD_SHA
	python3 -m scripts.gitops lock --run-artifact "$$LOCK_ARTIFACT" --branch "$$HEAD_BRANCH" --sha "$$HEAD_SHA" $(LOCKED)

.PHONY: sync-lock
sync-lock: install ## After CI trained a PR: restore its results from the PR remote's run-cache (no retraining)
	python -m scripts.storage check
	python -m scripts.storage pr-remote
	dvc pull --allow-missing
	dvc pull -r pr --allow-missing
	python -m scripts.storage repro --pull-from pr
	@git status --short -- $(LOCKED)
	@echo "Commit these files: git add $(LOCKED) && git commit -m 'dvc.lock from CI'"

.PHONY: check-lock
check-lock: ## Fail when `dvc repro` changed files git tracks (dvc.lock, metrics, plots)
	@changed="$$(git status --porcelain -- $(LOCKED))"; \
	if [ -n "$$changed" ]; then \
	  echo "::error::dvc.lock and the metrics are not those of this commit:"; echo "$$changed"; \
	  echo "Run 'make sync-lock' (restores CI's results from the DVC run-cache, no retraining),"; \
	  echo "commit $(LOCKED) and push."; exit 1; \
	fi; echo "check-lock: dvc.lock and metrics match this commit"

.PHONY: gates
gates: install ## Check the validation gates (params.yaml gates:) against AGAINST; writes reports/gates.json
	python -m scripts.gates --against "$(AGAINST)"

.PHONY: report
report: install ## Render the PR report (reports/pr_report.md) against AGAINST, and the job summary
	python -m scripts.report --against "$(AGAINST)" $(if $(ARTIFACT_URL),--artifact-url "$(ARTIFACT_URL)")

.PHONY: bento
bento: install ## Build the Bento (version = git short sha) and export it to dist/
	python -m scripts.build_bento

# Deployment (the deploy driver is scripts.deploy): DEPLOY_ENV=staging|production.
DEPLOY_ENV ?= staging
BENTO_FILE ?= $(firstword $(wildcard dist/*.bento))

.PHONY: deploy
deploy: install ## Release BENTO_FILE (default dist/*.bento) to DEPLOY_ENV: state file edited, then applied
	python -m scripts.deploy release --env "$(DEPLOY_ENV)" --bento-file "$(BENTO_FILE)"

.PHONY: state-pending
state-pending: ## Fail while an earlier state change (a gitops/* PR) is still open
	python3 -m scripts.gitops pending --prefix gitops/

.PHONY: push-bento
push-bento: install ## Keep BENTO_FILE in the shared storage (DVC remote, bentos/<name>/<version>.bento)
	python -m scripts.deploy push --env production --bento-file "$(BENTO_FILE)"

.PHONY: release-needed
release-needed: install ## Is this checkout's model or serving code new to production? (release=true|false)
	python -m scripts.deploy changed --env production

.PHONY: apply
apply: install ## Reconcile DEPLOY_ENV to bentos/deployments/$(DEPLOY_ENV).yaml
	python -m scripts.deploy apply --env "$(DEPLOY_ENV)"

.PHONY: reconcile
reconcile: install ## Make what runs for DEPLOY_ENV equal to git (repair, remove what git no longer names; PENDING: open release PRs' states); say what changed
	python -m scripts.deploy reconcile --env "$(DEPLOY_ENV)" $(if $(PENDING),--pending "$(PENDING)")

.PHONY: host-setup
host-setup: install ## On a deploy machine: a systemd unit per environment that starts its supervisor at boot (HOST_ARGS=--dry-run)
	python -m scripts.host setup --env staging --env production $(HOST_ARGS)

.PHONY: status
status: install ## Health of what runs for DEPLOY_ENV (exit 1 when something is down)
	python -m scripts.deploy status --env "$(DEPLOY_ENV)"

.PHONY: smoke
smoke: install ## Smoke-test the service deployed to DEPLOY_ENV (through its router)
	python -m scripts.smoke --url "$$(python -m scripts.deploy url --env "$(DEPLOY_ENV)")"

.PHONY: live-gate
live-gate: install ## Smoke test, then a bounded load run of DEPLOY_ENV's router within gates.live
	python -m scripts.smoke --load --url "$$(python -m scripts.deploy url --env "$(DEPLOY_ENV)")"

.PHONY: undeploy
undeploy: install ## Stop what runs for DEPLOY_ENV
	python -m scripts.deploy down --env "$(DEPLOY_ENV)"

ROWS ?= 2000
.PHONY: traffic
traffic: install ## Simulated traffic with feedback to DEPLOY_ENV's router (ROWS rows)
	python -m scripts.dev.traffic --url "$$(python -m scripts.deploy url --env "$(DEPLOY_ENV)")" --rows $(ROWS)

.PHONY: promote
promote: install ## A/B decision for production from Prometheus; a promote/rollback is proposed as a PR
	python -m scripts.promote --env production --propose

.PHONY: k8s
k8s: install ## Render and validate the Kubernetes manifests of every environment
	python -m scripts.k8s render --env staging --env production

BENTO_VERSION = $(lastword $(subst -, ,$(basename $(notdir $(BENTO_FILE)))))
.PHONY: record-release
record-release: install ## After a release: record it in the state files (+ manifests) and propose the change
	python -m scripts.deploy record --env staging --bento-file "$(BENTO_FILE)"
	python -m scripts.deploy record --env production --bento-file "$(BENTO_FILE)"
	python -m scripts.k8s render --env staging --env production
	@mkdir -p reports
	@echo "Release of Bento $(BENTO_VERSION): staging serves it; production runs it as the A/B challenger (or champion on the first release)." > reports/release.md
	python -m scripts.gitops propose bentos/deployments --title "Release $(BENTO_VERSION): deployment state" \
	  --branch "gitops/release-$(BENTO_VERSION)" --body-file reports/release.md --auto-merge

# Monitoring: the drift job over a prepared window (DRIFT_WINDOW) or the production logs.
RUN_DIR := $(or $(GITOPS_ML_RUN_DIR),$(HOME)/.local/state/gitops-ml)
# `$(or)`, not `?=`: a workflow passes an unset repository variable as an empty string.
PREDICTION_LOGS := $(or $(PREDICTION_LOGS),$(wildcard $(RUN_DIR)/production/logs/predictions/*))
DRIFT_WINDOW ?=
# Where the scores go for the alert rules: PUSHGATEWAY, else the local production's.
PUSHGATEWAY ?=
WINDOW ?= $(shell date -u +%Y-%m-%d)

# DRIFT_END (environment, e.g. from an alert's workflow_dispatch input): the judged window ends
# there instead of now; it reaches the shell as a variable, never as make text.
.PHONY: drift
drift: install ## Drift job: window vs training split (reports/drift/); exit 0 no drift or drift, 2 could not run
	python -m scripts.storage check
	dvc pull split evaluate
	@pushgateway="$(PUSHGATEWAY)"; \
	[ -n "$$pushgateway" ] || pushgateway="$$(python -m scripts.deploy url --env production --service pushgateway 2>/dev/null || true)"; \
	set -x; python -m monitoring.drift \
	  $(if $(DRIFT_WINDOW),--current "$(DRIFT_WINDOW)",$(foreach d,$(PREDICTION_LOGS),--logs "$(d)")) \
	  $${DRIFT_END:+--end "$$DRIFT_END"} $${pushgateway:+--pushgateway "$$pushgateway"} || [ $$? -eq 1 ]

.PHONY: retrain-pr
retrain-pr: install ## After `make drift`: open the retraining PR (labelled window as new DVC data) when warranted
	python -m monitoring.retrain --window "$(WINDOW)"

.PHONY: image
image: install ## Containerize BENTO_FILE and push it to IMAGE_REPOSITORY:<version> (skips, with a notice, without Docker)
	python -m scripts.image --bento-file "$(BENTO_FILE)" $(if $(IMAGE_REPOSITORY),--push "$(IMAGE_REPOSITORY):$(BENTO_VERSION)")

.PHONY: serve
serve: bento ## Serve the built Bento on http://127.0.0.1:$(PORT)
	bentoml serve credit_risk:$(GIT_SHA) --host 127.0.0.1 --port $(PORT)

.PHONY: test
test: install s3-server-env ## Run the whole test suite (unit, data, integration, workflows under act)
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-fast
test-fast: install s3-server-env ## Run unit and data tests only
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

# Debian packages the tests and the local deployment start (root, or sudo when available).
SYSTEM_PACKAGES := jq nginx prometheus prometheus-pushgateway prometheus-alertmanager
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: system-deps
system-deps: ## Install the Debian packages the tests start (nginx, prometheus, pushgateway, alertmanager, jq) if missing
	@missing="$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "system-deps: $(SYSTEM_PACKAGES) already installed"; fi

.PHONY: lint-workflows
lint-workflows: install ## Lint the workflows and actions: check-jsonschema and zizmor, default and auditor personas (offline)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions .github/actions/*/action.yml .github/act/actions/*/action.yml
	$(BIN)/zizmor --offline --no-progress --config .github/zizmor.yml .github
	$(BIN)/zizmor --offline --no-progress --persona auditor --config .github/zizmor.yml .github

# Run the real workflow files with nektos/act in a temporary clone (see scripts/dev/harness/).
ACT_ARGS ?=

.PHONY: act-pr
act-pr: install s3-server-env ## Run the pull_request workflows (ci, train) locally with act
	python -m scripts.dev.act pull_request $(ACT_ARGS)

.PHONY: act-main
act-main: install s3-server-env ## Run the push-to-main workflows (ci, release) locally with act
	python -m scripts.dev.act push --workflow ci.yml --workflow release.yml $(ACT_ARGS)

.PHONY: act-schedule
act-schedule: install s3-server-env ## Run the scheduled workflows (deploy's reconcile, promote, drift) locally with act
	python -m scripts.dev.act schedule $(ACT_ARGS)

.PHONY: lint
lint: install ## Run every pre-commit hook on all files (ruff, black, mypy, file checks)
	$(BIN)/pre-commit run --all-files --show-diff-on-failure

.PHONY: bench
bench: bench-pipeline bench-serving bench-drift bench-workflows ## Run every benchmark (tables for docs/benchmarks.md)

.PHONY: bench-pipeline
bench-pipeline: install ## Benchmark the pipeline: full run, no-op repro vs dvc status
	python -m scripts.dev.bench_pipeline

.PHONY: bench-workflows
bench-workflows: install ## Benchmark scenario (a): train.yml under act vs its commands run directly
	python -m scripts.dev.bench_workflows

.PHONY: bench-drift
bench-drift: repro ## Benchmark the drift job on 100k/1M/10M-row windows (time, peak RSS) vs reading them whole
	python -m scripts.dev.bench_drift

.PHONY: bench-restore
bench-restore: install s3-server-env ## A fresh clone restored from the S3 remote vs a full retrain
	python -m scripts.dev.bench_restore

.PHONY: bench-gates
bench-gates: install ## False-failure rate and power of the paired regression gate (docs/gates.md)
	python -m scripts.dev.gate_simulation

.PHONY: bench-ab
bench-ab: install ## False-promotion/false-rollback rates and power of the A/B rule and its guardrails (docs/ab-testing.md)
	python -m scripts.dev.ab_simulation

.PHONY: bench-interpreters
bench-interpreters: install ## A new Bento's interpreter (first start) vs the cached one (docs/benchmarks.md)
	python -m scripts.dev.bench_interpreters

.PHONY: bench-serving
bench-serving: bento ## Benchmark the Bento against a FastAPI+joblib baseline with wrk
	python -m scripts.dev.bench_serving --bento credit_risk:$(GIT_SHA)

.PHONY: lock
lock: install ## Re-pin requirements/constraints.txt from the current .venv
	$(BIN)/uv pip freeze --python $(BIN)/python --exclude-editable \
	  | sed -E 's/^(torch==[0-9.]+)\+cpu$$/\1/' > requirements/constraints.txt
	@{ echo "# The Bento's serving closure: bentofile.yaml's python.packages resolved under"; \
	  echo "# requirements/constraints.txt (make lock). The Bento carries it; a deploy host builds the"; \
	  echo "# variant's interpreter with it (scripts/cd/interpreters.py). A tools-only pin bump (ruff,"; \
	  echo "# pytest) leaves it, and so the Bento's content digest, unchanged."; \
	  $(BIN)/python -c 'import yaml; print("\n".join(yaml.safe_load(open("bentofile.yaml"))["python"]["packages"]))' \
	  | $(BIN)/uv pip compile -q --python $(BIN)/python -c requirements/constraints.txt - --no-header --no-annotate; \
	} > requirements/serving.txt

.PHONY: clean
clean: ## Remove caches (not .venv, not DVC outputs)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
