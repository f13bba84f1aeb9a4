# `make test` and `make demo` create .venv on first use (torch from PyPI, ~5 GB, about a minute).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo venv fashion-mnist clean bench gpu-check

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Real-data tests use Debian's Fashion-MNIST; install it when we can (root on Debian), else they skip.
fashion-mnist:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
		echo "note: could not install dataset-fashion-mnist; the real-data tests will skip"; \
	fi

test: venv fashion-mnist
	$(BIN)/python -m pytest tests

demo: venv
	$(BIN)/robench demo

bench: venv
	$(BIN)/python benchmarks/eval_throughput.py
	$(BIN)/python benchmarks/corruptions.py
	$(BIN)/python benchmarks/augment.py
	$(BIN)/python benchmarks/train_step.py

# The GPU path in one prepared command (see benchmarks/gpu_check.sh): installs nothing; uses .venv
# when there is one, else plain $(PYTHON) (a GPU machine's own torch).
GPU_CHECK_OUT ?= gpu-check
gpu-check:
	@PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) bash benchmarks/gpu_check.sh $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) .pytest_cache
