# medrobust: `make demo` runs the main job on the embedded data, `make test` runs the test suite.
# Both create .venv when missing and install what is needed (a CPU-only PyTorch when no NVIDIA GPU is present).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.medrobust-installed
# torch==2.13.0 is the CPU build on machines without an NVIDIA GPU here; override with `make TORCH=torch ...`.
TORCH ?= $(shell if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then echo torch; else echo torch==2.13.0; fi)

.PHONY: demo test lint bench clean print-torch

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev,tensorboard,mlflow,monai]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/medrobust demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) benchmarks/bench_phantom.py
	$(PY) benchmarks/bench_attacks.py
	$(PY) benchmarks/bench_autoattack.py

print-torch:  # the torch requirement the targets above install (used by .ci/run's fresh no-extras install)
	@echo "$(TORCH)"

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
