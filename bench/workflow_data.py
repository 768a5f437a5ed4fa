"""Shared by bench/kcf.py and bench/train.py: the configuration as the workflow sees it, and its generated
training images, built with the workflow itself (up to the generate stage) in a working folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from snakemake.utils import validate

from dst3d.io import read_tables

REPO = Path(__file__).resolve().parent.parent
#: Keys of the config's train block that are the workflow's, not the estimator's (as in rules/common.smk).
WORKFLOW_KEYS = ("variants", "tasks", "threads")


def load_config(paths: list[Path]) -> dict:
    """The configuration files laid over each other (nested blocks merged, as Snakemake merges --configfile),
    then the schema defaults."""
    config: dict = {}
    for path in paths:
        _overlay(config, yaml.safe_load(Path(path).read_text()))
    validate(config, str(REPO / "config" / "schema.yaml"), set_default=True)
    return config


def _overlay(config: dict, overlay: dict) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            _overlay(config[key], value)
        else:
            config[key] = value


def estimator_settings(config: dict) -> dict:
    """The train block the pose estimator sees."""
    return {key: value for key, value in config["train"].items() if key not in WORKFLOW_KEYS}


def generated_train_images(workdir: Path, configfiles: list[Path], config: dict) -> pd.DataFrame:
    """Build (or reuse) the composite training images of ``config`` in ``workdir``; their records, with
    absolute image paths."""
    split = config["splits"]["train"]
    shards = range(-(-split["images_per_category"] // split["shard_size"]))
    targets = [f"{config['results']}/generate/composite/train/{category}/{shard:03d}.parquet"
               for category in config["categories"] for shard in shards]
    command = [str(Path(sys.executable).with_name("snakemake")), *targets, "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", "--configfile", *map(str, configfiles)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"building the images failed:\n{result.stderr[-3000:]}")
    frame = read_tables([workdir / target for target in targets])
    frame["image_path"] = [str(workdir / path) for path in frame["image_path"]]
    return frame
