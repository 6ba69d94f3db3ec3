# Two commands matter: `make run` and `make test`. Both create .venv/ on first use.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 3000

.PHONY: run test lint typecheck openapi clean
.DEFAULT_GOAL := test

$(STAMP): pyproject.toml layer/requirements.txt
	@test -x $(PY) || "$$(sh scripts/find_python.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) scripts/train_moons.py --register-if-empty
	$(PY) scripts/local_api.py --port $(PORT)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy registry

test: lint typecheck
	$(PY) -m pytest

openapi: $(STAMP)
	$(PY) scripts/export_openapi.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam
