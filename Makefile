# Two entry points, both self-installing: `make suite` gates the models, `make test` also runs the harness's tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: suite test install bench clean-cache

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

install: $(VENV)/.installed

suite: $(VENV)/.installed
	$(PY) -m pytest robustness_tests -n auto $(PYTEST_ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest tests robustness_tests -n auto $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_overhead.py
	$(PY) benchmarks/bench_suite.py
	$(PY) benchmarks/bench_memory.py

clean-cache:
	rm -rf .cache/robustness-gate
