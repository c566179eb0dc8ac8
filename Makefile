# fgdd: `make help` lists the targets. `make demo` and `make test` set everything up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= disabled
export FGDD_OFFLINE ?= 1
DEMO_DIR ?= outputs/sweeps/demo

.PHONY: help install demo lint test test-slow bench gpu-bundle clean-venv

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# torch and torchvision exactly as tested, for reproducible dev and CI (pyproject.toml allows a range)
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "setuptools>=68" wheel torch==2.14.1 torchvision==0.29.1
	SAM2_BUILD_CUDA=0 $(PY) -m pip install -q --no-build-isolation -e '.[dev,segment]'
	$(PY) -m fgdd.weights fetch u2netp
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)  ## create .venv (if missing), install fgdd with its dev and segmentation extras, fetch u2netp

demo: $(STAMP)  ## offline demo: shapes dataset, rded vs random_real vs fgdd (saliency); a table, then where to look
	$(PY) -m fgdd.run -m experiment=demo selector=rded,random_real,fgdd
	$(PY) -m fgdd.report $(DEMO_DIR) --no-runs --figures $(DEMO_DIR)/figures

lint: $(STAMP)  ## ruff, with the rules chosen in pyproject.toml ([tool.ruff])
	$(PY) -m ruff check .

test: $(STAMP)  ## the test suite (offline; slow tests excluded)
	$(PY) -m pytest -q

test-slow: $(STAMP)  ## only the slow end-to-end tests on real data
	$(PY) -m pytest -q -m slow

bench: $(STAMP)  ## the CPU benchmarks (hours on 2 cores); each writes its table into BENCHMARKS.md
	set -o pipefail; $(PY) benchmarks/speed.py --device cpu | $(PY) benchmarks/record.py speed-cpu \
	  --command "$(PY) benchmarks/speed.py --device cpu"
	RECORD=1 benchmarks/accuracy.sh cifar10 imagenette imagewoof
	benchmarks/threshold_ablation.sh

gpu-bundle: $(STAMP)  ## wheels + ImageNette archive into .gpu/ for benchmarks/gpu.sh on the GPU machine
	benchmarks/gpu_bundle.sh

clean-venv:  ## remove .venv (nothing else is ever deleted)
	rm -rf $(VENV)
