# reprolib: the two commands are `make reproduce` and `make test`; `make help` lists the rest.
# Every target installs what it needs from nothing (a Python 3.10+ with venv is all it assumes).

SHELL        := /bin/bash
PYTHON_BOOT  ?= python3
VENV         ?= .venv
PY           := $(VENV)/bin/python
PROFILE      ?= embedded
DATA_ROOT    ?=
CLIP_WEIGHTS ?=
DEVICE       ?= auto
PAPER        ?=
KERNEL       := reprolib
STAMP        := $(VENV)/.installed
WORLD        := data/synthvcm-$(PROFILE_WORLD)
# the miniature world's scale follows the profile (the paper profile uses real data)
PROFILE_WORLD := $(if $(filter smoke,$(PROFILE)),smoke,embedded)

export PYTHONHASHSEED := 0
export CUBLAS_WORKSPACE_CONFIG := :4096:8
export MPLBACKEND := Agg

NB := $(PY) -m reprolib notebook run --profile $(PROFILE) --device $(DEVICE) \
      $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(CLIP_WEIGHTS),--clip-weights $(CLIP_WEIGHTS))

.DEFAULT_GOAL := help
.PHONY: help install world check-world check-data reproduce reproduce-all test test-fast lab \
        bench-data bench-eval weights-check reproduce-table3 reproduce-quickstart \
        reproduce-vld-table3 clean

help: ## list the targets, one line each
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[1m%-24s\033[0m %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=smoke|embedded|paper DATA_ROOT=... CLIP_WEIGHTS=... DEVICE=auto|cpu|cuda PAPER=xreid|vld|cmft"
	@if [ -x $(PY) ]; then echo "  notebooks (target per notebook):"; $(PY) -m reprolib notebook list 2>/dev/null | sed 's/^/    /'; fi

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (reprolib)" >/dev/null
	@touch $@

install: $(STAMP) ## create .venv with the pinned packages and register the "reprolib" Jupyter kernel

world: $(STAMP) ## build the miniature world (SynthVCM, HITSZ-VCM and BUPTCampus layouts) and check it
	$(PY) -m reprolib data synth data/synthvcm-$(PROFILE_WORLD) --scale $(PROFILE_WORLD) --seed 0 --format vcm
	$(PY) -m reprolib data synth data/synthbupt-$(PROFILE_WORLD) --scale $(PROFILE_WORLD) --seed 0 --format bupt
	$(PY) -m reprolib data check hitsz-vcm data/synthvcm-$(PROFILE_WORLD) > /dev/null && echo "SynthVCM (HITSZ-VCM layout B): OK"
	$(PY) -m reprolib data check bupt data/synthbupt-$(PROFILE_WORLD) --bupt-eval-mode full > /dev/null && echo "SynthVCM (BUPTCampus layout): OK"

check-data: $(STAMP) ## validate a real dataset: make check-data DATASET=hitsz-vcm|bupt DATA_ROOT=/path
	$(PY) -m reprolib data check $(DATASET) $(DATA_ROOT)

weights-check: $(STAMP) ## report which CLIP weights the paper profile would load (or how to supply them)
	$(PY) -m reprolib weights check $(if $(CLIP_WEIGHTS),--weights $(CLIP_WEIGHTS))

reproduce-quickstart: world ## notebooks/00_quickstart: tour, baseline training, retrieval figure
	$(NB) quickstart

reproduce-vld-table3: world ## VLD Table III (B, +IMLP, +STP, VLD) on the selected profile
	$(NB) vld_table3

reproduce-%: world ## any notebook: reproduce-<paper>-<item> (e.g. reproduce-xreid-fig4); see `notebook list`
	$(NB) $(subst -,_,$*)

reproduce-table3: world ## Table 3 of every paper (PAPER=xreid|vld|cmft selects one)
	$(PY) -m reprolib notebook list --item table3 $(if $(PAPER),--paper $(PAPER)) --names | \
	  while read nb; do $(NB) $$nb || exit 1; done

reproduce: world ## THE main job: quickstart + each paper's main component table on the embedded default
	$(PY) -m reprolib notebook list --headline --names | while read nb; do $(NB) $$nb || exit 1; done
	@echo "Rendered notebooks, tables and figures: results/$(PROFILE)/"

reproduce-all: world ## render every notebook of the workbook
	$(PY) -m reprolib notebook list --names | while read nb; do $(NB) $$nb || exit 1; done

test: $(STAMP) ## run every test: unit tests, smoke-profile notebook runs (papermill) and nbval
	$(PY) -m pytest -q --timeout=900

test-fast: $(STAMP) ## unit tests only (no notebooks, no multi-process tests)
	$(PY) -m pytest -q -m "not notebook and not slow"

bench-data: $(STAMP) ## benchmark: our training loader vs a per-frame PIL + torchvision pipeline
	$(PY) -m reprolib bench data

bench-eval: $(STAMP) ## benchmark: fast evaluator vs the official per-query algorithm (4,584 x 5,099)
	$(PY) -m reprolib bench eval

lab: $(STAMP) ## open everything in JupyterLab with the reprolib kernel (installs jupyterlab on first use)
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install --quiet jupyterlab==4.6.6
	$(VENV)/bin/jupyter lab --notebook-dir=.

clean: ## remove generated worlds and smoke results (keeps .venv and committed results)
	rm -rf data/synthvcm-* data/synthbupt-* results/smoke build
