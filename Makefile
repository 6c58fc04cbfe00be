# One entry point for the two README commands.
#   make demo : create .venv, install torch (CPU) and the project with its example extras,
#               run `cellvision cellcycle train --quick` on the embedded default cells.
#   make test : create .venv, install torch (CPU) and the project with its dev extras,
#               run everything CI runs (lint, format, types, tests + doctests, docs, wheel).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Users with CUDA: install your own torch build into $(VENV) first, or override TORCH_SPEC.
TORCH_SPEC ?= torch==2.13.0
WHEEL_VENV ?= build/wheel-venv

.PHONY: demo test lint typecheck unit docs wheel clean

demo: $(VENV)/.installed-examples
	$(BIN)/cellvision cellcycle train --quick --out runs/demo

test: $(VENV)/.installed-dev lint typecheck unit docs wheel

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-%: pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[$*]"
	touch $@

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy --strict src examples benchmarks

unit: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

docs: $(VENV)/.installed-dev
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	$(BIN)/sphinx-build -W --keep-going -q -b doctest docs docs/_build/doctest

wheel: $(VENV)/.installed-dev
	rm -rf dist $(WHEEL_VENV)
	$(BIN)/python -m build --outdir dist .
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)"
	$(WHEEL_VENV)/bin/python -m pip install --quiet dist/*.whl
	cd $(WHEEL_VENV) && bin/python -c "import cellvision; print('cellvision', cellvision.__version__)"
	$(BIN)/python -m zipfile -l dist/*.whl
	$(BIN)/python .ci/check_wheel.py dist/*.whl
	cd $(WHEEL_VENV) && bin/python $(CURDIR)/.ci/run_readme_example.py $(CURDIR)/README.md
	# The installed command, from outside the source tree: train, then predict with its checkpoint.
	cd $(WHEEL_VENV) && bin/cellvision cellcycle train --quick --no-figures --out run-cellcycle
	cd $(WHEEL_VENV) && bin/cellvision cellcycle predict --checkpoint run-cellcycle/checkpoint.pt \
		--out run-cellcycle/predictions.csv
	cd $(WHEEL_VENV) && bin/cellvision benzene --quick --no-figures --out run-benzene

clean:
	rm -rf $(VENV) build dist docs/_build .mypy_cache .ruff_cache .pytest_cache
