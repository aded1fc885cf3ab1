# tmpc — every target sets up .venv by itself on a fresh machine (Python 3.11+).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean redis softhsm2 prometheus chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m tmpc.cli.demo

# The relay tests start a real redis-server (Debian's package); install it once if absent.
redis:
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)

# The token-node tests keep keys in SoftHSM (Debian's softhsm2: softhsm2-util and the module).
softhsm2:
	@command -v softhsm2-util >/dev/null || (apt-get update -qq && apt-get install -y -qq softhsm2 >/dev/null)

# The metrics tests run promtool on the alert rules and scrape a node with a real Prometheus
# server (Debian's prometheus: both binaries).
prometheus:
	@command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq prometheus >/dev/null)

# The monitor's dashboard test drives Debian's chromium headless through Debian's chromedriver
# (Selenium, pinned in the dev extras; the two Debian packages come from one build and match).
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null)

test: $(STAMP) redis softhsm2 prometheus chromium
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

bench: $(STAMP)
	$(BIN)/python bench/run.py --out docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
