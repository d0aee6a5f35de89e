# distfer: `make run` runs the main experiment on the embedded benchmark, `make test` the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast lint bench clean

install: $(STAMP)

# torch/torchvision are installed first and pinned, so pip takes the local builds
# (2.14.1 / 0.29.1) instead of resolving them again; faiss comes from the `cpu` extra.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[cpu,dev]"
	touch $(STAMP)

run: install
	$(PY) experiments/tune_sfew.py

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check distfer tests experiments benchmarks

bench: install
	$(PY) benchmarks/bench_store.py
	$(PY) benchmarks/bench_pseudo.py
	$(PY) benchmarks/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
