# Two entry points, both self-installing: `make suite` gates the models, `make test` also runs the harness's tests.
# Both install the locked environment (requirements.lock, every dependency pinned by pip-tools); `make lock` moves it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
LOCK_VENV ?= .venv-lock
LOCK_ARGS ?=

.PHONY: suite test install lock bench clean-cache

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(VENV)/.installed

# Re-resolve pyproject.toml's ranges into requirements.lock, keeping every pin that still fits. Upgrade one
# library with LOCK_ARGS="-P scipy", all with LOCK_ARGS=--upgrade; then review the diff and re-record what
# README "Portability" lists.
lock:
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet pip-tools
	$(LOCK_VENV)/bin/pip-compile --quiet --strip-extras --no-emit-find-links --no-emit-index-url $(LOCK_ARGS) \
		--output-file=requirements.lock pyproject.toml

suite: $(VENV)/.installed
	$(PY) -m pytest robustness_tests -n auto $(PYTEST_ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest tests robustness_tests -n auto $(PYTEST_ARGS)

# bench_peer runs CLIP_benchmark from its own venv (PEER_VENV, default /tmp/peer-venv); without one it prints how to
# create it and a SKIPPED line, and fails only with REQUIRE_PEER=1.
bench: $(VENV)/.installed
	$(PY) benchmarks/bench_overhead.py
	$(PY) benchmarks/bench_head.py
	$(PY) benchmarks/bench_suite.py
	$(PY) benchmarks/bench_memory.py
	$(PY) benchmarks/bench_scaling.py
	$(PY) benchmarks/bench_startup.py
	$(PY) benchmarks/bench_peer.py

clean-cache:
	rm -rf .cache/robustness-gate
