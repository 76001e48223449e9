# A fresh machine needs only python3 (3.10+) and make: every target installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu
# The workplace's offline data sits beside the checkout; elsewhere torchvision downloads MNIST.
ifneq ($(wildcard ../shared/data),)
export BNNLIB_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: install book test lint chromium bench

install: $(VENV)/.installed

$(VENV)/.installed: requirements-ci.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-ci.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# Headless Chromium for the browser test of the built book (Debian package).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

book: install
	$(VENV)/bin/bnnlib-book build --profile $(PROFILE)

test: install chromium
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	$(VENV)/bin/bnnlib-book setup-cells --check

bench: install
	$(PY) benchmarks/run_all.py
