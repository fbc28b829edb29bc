# The two commands of the README. Both create .venv on first use and reinstall when
# setup.py changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

OUTPUT ?= output

# The Airflow venv of tests/test_airflow_dag.py: Airflow 3 with the Beam and google providers,
# exactly the set in deploy/airflow/requirements-test.txt (no Apache Beam, not this project).
# uv installs it: 10-20 s from PyPI on 2 cores (pip install --no-deps of the same lock: 3 min).
AIRFLOW_VENV  := .venv-airflow
AIRFLOW_REQS  := deploy/airflow/requirements-test.txt
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
UV_VERSION    := 0.13.9

.PHONY: run test install clean airflow-lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): setup.py requirements-nlp.txt | $(BIN)/python
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements-nlp.txt
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Rebuilt from scratch when the lock changes (so nothing stale stays). --no-deps: the lock is the
# whole resolved set; --python: never the project's .venv, which uv would otherwise find here.
$(AIRFLOW_STAMP): $(AIRFLOW_REQS)
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q uv==$(UV_VERSION)
	$(AIRFLOW_VENV)/bin/uv pip install -q --python $(AIRFLOW_VENV)/bin/python --no-deps -r $(AIRFLOW_REQS)
	touch $(AIRFLOW_STAMP)

## make airflow-lock: re-resolve deploy/airflow/requirements-test.txt from requirements-test.in
## (PyPI, Python 3.11, every platform; apache-beam left out) after changing a pin there.
airflow-lock: $(AIRFLOW_STAMP)
	echo apache-beam > $(AIRFLOW_VENV)/exclude.txt
	cp $(AIRFLOW_REQS) $(AIRFLOW_VENV)/requirements-test.txt  # uv keeps its pins where it can
	$(AIRFLOW_VENV)/bin/uv pip compile -q --universal --python-version 3.11 \
	  --excludes $(AIRFLOW_VENV)/exclude.txt --custom-compile-command 'make airflow-lock' \
	  deploy/airflow/requirements-test.in -o $(AIRFLOW_VENV)/requirements-test.txt
	cmp -s $(AIRFLOW_VENV)/requirements-test.txt $(AIRFLOW_REQS) || cp $(AIRFLOW_VENV)/requirements-test.txt $(AIRFLOW_REQS)

## make run: the whole system on the bundled sample with the embedded defaults: mine the
## sample queries into a template library, then turn the sample documents into pairs (and an
## instruction-augmented corpus: each document followed by its pairs).
run: $(STAMP)
	$(BIN)/python -m templates_mining \
	  --sources sample_data/queries/sources.yaml \
	  --output $(OUTPUT)/library
	$(BIN)/python -m pipeline \
	  --documents 'sample_data/documents/*.jsonl' \
	  --templates $(OUTPUT)/library \
	  --output $(OUTPUT)/instructions \
	  --augmented_corpus

## make test: the whole test suite (tests/test_airflow_dag.py runs the DAG in .venv-airflow).
test: $(STAMP) $(AIRFLOW_STAMP)
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(OUTPUT)
