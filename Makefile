# Two commands set everything up on a fresh machine (see README):
#   make lab    venv + install + JupyterLab on notebooks/quickstart.ipynb against the bundled emulator
#   make test   venv + install everything (pip, npm, apt) + lint + types + jest + the whole pytest suite
# and `make bench` prints the benchmark tables.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_PORT ?= 8888
# JupyterLab refuses to run as root (containers, CI machines) unless told it may.
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: install system-deps lab test lint typecheck jest pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(wildcard labextension/package.json labextension/package-lock.json)
	# A stale install.json in the build output would reach the wheel twice (pyproject maps labextension/'s).
	rm -f live_nb/labextension/install.json
	$(BIN)/python -m pip install -e '.[test]'
	bash scripts/post-install.sh $(BIN)
	touch $@

install: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

lab: install
	LIVE_NB_BACKEND=emulator $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --port $(LAB_PORT) $(LAB_ROOT_FLAG) \
		notebooks/quickstart.ipynb

lint: install
	$(BIN)/ruff check live_nb

typecheck: install
	$(BIN)/mypy live_nb

jest: install
	cd labextension && npm test

pytest: install system-deps
	PYTHONASYNCIODEBUG=$${PYTHONASYNCIODEBUG:-0} $(BIN)/python -m pytest

test: system-deps install lint typecheck jest pytest

bench: install
	@for bench in bench/*.py; do echo "== $$bench"; $(BIN)/python $$bench || exit 1; done

clean:
	rm -rf $(VENV) labextension/node_modules live_nb/labextension test-artifacts
