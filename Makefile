# Two entry points for a fresh machine: `make smoke` (the main job on the embedded default)
# and `make test`. Both create the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: smoke test venv clean-venv

venv: $(STAMP)

# torch/torchvision first and exactly pinned: they install from local disk here, and nothing
# later may replace them with another build.
$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Ends by rendering the report of the store and printing its path (report: .../index.html).
smoke: $(STAMP)
	$(BIN)/onestep run smoke
	$(BIN)/onestep report

test: $(STAMP)
	$(BIN)/python -m pytest -q -rs tests   # -rs: each skip says what to install

clean-venv:
	rm -rf $(VENV)
