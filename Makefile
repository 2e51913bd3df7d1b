# The two commands a fresh clone needs: `make run` and `make test`. Both create or refresh .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FER_DATA ?= $(wildcard ../shared/fer2013)

.PHONY: run serve test test-fast lint browser clean-venv

# Reinstall when pyproject.toml (or this file) changes; `pip install -e` keeps the code live.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,ray]"
	$(BIN)/python -m pip check
	touch $(STAMP)

run: $(STAMP)
	FER_DATA="$(FER_DATA)" $(BIN)/streamlit run app.py

# The HTTP service on the shipped models (127.0.0.1:8000; OpenAPI at /docs). SERVE_FLAGS adds
# fer-core serve's flags, e.g. SERVE_FLAGS="--workers 2".
serve: $(STAMP)
	$(BIN)/fer-core serve $(SERVE_FLAGS)

# Two worker processes, a test file each at a time (module fixtures such as a Streamlit server
# start once per file): much of the suite waits on subprocesses, servers and browsers, so one
# process leaves a 2-core CPU half idle. `pytest tests/FILE.py` alone still runs in one process.
PYTEST_WORKERS ?= -n 2 --dist loadfile

test: $(STAMP) browser lint
	$(BIN)/python -m pytest $(PYTEST_WORKERS)

# ruff: pyflakes-style checks and bugbear (pyproject.toml [tool.ruff]), and the formatting
# (`ruff format .` fixes it).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The end-to-end tests drive Debian's Chromium (never a downloaded browser) through Playwright.
browser:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# Everything except the slow tests (AppTests, servers, subprocesses that import Keras) and those
# that train (`trains`: in the test or through a fixture), for a quick loop while editing.
test-fast: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_WORKERS) -m "not slow and not trains"

clean-venv:
	rm -rf $(VENV)
