# reprolib: the two commands are `make reproduce` and `make test`; `make help` lists the rest.
# Every target installs what it needs from nothing (a Python 3.10+ with venv is all it assumes).

SHELL        := /bin/bash
PYTHON_BOOT  ?= python3
VENV         ?= .venv
PY           := $(VENV)/bin/python
PROFILE      ?= embedded
# One root per dataset (each is also read from its environment variable: REPROLIB_DATA, REPROLIB_BUPT,
# REPROLIB_SYSU, REPROLIB_REGDB) and one weights file per backbone kind (CLIP_WEIGHTS for the CLIP rows,
# RESNET50_WEIGHTS for CMFT's ResNet-50 streams): a notebook applies each only to the rows it belongs to.
DATA_ROOT    ?=
BUPT_ROOT    ?=
SYSU_ROOT    ?=
REGDB_ROOT   ?=
CLIP_WEIGHTS ?=
RESNET50_WEIGHTS ?=
DEVICE       ?= auto
REHEARSAL    ?=
PAPER        ?=
JOBS         ?= 2
KERNEL       := reprolib
STAMP        := $(VENV)/.installed
WORLD        := data/synthvcm-$(PROFILE_WORLD)
# the miniature world's scale follows the profile (the paper profile uses real data)
PROFILE_WORLD := $(if $(filter smoke,$(PROFILE)),smoke,embedded)

export PYTHONHASHSEED := 0
export CUBLAS_WORKSPACE_CONFIG := :4096:8
export MPLBACKEND := Agg

# REHEARSAL=1: the paper profile on stand-ins (docs/rehearsal.md), into results/rehearsal/
NB_PROFILE := $(if $(REHEARSAL),paper,$(PROFILE))
NB := $(PY) -m reprolib notebook run --profile $(NB_PROFILE) --device $(DEVICE) $(if $(REHEARSAL),--rehearsal) \
      $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(BUPT_ROOT),--bupt-root $(BUPT_ROOT)) \
      $(if $(SYSU_ROOT),--sysu-root $(SYSU_ROOT)) $(if $(REGDB_ROOT),--regdb-root $(REGDB_ROOT)) \
      $(if $(CLIP_WEIGHTS),--clip-weights $(CLIP_WEIGHTS)) $(if $(RESNET50_WEIGHTS),--resnet-weights $(RESNET50_WEIGHTS))
# what a notebook target needs first: the miniature world for smoke/embedded; the rehearsal's stand-ins and
# paper-resolution world for a rehearsal; nothing for real data (the paper profile never builds a world)
NB_DEPS := $(if $(REHEARSAL),rehearsal-world,$(if $(filter paper,$(PROFILE)),$(STAMP),world))

.DEFAULT_GOAL := help
.PHONY: help install world check-world check-data reproduce reproduce-all test test-fast lab \
        bench-data bench-eval weights-check rehearse rehearsal-world reproduce-table3 reproduce-quickstart \
        reproduce-vld-table3 compare-method eval-released clean

help: ## list the targets, one line each
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[1m%-24s\033[0m %s\n", $$1, $$2}'
	@echo "  variables: PROFILE=smoke|embedded|paper DATA_ROOT=... BUPT_ROOT=... SYSU_ROOT=... REGDB_ROOT=..."
	@echo "             CLIP_WEIGHTS=... RESNET50_WEIGHTS=... DEVICE=auto|cpu|cuda PAPER=xreid|vld|cmft REHEARSAL=1"
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
	$(PY) -m reprolib data check hitsz-vcm data/synthvcm-$(PROFILE_WORLD) --no-decode > /dev/null && echo "SynthVCM (HITSZ-VCM layout B): OK"
	$(PY) -m reprolib data check bupt data/synthbupt-$(PROFILE_WORLD) --bupt-eval-mode full --no-decode > /dev/null && echo "SynthVCM (BUPTCampus layout): OK"

check-data: $(STAMP) ## validate a real dataset: make check-data DATASET=hitsz-vcm|bupt DATA_ROOT=/path
	$(PY) -m reprolib data check $(DATASET) $(DATA_ROOT)

weights-check: $(STAMP) ## report which CLIP and ResNet-50 weights the paper profile would load (or how to supply them)
	$(PY) -m reprolib weights check --backbone clip $(if $(CLIP_WEIGHTS),--weights-path $(CLIP_WEIGHTS))
	$(PY) -m reprolib weights check --backbone resnet50 $(if $(RESNET50_WEIGHTS),--weights-path $(RESNET50_WEIGHTS))

rehearsal-world: $(STAMP) ## write the rehearsal's stand-in weights and paper-resolution miniature world (docs/rehearsal.md)
	$(PY) -m reprolib rehearse prepare

rehearse: rehearsal-world ## the quickstart and every table/figure notebook as a rehearsal of the paper profile (results/rehearsal/; JOBS=2 at a time)
	$(PY) -m reprolib rehearse notebooks $(if $(PAPER),--paper $(PAPER)) --jobs $(JOBS) --device $(DEVICE)

reproduce-quickstart: $(NB_DEPS) ## notebooks/00_quickstart: tour, baseline training, retrieval figure
	$(NB) quickstart

reproduce-vld-table3: $(NB_DEPS) ## VLD Table III (B, +IMLP, +STP, VLD) on the selected profile
	$(NB) vld_table3

reproduce-%: $(NB_DEPS) ## any notebook: reproduce-<paper>-<item> (e.g. reproduce-xreid-fig4); see `notebook list`
	$(NB) $(subst -,_,$*)

compare-method: $(NB_DEPS) ## your method beside the papers' (docs/new_method.md): METHOD=my.yaml FAMILY_PATH=dir [SEEDS="[1,2,3]"]
	$(NB) my_method $(if $(METHOD),--param method_config=$(abspath $(METHOD))) \
	  $(if $(FAMILY_PATH),--param family_path=$(abspath $(FAMILY_PATH))) $(if $(SEEDS),--param 'seeds=$(SEEDS)')

# eval-released renders on the paper profile unless PROFILE is given on the command line (smoke/embedded: a stand-in)
EVAL_PROFILE := $(if $(REHEARSAL),paper,$(if $(filter command line,$(origin PROFILE)),$(PROFILE),paper))
eval-released: $(if $(REHEARSAL),rehearsal-world,$(if $(filter paper,$(EVAL_PROFILE)),$(STAMP),world)) ## an official checkpoint imported, evaluated, beside the paper's numbers: PAPER=vld|clipreid|tfclip|xreid WEIGHTS=file [CONFIG=vld_bupt] (REHEARSAL=1: a stand-in)
	$(PY) -m reprolib notebook run eval_released --profile $(EVAL_PROFILE) --device $(DEVICE) $(if $(REHEARSAL),--rehearsal) \
	  $(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(BUPT_ROOT),--bupt-root $(BUPT_ROOT)) \
	  $(if $(CLIP_WEIGHTS),--clip-weights $(CLIP_WEIGHTS)) --param paper=$(or $(PAPER),vld) \
	  $(if $(WEIGHTS),--param weights=$(abspath $(WEIGHTS))) $(if $(CONFIG),--param config=$(CONFIG))

reproduce-table3: $(NB_DEPS) ## Table 3 of every paper (PAPER=xreid|vld|cmft selects one)
	$(PY) -m reprolib notebook list --item table3 $(if $(PAPER),--paper $(PAPER)) --names | \
	  while read nb; do $(NB) $$nb || exit 1; done

reproduce: $(NB_DEPS) ## THE main job: quickstart + each paper's main component table on the embedded default
	$(PY) -m reprolib notebook list --headline --names | while read nb; do $(NB) $$nb || exit 1; done
	@echo "Rendered notebooks, tables and figures: results/$(if $(REHEARSAL),rehearsal,$(PROFILE))/"

reproduce-all: $(NB_DEPS) ## render every notebook of the workbook
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
