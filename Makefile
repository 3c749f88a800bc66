# The two commands: `make run` serves the portal with demo data, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-dev lint typecheck migrations-check pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "pip>=25.1,<27"

$(RUNTIME_STAMP): $(BIN)/python pyproject.toml requirements.lock
	$(PIP) install --quiet -c requirements.lock -e .
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) pyproject.toml requirements.lock
	$(PIP) install --quiet -c requirements.lock -e . --group dev
	touch $@

install: $(RUNTIME_STAMP)

install-dev: $(DEV_STAMP)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo "Serving the portal on http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	DJANGO_DEBUG=1 $(BIN)/python manage.py runserver $(HOST):$(PORT)

test: install-dev lint typecheck migrations-check pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy .

migrations-check: install-dev
	$(BIN)/python manage.py makemigrations --check --dry-run

pytest: install-dev
	$(BIN)/pytest

clean:
	rm -rf $(VENV) staticfiles
