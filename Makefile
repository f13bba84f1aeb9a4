# `make test` and `make demo` create .venv on first use (torch from PyPI, ~5 GB, about a minute).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo demo-full venv fashion-mnist chromium results results-report clean bench gpu-check

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

# The HTML report test renders the page in headless Chromium; install it when we can, else it skips.
chromium:
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq chromium >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) || \
		echo "note: could not install chromium; the HTML report test will skip"; \
	fi

test: venv fashion-mnist chromium
	$(BIN)/python -m pytest tests

demo: venv
	$(BIN)/robench demo

demo-full: venv
	$(BIN)/robench demo --full

# The example leaderboards committed under results/examples/ (runs go to results/demo/, not committed).
results: venv fashion-mnist
	$(BIN)/robench demo --dataset shapes10 --out-dir results/demo
	$(BIN)/robench demo --dataset fashion-mnist --out-dir results/demo
	$(MAKE) results-report

results-report:
	for d in shapes10 fashion-mnist; do \
		$(BIN)/robench report results/demo --dataset $$d --baseline $$d-standard \
			--out results/examples/$$d/leaderboard.md --out results/examples/$$d/report.html \
			--out results/examples/$$d/cells.csv --plots results/examples/$$d > /dev/null || exit 1; \
	done

bench: venv
	$(BIN)/python benchmarks/eval_throughput.py
	$(BIN)/python benchmarks/corruptions.py
	$(BIN)/python benchmarks/augment.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/report.py

# The GPU path in one prepared command (see benchmarks/gpu_check.sh): installs nothing; uses .venv
# when there is one, else plain $(PYTHON) (a GPU machine's own torch).
GPU_CHECK_OUT ?= gpu-check
gpu-check:
	@PYTHON=$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) bash benchmarks/gpu_check.sh $(GPU_CHECK_OUT)

clean:
	rm -rf $(VENV) .pytest_cache
