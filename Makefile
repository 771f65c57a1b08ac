# LoRA Manager: `make run` serves the app, `make test` runs the whole suite. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SDNEXT_PORT ?= 7861
BENCH ?=

.PHONY: run test demo bench lint format install install-dev clean fuzz manage imports

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(PY) -m lora_manager.launcher run --port $(PORT)

# A manage.py command on the same database and Redis as `make run`: make manage CMD="scan_library /path"
CMD ?= help
manage: install
	$(PY) -m lora_manager.launcher manage $(CMD)

# The whole flow without a GPU: an SD.Next STAND-IN (tests/standins/sdnext.py) plus `make run` pointed at it.
demo: install-dev
	$(PY) -m lora_manager.launcher demo --port $(PORT) --sdnext-port $(SDNEXT_PORT)

test: install-dev
	$(PY) -m lora_manager.launcher test $(PYTEST_ARGS)

bench: install-dev
	$(PY) -m lora_manager.launcher bench $(BENCH)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The import graph (ops/import_graph.py): no cycles, no import against the app layering. MAP=1 prints the
# module map; ROOT=<checkout> checks another one (the "before" of a before/after comparison).
imports:
	$(PYTHON) -m ops.import_graph $(if $(MAP),--map) $(if $(ROOT),--root $(ROOT))

clean:
	rm -rf data/test data/staticfiles

# Schema-driven fuzzing of the JSON API (schemathesis against /api/v1/openapi.json): no request may get a 5xx.
FUZZ_EXAMPLES ?= 200
fuzz: install-dev
	LORA_MANAGER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m lora_manager.launcher test tests/api/test_fuzz.py -p no:warnings
