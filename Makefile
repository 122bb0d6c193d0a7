# The README's commands. Everything installs itself on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
PORT ?= 5000

.PHONY: run test test-unit test-e2e lint typecheck bench openapi chromium clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

## make run: migrate, seed a demo tenant, start web + worker + scheduler on :$(PORT)
run: $(STAMP)
	PORT=$(PORT) BUNBASE_PUBLIC_URL=$${BUNBASE_PUBLIC_URL:-http://127.0.0.1:$(PORT)} $(BIN)/flask --app app bunbase dev

## make test: the whole suite (unit, integration, Playwright) on SQLite + embedded Redis,
## or on whatever DATABASE_URL / REDIS_URL point at.
test: $(STAMP) chromium
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests

test-e2e: $(STAMP) chromium
	$(BIN)/python -m pytest e2e

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the Playwright tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
	  || sudo sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium' >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check bunbase studio modules app.py tests e2e bench
	$(BIN)/ruff format --check bunbase studio modules
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/api.py
	$(BIN)/python bench/jobs.py

openapi: $(STAMP)
	$(BIN)/flask --app app bunbase openapi --out openapi.json

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
