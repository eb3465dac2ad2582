# Two commands: `make demo` and `make test`. Each builds .venv from scratch when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NEXTBEST_HOME ?= .nextbest

.PHONY: demo test lint typecheck pytest bench clean browser-deps sdk

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	NEXTBEST_HOME=$(NEXTBEST_HOME) $(BIN)/nextbest demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

# Two test processes, a test file each at a time (its module fixtures stay shared): much of
# the suite waits on servers, browsers and databases, so two overlap well on two cores.
pytest: $(STAMP) browser-deps
	$(BIN)/pytest --numprocesses 2 --dist loadfile

test: lint typecheck pytest

sdk:  # web/sdk/dist from web/sdk/src (the builds are committed; a test checks they are current)
	python3 web/sdk/build.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_baselines.py

clean:
	rm -rf $(VENV) $(NEXTBEST_HOME) .pytest_cache .mypy_cache .ruff_cache

# Debian's Chromium for the demo page test (tests/serving/test_demo_page.py): Playwright drives
# it and never downloads a browser of its own. Installed with apt-get when missing (root, or sudo).
CHROMIUM := /usr/bin/chromium

browser-deps:
	@test -x $(CHROMIUM) || { \
		fail() { echo "browser-deps: $$1" >&2; exit 1; }; \
		command -v apt-get >/dev/null 2>&1 || \
			fail "no apt-get on this machine: install Chromium at $(CHROMIUM) yourself"; \
		SUDO=""; \
		if [ "$$(id -u)" != 0 ]; then \
			command -v sudo >/dev/null 2>&1 || \
				fail "installing Chromium needs root: run 'apt-get install chromium' as root"; \
			SUDO=sudo; \
		fi; \
		echo "browser-deps: installing Debian's chromium (apt-get)"; \
		$$SUDO apt-get -qq update || fail "'apt-get update' failed (network? apt sources?)"; \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -q install -y --no-install-recommends \
			chromium >/dev/null || fail "'apt-get install chromium' failed (see the lines above)"; \
		test -x $(CHROMIUM) || fail "chromium was installed but $(CHROMIUM) is missing"; \
	}
