# The commands a new user runs: `make demo` and `make test`. Each creates .venv if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench mosquitto system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[test,lint]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hub demo $(ARGS)

# The tests run a real Mosquitto, a real headless Chromium (Playwright drives Debian's
# build: no browser download) and a real NATS cluster; install them from Debian's
# packages when missing.
APT_INSTALL = apt-get install -y -qq --no-install-recommends
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto mosquitto-clients"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v nats-server >/dev/null || test -x /usr/sbin/nats-server || missing="$$missing nats-server"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && $(APT_INSTALL) $$missing; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo $(APT_INSTALL) $$missing; \
	  else echo "the tests need:$$missing (apt-get install$$missing)" >&2; exit 1; fi; fi

mosquitto: system-deps

test: $(STAMP) system-deps
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hub simulators tests bench
	$(BIN)/mypy

bench: $(STAMP) system-deps
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
