# Quickstart targets: `make run` (set up, then run the workflow on the embedded default) and `make test`;
# `make protocols` adds the real-data protocols (config/protocols.yaml), `make tasks` ImageNet3D's tasks
# (config/tasks.yaml); `make nemo` NeMo and CC3D (config/nemo.yaml), in the NeMo interpreter (`make nemo-setup`).
PYTHON ?= python3.11
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# The NeMo rules' interpreter: torch 2.2.2 and PyTorch3D, which cannot share the main venv's torch 2.13. Its
# packages are envs/nemo.yaml's pip section (the same list a conda run uses); the rules find it through nemo.python
# (default .venv-nemo/bin/python), so another NEMO_VENV needs nemo.python set to match.
NEMO_VENV ?= .venv-nemo
NEMO_STAMP := $(NEMO_VENV)/.installed-$(shell cksum envs/nemo.yaml | cut -d' ' -f1)
# envs/nemo.yaml's pip section, one requirement a line (comments dropped).
NEMO_REQUIREMENTS = awk '/^  - pip:/ {pip = 1; next} pip && /^      - / {sub(/^      - /, ""); sub(/ +\#.*/, ""); \
	print; next} pip && !/^ *(\#|$$)/ {pip = 0}' envs/nemo.yaml

# The two venvs of `make test` build side by side (mostly downloads and unpacking); recipes keep their output apart.
MAKEFLAGS += --jobs=2 --output-sync=target

.PHONY: setup nemo-setup nemo-requirements run protocols tasks nemo test lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[diffusion,llm,test]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

$(NEMO_STAMP): envs/nemo.yaml
	$(PYTHON) -m venv $(NEMO_VENV)
	$(NEMO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(NEMO_REQUIREMENTS) > $(NEMO_VENV)/requirements.txt
	$(NEMO_VENV)/bin/python -m pip install --quiet -r $(NEMO_VENV)/requirements.txt
	rm -f $(NEMO_VENV)/.installed-*
	touch $@

nemo-setup: $(NEMO_STAMP)

nemo-requirements:
	@$(NEMO_REQUIREMENTS)

run: setup
	$(VENV)/bin/snakemake

# The papers' real-data protocols on the embedded default and its pseudo-real set (after `make run`, only
# the protocols' own jobs run): results/tables/pose_protocol.* and few_shot.*.
protocols: setup
	$(VENV)/bin/snakemake --configfile config/config.yaml config/protocols.yaml

# ImageNet3D's tasks on the embedded default (config/tasks.yaml): results/tables/joint.*, probing.* and
# open_vocabulary.* (after `make run`, only the tasks' own jobs run).
tasks: setup
	$(VENV)/bin/snakemake --configfile config/config.yaml config/tasks.yaml

# NeMo and CC3D on the embedded default with the protocols' pseudo-real set (config/nemo.yaml; after `make
# protocols`, only NeMo's own jobs and the tables run): NeMo rows in results/tables/pose_metrics.* and the protocol
# tables, checkpoints and CC3D's pseudo-labels under results/nemo/.
nemo: setup nemo-setup
	$(VENV)/bin/snakemake --configfile config/config.yaml config/protocols.yaml config/nemo.yaml

# The main suite (tests/nemo left out: pyproject.toml's addopts), whose NeMo workflow test runs the NeMo rules in
# $(NEMO_VENV); then NeMo's model tests in that interpreter (they import PyTorch3D). --confcutdir keeps
# tests/conftest.py (main-venv fixtures) out of the second run.
test: setup nemo-setup
	DST3D_NEMO_PYTHON=$(abspath $(NEMO_VENV))/bin/python $(VENV)/bin/python -m pytest
	$(NEMO_VENV)/bin/python -m pytest -o addopts=--durations=10 --confcutdir=tests/nemo tests/nemo

lint: setup
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/snakefmt --line-length 120 --check Snakefile rules

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/snakefmt --line-length 120 Snakefile rules

clean:
	rm -rf results logs benchmarks .snakemake
