# freshcache: the two commands the README promises, and their helpers.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: demo test check lint format unasync services bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.demo: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[cli]'
	touch $@

$(VENV)/.dev: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e '.[cli,msgpack,pydantic,postgres]' --group dev
	touch $@ $(VENV)/.demo

## make demo: the main job on the embedded default (no server needed)
demo: $(VENV)/.demo
	$(VENV)/bin/freshcache demo

## make test: lint, types, generated-code check, and the whole suite on real servers
test: $(VENV)/.dev services check
	FRESHCACHE_REQUIRE_SERVERS=1 $(PY) -m pytest

check: $(VENV)/.dev
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) scripts/unasync.py --check

format: $(VENV)/.dev
	$(PY) scripts/unasync.py
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

unasync: $(VENV)/.dev
	$(PY) scripts/unasync.py

services:
	scripts/services.sh

bench: $(VENV)/.dev services
	$(PY) -m bench hits

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
