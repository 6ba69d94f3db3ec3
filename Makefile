# Two commands matter: `make run` and `make test`. Both create .venv/ on first use.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
# The SAM CLI (and its template translator) lives in a venv of its own: its pins
# (boto3, pydantic) differ from the runtime's, which .venv must match.
SAM_CLI_VERSION := 1.170.0
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)
# sam build as SAM users run it: a plain python3.12 on PATH (no venv, nothing installed in it).
PYTHON312_DIR = $(dir $(shell sh scripts/find_python.sh))
SAM = PATH="$(PYTHON312_DIR):/usr/bin:/bin" SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
# checkov, too, has pins of its own (boto3 among them): a venv of its own.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
# MLflow, only for make bench to serve the same model side by side with the local server:
# a venv of its own (make test never installs it), with the runtime's scikit-learn, numpy,
# scipy, joblib and pandas pinned by layer/requirements.txt so the model loads exactly.
MLFLOW_VERSION := 3.17.2
MLFLOW_VENV := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed-$(MLFLOW_VERSION)
PORT ?= 3000
# Older runtime lines (layer/lines/<minor>/) the local server also serves, each in a venv of
# its own: make run LINES="1.8 1.7". make test installs TEST_LINES to test across them.
# Taken from the command line only: a terminal exports LINES (its height) to the environment.
ifneq ($(origin LINES),command line)
LINES :=
endif
LINES_DIR := .venv-lines
TEST_LINES := 1.8 1.7
line_stamps = $(foreach line,$(1),$(LINES_DIR)/$(line)/.installed)
line_pythons = $(strip $(foreach line,$(1),$(line)=$(CURDIR)/$(LINES_DIR)/$(line)/bin/python))
# make test runs the tests on two workers (pytest-xdist): most wait on child processes.
TEST_WORKERS ?= 2

.PHONY: run test lint typecheck checkov pytest openapi dashboard lines package bench fuzz clean
.DEFAULT_GOAL := test

$(STAMP): pyproject.toml layer/requirements.txt $(wildcard requirements/*.txt)
	@test -x $(PY) || "$$(sh scripts/find_python.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP) $(RUN_STAMP)

# make run needs only the runtime and the local server's two extras (boto3, PyYAML): the
# `local` extra, not the development toolchain. A venv made by make test has them already.
$(RUN_STAMP): pyproject.toml layer/requirements.txt requirements/local.txt
	@test -x $(PY) || "$$(sh scripts/find_python.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[local]'
	@touch $(RUN_STAMP)

# A line's venv: its runtime, and the boto3 the Lambda runtime would provide (its predict
# process reads the store). Compiled on all cores after pip installs (pip compiles on one):
# 19 s a line instead of 36 s.
$(LINES_DIR)/%/.installed: layer/lines/%/requirements.txt requirements/aws.txt
	@test -x $(LINES_DIR)/$*/bin/python || "$$(sh scripts/find_python.sh)" -m venv $(LINES_DIR)/$*
	$(LINES_DIR)/$*/bin/python -m pip install --quiet --disable-pip-version-check --no-compile \
		-r layer/lines/$*/requirements.txt -r requirements/aws.txt
	$(LINES_DIR)/$*/bin/python -m compileall -q -j 0 $(LINES_DIR)/$*/lib > /dev/null
	@touch $@

$(SAM_STAMP):
	@test -x $(SAM_VENV)/bin/python || "$$(sh scripts/find_python.sh)" -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION)
	@touch $(SAM_STAMP)

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || "$$(sh scripts/find_python.sh)" -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	@touch $(CHECKOV_STAMP)

$(MLFLOW_STAMP): layer/requirements.txt
	@test -x $(MLFLOW_VENV)/bin/python || "$$(sh scripts/find_python.sh)" -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/python -m pip install --quiet -c layer/requirements.txt \
		mlflow==$(MLFLOW_VERSION) scikit-learn numpy scipy joblib pandas
	@touch $(MLFLOW_STAMP)

run: $(RUN_STAMP) $(call line_stamps,$(LINES))
	$(PY) scripts/train_moons.py --register-if-empty
	RUNTIME_LINES="$(call line_pythons,$(LINES))" $(PY) scripts/local_api.py --port $(PORT)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy registry

# The template through checkov, offline; skipped checks and their reasons are in .checkov.yaml.
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

# sam build without Docker, then each function's unzipped size with its layers.
package: $(STAMP) $(SAM_STAMP)
	rm -rf .aws-sam
	$(SAM) build
	$(PY) scripts/package_sizes.py

pytest: $(STAMP) $(SAM_STAMP) $(call line_stamps,$(TEST_LINES))
	SAM_PYTHON=$(CURDIR)/$(SAM_VENV)/bin/python \
	TEST_LINE_PYTHONS="$(call line_pythons,$(TEST_LINES))" \
		$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=15

# The venvs first, side by side (pip mostly waits on unpacking and compiling, one core each),
# then the static checks beside the build, each target's output kept together, then the tests.
TEST_STAMPS = $(STAMP) $(SAM_STAMP) $(CHECKOV_STAMP) $(call line_stamps,$(TEST_LINES))
test:
	$(MAKE) --no-print-directory -j 4 $(TEST_STAMPS)
	$(MAKE) --no-print-directory -j 4 --output-sync=target lint typecheck checkov package
	$(MAKE) --no-print-directory pytest

# The full benchmark: writes docs/benchmarks.md and docs/benchmarks.png (about 10 minutes).
# It serves the same model with `mlflow models serve` from $(MLFLOW_VENV), side by side.
# Then what the validator's sandbox costs a registration: docs/sandbox-benchmarks.md.
# The benchmark is a package, scripts/bench/: a module per family of measurements.
bench: $(STAMP) $(MLFLOW_STAMP) $(call line_stamps,1.8)
	cd scripts && $(CURDIR)/$(PY) -m bench --mlflow-venv $(CURDIR)/$(MLFLOW_VENV)

# A longer schemathesis run than the bounded one in make test.
fuzz: $(STAMP)
	FUZZ_MAX_EXAMPLES=500 $(PY) -m pytest tests/e2e/test_fuzz.py -s

openapi: $(STAMP)
	$(PY) scripts/export_openapi.py

# template.yaml's older runtime lines (a layer, a validator and a predict function each), from
# the folders under layer/lines/: add a folder, run this.
lines: $(STAMP)
	$(PY) scripts/render_lines.py

# template.yaml's CloudWatch dashboard, from the metric names in registry/observability.py.
dashboard: $(STAMP)
	$(PY) scripts/render_dashboard.py

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(MLFLOW_VENV) $(LINES_DIR) .pytest_cache .mypy_cache .ruff_cache .aws-sam
