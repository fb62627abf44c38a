# prodseg: `make demo` runs the whole pipeline offline; `make test` runs ruff, mypy and pytest.
# Both create .venv on first use (torch 2.14.1 / torchvision 0.29.1 install from local disk here).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint typecheck bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.14.1" "torchvision==0.29.1" -e ".[dev]"
	# tensorrt-stubs depends on tensorrt, whose wheels cannot be fetched here; the stubs alone type-check.
	$(BIN)/pip install -q --no-deps "tensorrt-stubs>=10"
	$(BIN)/python scripts/make_trt_stubs.py $(VENV)/stubs
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m prodseg.demo

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	mkdir -p runs/benchmarks
	$(BIN)/python -m pytest -q --benchmark-json=runs/benchmarks/latest.json

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache
