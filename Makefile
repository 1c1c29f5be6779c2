# freshcache: the two commands the README promises, and their helpers.
#
# Every environment is installed by uv (pinned, with hashes, in
# scripts/uv-requirements.txt) from the lock file uv.lock, so a clean clone
# next month installs exactly what the suite last passed with. pyproject.toml
# keeps ranges for users; test-latest and test-oldest run the suite at both
# ends of them (docs/dependencies.md).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TOOLS := .tools
UV := $(TOOLS)/bin/uv
EXTRAS := --extra cli --extra msgpack --extra pydantic --extra postgres --extra sqlalchemy \
	--extra django --extra prometheus --extra fastapi --extra flask --extra otel
# Never download a Python: use the one named by PYTHON.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
SYNC = UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet

.PHONY: demo test check lint format unasync services bench clean lock \
	test-latest test-oldest django-suite

$(UV): scripts/uv-requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --require-hashes -r scripts/uv-requirements.txt
	touch $@

$(VENV)/.demo: $(UV) uv.lock pyproject.toml
	$(SYNC) --extra cli --no-default-groups --inexact
	touch $@

$(VENV)/.dev: $(UV) uv.lock pyproject.toml
	$(SYNC) $(EXTRAS) --group dev
	touch $@ $(VENV)/.demo

## make demo: the main job on the embedded default (no server needed)
demo: $(VENV)/.demo
	$(VENV)/bin/freshcache demo

## make test: lint, types, generated-code check, and the whole suite on real
## servers, with the locked versions
test: $(VENV)/.dev services check django-suite
	FRESHCACHE_REQUIRE_SERVERS=1 $(PY) -m pytest

## make test-latest: the suite with the newest versions pyproject.toml allows
## (resolved now, ignoring uv.lock), in .venv-latest
test-latest: $(UV) services
	$(UV) venv --quiet --allow-existing .venv-latest
	VIRTUAL_ENV=.venv-latest $(UV) pip install --quiet --refresh --upgrade \
		-e '.[cli,msgpack,pydantic,postgres,sqlalchemy,django,prometheus,fastapi,flask,otel]' --group dev
	VIRTUAL_ENV=.venv-latest $(UV) pip list --format freeze | grep -iE '^(redis|hiredis|orjson|msgpack|pydantic|psycopg|sqlalchemy|rich|django|prometheus.client|fastapi|starlette|flask|werkzeug|opentelemetry.api|opentelemetry.sdk)=='
	FRESHCACHE_REQUIRE_SERVERS=1 .venv-latest/bin/python -m pytest -p no:cacheprovider

## make test-oldest: the suite with the lowest versions pyproject.toml allows
## for the runtime dependencies and every extra, in .venv-oldest
test-oldest: $(UV) services
	$(UV) venv --quiet --allow-existing .venv-oldest
	$(UV) pip compile --quiet --resolution lowest-direct --all-extras \
		pyproject.toml -o .venv-oldest/lowest.txt
	VIRTUAL_ENV=.venv-oldest $(UV) pip install --quiet --reinstall-package freshcache \
		-e '.[cli,msgpack,pydantic,postgres,sqlalchemy,django,prometheus,fastapi,flask,otel]' --group dev \
		-c .venv-oldest/lowest.txt
	VIRTUAL_ENV=.venv-oldest $(UV) pip list --format freeze | grep -iE '^(redis|hiredis|orjson|msgpack|pydantic|psycopg|sqlalchemy|rich|django|prometheus.client|fastapi|starlette|flask|werkzeug|opentelemetry.api|opentelemetry.sdk)=='
	FRESHCACHE_REQUIRE_SERVERS=1 .venv-oldest/bin/python -m pytest -p no:cacheprovider

## make django-suite: Django's own cache tests for the installed Django, from
## its sdist, checked against uv.lock's hash (docs/django.md)
django-suite: $(VENV)/.dev
	$(PY) scripts/django_suite.py

## make lock: re-resolve uv.lock after a change to pyproject.toml
## (`make lock ARGS=--upgrade` moves every pin to the newest allowed)
lock: $(UV)
	$(UV) lock $(ARGS)

check: $(VENV)/.dev
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache
	$(PY) scripts/unasync.py --check

format: $(VENV)/.dev
	$(PY) scripts/unasync.py
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
	$(PY) scripts/unasync.py  # again: the import sort changed _async

unasync: $(VENV)/.dev
	$(PY) scripts/unasync.py

services:
	scripts/services.sh

bench: $(VENV)/.dev services
	$(PY) -m bench hits

clean:
	rm -rf $(VENV) .venv-latest .venv-oldest $(TOOLS) .django-suite .mypy_cache .pytest_cache .ruff_cache .hypothesis
