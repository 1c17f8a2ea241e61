# The commands a new user runs: `make demo` and `make test`. Each creates .venv if needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench mosquitto clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[test,lint]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hub demo $(ARGS)

# The tests run a real Mosquitto; install it from Debian's packages when missing.
mosquitto:
	@command -v mosquitto >/dev/null || test -x /usr/sbin/mosquitto || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq mosquitto mosquitto-clients; \
	  elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq mosquitto mosquitto-clients; \
	  else echo "the tests need the mosquitto broker: apt-get install mosquitto" >&2; exit 1; fi; }

test: $(STAMP) mosquitto
	$(BIN)/pytest $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check hub simulators tests bench
	$(BIN)/mypy

bench: $(STAMP) mosquitto
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
