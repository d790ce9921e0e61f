# Two entry points (see README): `make demo` and `make test`. Both build .venv from scratch if needed.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/iqarena: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch 2.13.0 first: the CPU build; the open range in pyproject then installs nothing more.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/iqarena
	$(BIN)/iqarena demo

test: $(BIN)/iqarena
	$(BIN)/python -m pytest -q

.PHONY: demo test
