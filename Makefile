# Attune services. `make help` lists the targets.
#
# Every target that needs Python or Node tooling creates it first: a fresh
# clone needs nothing but python3 (>= 3.11) and, for the contract and the
# polyglot test, Node.js with npm, and for the Redis tests redis-server and
# redis-cli (both installed through apt when missing and running as root).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
VENV_STAMP := $(VENV)/.installed-stamp
# The deploy checks' tools, apart from the services' venv (see deploy/k8s/requirements.txt).
DEPLOY_VENV ?= .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed-stamp
DEPLOY_REQUIREMENTS := deploy/k8s/requirements.txt
NODE_STAMP := node_modules/.installed-stamp
BUF := node_modules/.bin/buf
PYTEST_ARGS ?=
# grpcio and grpcio-tools move together: generated stubs check the runtime.
GRPC_VERSION := 1.85.1

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# --- environments -----------------------------------------------------------

$(VENV_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

$(DEPLOY_STAMP): $(DEPLOY_REQUIREMENTS)
	$(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --upgrade pip
	$(DEPLOY_VENV)/bin/pip install --quiet --no-deps -r $(DEPLOY_REQUIREMENTS)
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq nodejs npm; \
	  else echo "npm is required (install Node.js 18+)"; exit 1; fi; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Not a stamp: the tools live outside the tree, so look for them every time.
.PHONY: redis-tools
redis-tools: ## Make sure redis-server and redis-cli exist (apt-get installs them as root).
	@{ command -v redis-server && command -v redis-cli; } >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools; \
	  else echo "redis-server and redis-cli are required (install redis-server and redis-tools)"; exit 1; fi; }

.PHONY: venv
venv: $(VENV_STAMP) ## Create .venv and install the project with its dev tools.

.PHONY: lock
lock: ## Re-resolve constraints.txt from pyproject.toml (exact pins).
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[dev]' $(foreach p,grpcio grpcio-tools grpcio-status grpcio-health-checking grpcio-reflection,$(p)==$(GRPC_VERSION))
	.lock-venv/bin/pip freeze --exclude-editable --exclude pip > constraints.txt
	rm -rf .lock-venv

.PHONY: lock-deploy
lock-deploy: ## Re-resolve deploy/k8s/requirements.txt (the deploy checks' tools, exact pins).
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet checkov kubernetes-validate yamllint
	{ sed -n '/^#/p' $(DEPLOY_REQUIREMENTS); .lock-venv/bin/pip freeze --exclude pip; } > $(DEPLOY_REQUIREMENTS).new
	mv $(DEPLOY_REQUIREMENTS).new $(DEPLOY_REQUIREMENTS)
	rm -rf .lock-venv

# --- the contract -----------------------------------------------------------

.PHONY: proto
proto: $(VENV_STAMP) ## Regenerate the committed Python package `attune` from protos/.
	find protos/attune \( -name '*_pb2*.py' -o -name '*_pb2*.pyi' \) -delete
	PATH="$(abspath $(BIN)):$$PATH" protos/generate.sh protos

.PHONY: proto-check
proto-check: $(VENV_STAMP) ## Fail if the committed generated code differs from what the protos produce.
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	PATH="$(abspath $(BIN)):$$PATH" protos/generate.sh "$$tmp"; \
	if diff -r -q -x '*.proto' -x '__pycache__' "$$tmp/attune" protos/attune; then \
	  echo "proto-check: generated code is up to date"; \
	else echo "proto-check: generated code differs from protos/ - run 'make proto' and commit"; exit 1; fi

# --- quality ----------------------------------------------------------------

.PHONY: lint
lint: $(VENV_STAMP) $(NODE_STAMP) deploy-check ## ruff, ruff format --check, mypy --strict, import contracts, buf lint, buf format check, hadolint, deploy checks.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo --no-cache
	cd protos && ../$(BUF) lint
	cd protos && ../$(BUF) format --diff --exit-code
	$(BIN)/hadolint deploy/docker/Dockerfile

.PHONY: deploy-check
deploy-check: $(VENV_STAMP) $(DEPLOY_STAMP) ## Render every overlay and component combination; yamllint, kubernetes-validate --strict, checkov.
	PATH="$(abspath $(BIN)):$$PATH" TOOLS=$(abspath $(DEPLOY_VENV))/bin deploy/k8s/check.sh

.PHONY: format
format: $(VENV_STAMP) $(NODE_STAMP) ## Apply ruff and buf formatting.
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	cd protos && ../$(BUF) format -w

.PHONY: test
test: $(VENV_STAMP) $(NODE_STAMP) redis-tools ## Run unit, integration, e2e and polyglot tests (fails if none ran).
	$(BIN)/pytest $(PYTEST_ARGS)

# The long fuzz run: requests per RPC, and the length of huge strings (past every size limit).
FUZZ_EXAMPLES ?= 2000
FUZZ_HUGE ?= 300000

.PHONY: fuzz
fuzz: $(VENV_STAMP) ## Fuzz every RPC of both services long (FUZZ_EXAMPLES per RPC); results in fuzz-results.json.
	ATTUNE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) ATTUNE_FUZZ_HUGE=$(FUZZ_HUGE) ATTUNE_FUZZ_CALL_DEADLINE=60 \
	  ATTUNE_FUZZ_TEST_TIMEOUT=0 ATTUNE_FUZZ_RESULTS=$(abspath fuzz-results.json) \
	  $(BIN)/pytest tests/integration/test_fuzz.py -p no:randomly $(PYTEST_ARGS)

.PHONY: bench
bench: $(VENV_STAMP) ## Run the benchmarks in tests/bench (not part of `make test`).
	$(BIN)/pytest tests/bench -p no:timeout -s $(PYTEST_ARGS)

# --- running ----------------------------------------------------------------

.PHONY: run
run: $(VENV_STAMP) ## Start both services on the embedded store, drive them with a demo client, stop them.
	$(PY) -m executor_service.dev.demo

.PHONY: serve
serve: $(VENV_STAMP) ## Serve both services in the foreground (executor :50051, memory :50052) until Ctrl-C.
	$(PY) -m executor_service.dev.stack

.PHONY: clean
clean: ## Remove environments, caches and local data.
	rm -rf $(VENV) $(DEPLOY_VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .hypothesis .attune-data
