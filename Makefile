# prodseg: `make demo` runs the whole pipeline offline; `make test` runs ruff, mypy and pytest.
# Both create .venv on first use (torch 2.14.1 / torchvision 0.29.1 install from local disk here).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-fast lint typecheck bench clean docs gpu-check

# The `gpu` tests (tests/*/test_gpu.py) run on this device: cpu here, so CI runs their plumbing on the CPU;
# `make test PRODSEG_TEST_DEVICE=cuda` runs them on a GPU (scripts/gpu_check.sh does, with its own checks).
export PRODSEG_TEST_DEVICE ?= cpu

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
	PRODSEG_OFFLINE=1 $(BIN)/python -m prodseg.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads the package from a symlinked layout of it (see [tool.mypy] in pyproject.toml).
typecheck: $(STAMP)
	$(BIN)/python scripts/link_package_tree.py
	$(BIN)/mypy

# One pytest process per stage folder: it mirrors how the stages run for users (an edge box never loads
# torch). It is a choice, not a workaround: the SIGSEGV seen when OpenVINO and forked DataLoader workers
# shared a process was OpenVINO's CPU plugin unmapping a thread's signal stack (one Core per process
# fixes it; docs/reference/process-model.md), and tests/conftest.py fails any test that leaves it unmapped.
TEST_DIRS := tests/prodseg tests/data tests/train tests/export tests/runtime tests/bench tests/cloud tests/docs \
	tests/scripts

# Everything CI checks: lint, types, every test folder, the benchmark suite, the docs site (strict), and the
# runtime + bench tests again on an edge install without torch.
test: lint typecheck
	mkdir -p runs/benchmarks
	set -e; for d in $(TEST_DIRS); do echo "== pytest $$d"; $(BIN)/python -m pytest -q $$d; done
	$(BIN)/python -m pytest -q tests/benchmarks --benchmark-json=runs/benchmarks/latest.json
	$(BIN)/mkdocs build --strict -q -d runs/site
	$(MAKE) test-edge

# The unit tests alone (no test marked slow: nothing trains, exports or benchmarks), for the edit loop.
test-fast: $(STAMP)
	set -e; for d in $(TEST_DIRS); do echo "== pytest $$d"; $(BIN)/python -m pytest -q -m "not slow" $$d; done

# The edge install (no torch): runtime + bench as an edge box runs them, tested on models built without
# torch. The venv carries its own .gitignore, as newer Pythons' venv writes one.
VENV_EDGE  := .venv-edge
EDGE_STAMP := $(VENV_EDGE)/.installed

.PHONY: venv-edge test-edge

venv-edge: $(EDGE_STAMP)

$(EDGE_STAMP): pyproject.toml
	test -x $(VENV_EDGE)/bin/python || $(PYTHON) -m venv $(VENV_EDGE)
	echo '*' > $(VENV_EDGE)/.gitignore
	$(VENV_EDGE)/bin/pip install -q --upgrade pip
	$(VENV_EDGE)/bin/pip install -q -e ".[onnxruntime,openvino,av]" "pytest>=8" "hypothesis>=6.90" "onnx>=1.15"
	! $(VENV_EDGE)/bin/python -c "import torch" 2>/dev/null || { echo "error: $(VENV_EDGE): torch got installed"; exit 1; }
	touch $(EDGE_STAMP)

test-edge: $(EDGE_STAMP)
	$(VENV_EDGE)/bin/python -m pytest -q tests/runtime tests/bench \
		tests/prodseg/test_layout.py::test_edge_modules_do_not_import_torch

# On a GPU box: driver, torch CUDA, the gpu tests, train -> export -> bench on the GPU, offline, < 8 minutes.
# PASS/FAIL/SKIP per item, logs and summary.txt under OUT (default runs/gpu-check-<date>); DEV=cpu for the CPU.
gpu-check: $(STAMP)
	scripts/gpu_check.sh $(OUT)

# The documentation site (strict: a broken link or anchor fails), then the docs' examples run as written.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict -d runs/site
	$(BIN)/python -m pytest -q tests/docs

clean:
	rm -rf $(VENV) $(VENV_EDGE) runs .pytest_cache .ruff_cache .mypy_cache
