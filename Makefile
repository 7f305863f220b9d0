# modelmgr: `make run` starts the whole app, `make test` runs the whole suite.
PY        ?= python3
VENV      := .venv
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed
HOST      ?= 127.0.0.1
PORT      ?= 8000
PG_URL    ?= postgres://postgres@127.0.0.1:5432/test
REDIS     ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

.PHONY: setup run test test-sqlite test-postgres browser schemathesis screenshots lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# Sets up, migrates, bootstraps the embedded default (admin user, demo models),
# then starts the web server and the inference worker; Ctrl-C stops both.
run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py bootstrap
	$(BIN)/python manage.py runall --host $(HOST) --port $(PORT)

# Debian's chromium for the real-browser tests (never `playwright install`).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing and not root: browser tests will be skipped"; fi; }

# schemathesis for the API contract test (tests/contract), in a venv of its own so its
# dependencies never meet the project's.
ST_VENV   := var/schemathesis-venv
ST_STAMP  := $(ST_VENV)/.installed
schemathesis: $(ST_STAMP)

$(ST_STAMP): tests/contract/requirements.txt
	test -x $(ST_VENV)/bin/python || $(PY) -m venv $(ST_VENV)
	$(ST_VENV)/bin/pip install --quiet -r tests/contract/requirements.txt
	touch $(ST_STAMP)

test: setup browser schemathesis
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-sqlite:
	@echo "=== suite on SQLite + in-memory channel layer"
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python -m pytest $(PYTEST_ARGS)

test-postgres:
	@if $(BIN)/python scripts/services_up.py "$(PG_URL)" "$(REDIS)"; then \
	  echo "=== suite on PostgreSQL + Redis channel layer"; \
	  DATABASE_URL="$(PG_URL)" REDIS_URL="$(REDIS)" $(BIN)/python -m pytest $(PYTEST_ARGS); \
	elif [ "$$CI" = "true" ]; then \
	  echo "CI=true and PostgreSQL or Redis is not answering: refusing to skip the second pass"; exit 1; \
	else \
	  echo "PostgreSQL or Redis is not answering: skipping the PostgreSQL + Redis pass"; \
	fi

# Refreshes the README's pictures from the browser tests (a test run writes them to var/).
screenshots: setup browser
	MODELMGR_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots env -u DATABASE_URL -u REDIS_URL \
	  $(BIN)/python -m pytest tests/browser $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) var .pytest_cache
