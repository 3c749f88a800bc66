# The two commands: `make run` serves the portal with demo data, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-dev lint typecheck migrations-check pytest security audit-deps fuzz bench clean

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

test: install-dev lint typecheck migrations-check pytest security

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy .

migrations-check: install-dev
	$(BIN)/python manage.py makemigrations --check --dry-run

pytest: install-dev
	$(BIN)/pytest

# bandit over the apps; exceptions only as `# nosec B<id>` with a reason on the exact line.
security: install-dev
	$(BIN)/bandit -q -r portal referrals messaging reports

# pip-audit over requirements.lock. It needs a vulnerability service (PyPI's per-release JSON or
# OSV); --strict fails when a package could not be looked up instead of passing silently. Not part
# of `make test`: the build machines here reach a PyPI mirror without vulnerability data.
audit-deps: install-dev
	$(BIN)/pip-audit --requirement requirements.lock --disable-pip --no-deps --strict \
		--progress-spinner off || { echo "pip-audit failed: a known vulnerability above, or \
	the vulnerability service (PyPI's JSON API per release) could not be reached." >&2; exit 1; }

# A long schemathesis run over the whole API (random cases; `make test` runs a few fixed ones).
FUZZ_EXAMPLES ?= 200
fuzz: install-dev
	FUZZ_MAX_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_RANDOM=1 $(BIN)/pytest tests/test_fuzz.py

# Load benchmark (BENCHMARKS.md): seeds its own PostgreSQL databases bench and bench_small (or
# BENCH_DATABASE_URL), uses Redis db 11 (or BENCH_REDIS_URL), serves the portal under gunicorn,
# loads it and stops what it started; bench/run.py's in-process micro-benchmarks run inside it.
# BENCH_ARGS passes options (python bench/make_bench.py --help); never a test.
bench: install
	$(BIN)/python bench/make_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) staticfiles
