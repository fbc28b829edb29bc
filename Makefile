# The two commands of the README. Both create .venv on first use and reinstall when
# setup.py changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

OUTPUT ?= output

.PHONY: run test install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): setup.py | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: the whole system on the bundled sample with the embedded defaults: mine the
## sample queries into a template library, then turn the sample documents into pairs.
run: $(STAMP)
	$(BIN)/python -m templates_mining \
	  --sources sample_data/queries/sources.yaml \
	  --output $(OUTPUT)/library
	$(BIN)/python -m pipeline \
	  --documents 'sample_data/documents/*.jsonl' \
	  --templates $(OUTPUT)/library \
	  --output $(OUTPUT)/instructions

## make test: the whole test suite.
test: $(STAMP)
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(OUTPUT)
