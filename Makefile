# Quickstart targets: `make run` (set up, then run the workflow on the embedded default) and `make test`;
# `make protocols` adds the real-data protocols (config/protocols.yaml), `make tasks` ImageNet3D's tasks
# (config/tasks.yaml).
PYTHON ?= python3.11
VENV ?= .venv
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: setup run protocols tasks test lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[diffusion,llm,test]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

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

test: setup
	$(VENV)/bin/python -m pytest

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
