# Carbon Cash Market: set-up, run and test from a fresh clone.
#
#   make run    install everything, migrate, load demo data, start the web server on
#               http://127.0.0.1:$(PORT)/ (DEBUG=False: plain error pages, as production
#               serves) and the liquidity worker, both from the Procfile
#   make dev    the same with Django's runserver and DEBUG=True (tracebacks), for debugging
#   make test   install everything, run the whole test suite
#   make lint   ruff check + ruff format --check
#   make css    rebuild the Tailwind stylesheet
#   make lock   re-resolve the pinned dependencies (requirements*.txt) from pyproject.toml
#
# Needs python3 (3.11+), node and npm. Everything else is installed into .venv/ and
# config/theme/static_src/node_modules/.

PYTHON ?= python3
PORT ?= 8000
HOST ?= 127.0.0.1
GUNICORN_ARGS ?= --workers 2 --access-logfile -
PYTEST_ARGS ?=
# Test processes (pytest-xdist): the suite runs in about two thirds of the time on 2 cores.
TEST_WORKERS ?= auto

VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
MANAGE := $(PY) manage.py
THEME_SRC := config/theme/static_src
PY_STAMP := $(VENV)/.installed
NPM_STAMP := $(THEME_SRC)/node_modules/.installed
CSS := config/theme/static/css/dist/styles.css

.DEFAULT_GOAL := help
.PHONY: help install run dev serve migrate test lint format css clean

help:
	@echo "make run    - install, migrate, seed demo data, collect static files, serve on $(HOST):$(PORT)"
	@echo "make dev    - the same with runserver and DEBUG=True (tracebacks on error pages)"
	@echo "make test   - install, then run the whole test suite (pytest)"
	@echo "make lint   - ruff check and ruff format --check"
	@echo "make format - ruff format and ruff check --fix"
	@echo "make css    - rebuild the Tailwind stylesheet ($(CSS))"
	@echo "make lock   - re-resolve the pinned dependencies (UPGRADE=1 for the newest)"
	@echo "make clean  - remove the virtualenv, node_modules and build output"

install: $(PY_STAMP) .env $(NPM_STAMP) css

$(PY):
	$(PYTHON) -m venv $(VENV)

# The pinned, hashed lock file (see `make lock`); reinstalled whenever it changes.
$(PY_STAMP): requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt
	@touch $@

# Re-resolve the lock files from pyproject.toml's ranges (UPGRADE=1: newest versions).
PIP_COMPILE = $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-index-url --no-emit-find-links $(if $(UPGRADE),--upgrade)
.PHONY: lock
lock: $(PY_STAMP)
	$(PIP_COMPILE) --output-file requirements.txt pyproject.toml
	$(PIP_COMPILE) --extra dev --output-file requirements-dev.txt pyproject.toml

.env:
	@test -f .env || { cp .env.example .env && echo "Created .env from .env.example"; }

# `tailwind install` runs `npm install` (honouring package-lock.json) and a first build.
$(NPM_STAMP): $(THEME_SRC)/package.json $(THEME_SRC)/package-lock.json | $(PY_STAMP) .env
	$(MANAGE) tailwind install
	@touch $@

css: $(NPM_STAMP)
	$(MANAGE) tailwind build

# The request limits count in a database table (config/throttle.py): createcachetable.
migrate: install
	$(MANAGE) migrate --noinput
	$(MANAGE) createcachetable

# DEBUG=False whatever .env says: error pages show no settings, URL lists or tracebacks.
# The demo data needs DEMO=True (in .env, as .env.example has it).
run serve: export DEBUG := False
run: migrate
	$(MANAGE) seed_demo
	$(MANAGE) collectstatic --noinput --verbosity 0
	@$(MANAGE) shell --verbosity 0 -c "from django.conf import settings as s; print('Two-factor sign-in for staff is ' + ('REQUIRED' if s.STAFF_2FA_REQUIRED else 'off (DEMO=True in .env): the demo logins need only their password') + '.')"
	@echo "  Turn it on: set STAFF_2FA_REQUIRED=True (or DEMO=False) in .env and run make run again;"
	@echo "  then log in as admin and scan the QR code shown at http://$(HOST):$(PORT)/accounts/two-factor/setup/"
	@echo "  with an authenticator app (anyone may enrol there, traders too). Five wrong passwords"
	@echo "  in a row lock that login for 15 minutes: manage.py axes_reset_username USERNAME lifts it."
	$(MAKE) --no-print-directory serve

# The web server and the liquidity worker (Procfile), until Ctrl+C stops both.
serve:
	@echo "Serving on http://$(HOST):$(PORT)/ with the liquidity worker (Ctrl+C to stop)"
	HOST=$(HOST) WEB_PORT=$(PORT) GUNICORN_ARGS="$(GUNICORN_ARGS)" $(BIN)/honcho start -f Procfile

# For debugging only: Django's development server with DEBUG=True (tracebacks, settings
# and URL lists on error pages), static files from the source folders.
dev: export DEBUG := True
dev: migrate
	$(MANAGE) seed_demo
	@echo "Debugging on http://$(HOST):$(PORT)/ with DEBUG=True (Ctrl+C to stop)"
	@echo "The liquidity worker does not run here: start it with $(MANAGE) liquidity_worker"
	$(MANAGE) runserver $(HOST):$(PORT)

# Every test, on $(TEST_WORKERS) processes, with the coverage of the product's code (the
# files not fully covered, and the total).
test: install
	$(BIN)/pytest -n $(TEST_WORKERS) --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

lint: $(PY_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(PY_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(THEME_SRC)/node_modules config/theme/static/css/dist staticfiles \
		*.egg-info .pytest_cache .ruff_cache test-artifacts

# Benchmarks and the soak of issue 6, two hosts, PgBouncer and memory (need PostgreSQL on
# 127.0.0.1:5432, /usr/sbin/pgbouncer and psql, and for the poll benchmark wrk if
# available); results and how to read them: docs/benchmarks.md.
.PHONY: bench
bench: $(PY_STAMP)
	$(PY) bench/liquidity_execute.py
	$(PY) bench/liquidity_scaling.py
	$(PY) bench/liquidity_refresh.py
	$(PY) bench/matching.py
	$(PY) bench/matching_ceiling.py
	$(PY) bench/poll.py
	$(PY) bench/poll_scaling.py
	$(PY) bench/soak.py
	$(PY) bench/two_hosts.py
	$(PY) bench/pgbouncer.py
	$(PY) bench/memory.py
