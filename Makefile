# motiondiff: `make demo` runs the main job, `make test` runs the tests (both set everything up first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
TEST_WORKERS ?= 2

.PHONY: help install demo text2motion eval-demo sweep test lint format bench render-data generate evaluate app clean-venv

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . || $(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the pinned requirements and motiondiff
	@echo "installed into $(VENV)"

demo: $(STAMP) ## train punet on the embedded dance, then generate samples and videos (under 10 min, 2 CPU cores)
	$(PY) -m motiondiff.train experiment=dance2d $(ARGS)

text2motion: $(STAMP) ## train the text-to-motion transformer (AdaLN) on the embedded procedural data (about 30 min on 2 CPU cores)
	$(PY) -m motiondiff.train experiment=text2motion $(ARGS)

eval-demo: $(STAMP) ## README results: train evaluator, 3 text variants and the dance model, evaluate all (about 50 min, 2 CPU cores)
	$(PY) -m motiondiff.eval_demo $(ARGS)

sweep: $(STAMP) ## sweep 3 text variants x 2 seeds (train -m), evaluate the sweep, compare: tables + chart (about 10 min, 2 CPU cores)
	$(PY) -m motiondiff.sweep_demo $(ARGS)

test: $(STAMP) ## run the test suite (CPU, 2 pytest-xdist workers, a file each; the 15 slowest tests listed at the end)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 $(ARGS)

lint: $(STAMP) ## check formatting and lint (ruff, configured in pyproject.toml)
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m ruff check src tests benchmarks

format: $(STAMP) ## format the code and apply ruff's safe fixes
	$(PY) -m ruff format src tests benchmarks
	$(PY) -m ruff check --fix src tests benchmarks

bench: $(STAMP) ## benchmark vs peers, and the data pipeline at 29k motions (installs benchmarks/requirements.txt; about 25 min, 2 CPU cores)
	$(PY) -m pip install --quiet --no-deps -r benchmarks/requirements.txt
	$(PY) benchmarks/bench.py $(ARGS)

render-data: $(STAMP) ## render the training data as videos (outputs/data_preview/)
	$(PY) -m motiondiff.render_data experiment=dance2d $(ARGS)

# The newest demo run that finished a checkpoint (a failed or running one has no checkpoints/last.ckpt).
DEMO_RUN = $$(ls -t outputs/dance2d-punet/*/checkpoints/last.ckpt 2>/dev/null | head -1 | sed 's|/checkpoints/last.ckpt||')
NO_DEMO_RUN = echo "no demo run with a checkpoint under outputs/dance2d-punet/: run make demo first" >&2; exit 2

generate: $(STAMP) ## generate from the newest demo run with a checkpoint (ARGS="sampler=ddim num_samples=8")
	@run=$(DEMO_RUN); [ -n "$$run" ] || { $(NO_DEMO_RUN); }; set -x; $(PY) -m motiondiff.generate run_dir=$$run $(ARGS)

evaluate: $(STAMP) ## evaluate the newest demo run with a checkpoint (ARGS="sampler=ddim")
	@run=$(DEMO_RUN); [ -n "$$run" ] || { $(NO_DEMO_RUN); }; set -x; $(PY) -m motiondiff.evaluate run_dir=$$run $(ARGS)

app: $(STAMP) ## a page at http://127.0.0.1:8765/ to generate from the newest finished run (ARGS="run_dir=<run> port=8800")
	$(PY) -m motiondiff.app $(if $(findstring run_dir=,$(ARGS)),,run_dir=last) $(ARGS)

clean-venv: ## remove the virtual environment (outputs/ and checkpoints/ are never touched)
	rm -rf $(VENV)
