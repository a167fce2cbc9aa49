# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test lint typecheck unit bench clean install install-pipx

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps 'pysparkplug>=0.6.1,<0.7'
	touch $(STAMP)

$(DEMO_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	touch $(DEMO_STAMP)

# The command lives in .venv/bin: run it from there, add that to PATH, or `make install-pipx`.
install: $(STAMP)
	@echo "bms-gateway is installed in $(VENV): run $(BIN)/bms-gateway (or: export PATH=\"$$PWD/$(BIN):\$$PATH\";"
	@echo "or 'make install-pipx' to put bms-gateway on your PATH with pipx)"

# bms-gateway on the PATH (~/.local/bin) in its own environment, with the demo's broker.
install-pipx:
	@command -v pipx >/dev/null || { echo "pipx is not installed: apt-get install pipx (or python3 -m pip install --user pipx)"; exit 1; }
	pipx install --force '.[demo]'

demo: $(DEMO_STAMP)
	$(BIN)/bms-gateway demo $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gateway tests bench scripts
	$(BIN)/ruff format --check gateway tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The demo extra too: the amqtt fallback broker is tested, not skipped.
test: $(DEMO_STAMP) lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
