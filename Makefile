# Commands that do all the set-up on a fresh machine (each creates .venv from the project's own files when it is
# missing or stale):
#   make run    - the quick study: the skip model against dense at matched and full depth, trained, evaluated 1-shot
#                 and compared in a report with plots (gin/studies/quick_cpu.gin; CPU, no download, ~10 minutes)
#   make study  - the paper's comparison at CPU scale: baselines, ablations, two seeds (gin/studies/paper_cpu.gin)
#   make demo   - trains one small skip model and evaluates it
#   make test   - runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_DIR ?= runs/demo
QUICK_DIR ?= runs/quick
STUDY_DIR ?= runs/paper_cpu
# The CPU targets run on CPU (no accelerator probing, no libtpu warnings); `make run DEMO_PLATFORMS=` lets JAX choose.
DEMO_PLATFORMS ?= cpu
PYTEST_ARGS ?=

.PHONY: run study demo test test-fast venv bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py pytest.ini
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,tpu,plot]'
	touch $@

run: venv
	JAX_PLATFORMS=$(DEMO_PLATFORMS) $(PY) -m skip_t5x.study --gin_file=gin/studies/quick_cpu.gin --study_dir=$(QUICK_DIR)

study: venv
	JAX_PLATFORMS=$(DEMO_PLATFORMS) $(PY) -m skip_t5x.study --gin_file=gin/studies/paper_cpu.gin --study_dir=$(STUDY_DIR)

demo: venv
	JAX_PLATFORMS=$(DEMO_PLATFORMS) $(PY) -m skip_t5x.train --gin_file=gin/runs/demo.gin --model_dir=$(RUN_DIR)
	JAX_PLATFORMS=$(DEMO_PLATFORMS) $(PY) -m skip_t5x.eval --gin_file=gin/runs/demo_eval.gin --model_dir=$(RUN_DIR)
	$(PY) -m skip_t5x.plot_metrics --model_dir=$(RUN_DIR) --target_density=0.5

test: venv
	$(PY) -m pytest -q -n 2 --durations=15 $(PYTEST_ARGS) tests

test-fast: venv  # everything but the end-to-end trainings (marked slow)
	$(PY) -m pytest -q -n 2 -m "not slow" $(PYTEST_ARGS) tests

bench: venv
	$(PY) bench/routing.py --out bench/routing.json

clean:
	rm -rf $(VENV) runs .pytest_cache
