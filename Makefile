# The two commands a fresh clone needs: `make run` and `make test`. Both create or refresh .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FER_DATA ?= $(wildcard ../shared/fer2013)

.PHONY: run test test-fast clean-venv

# Reinstall when pyproject.toml changes; `pip install -e` keeps the code live.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	FER_DATA="$(FER_DATA)" $(BIN)/streamlit run app.py

test: $(STAMP)
	$(BIN)/python -m pytest

# Everything except the slow tests, for a quick loop while editing.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

clean-venv:
	rm -rf $(VENV)
