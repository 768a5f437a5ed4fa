"""Shared by bench/kcf.py and bench/train.py: the configuration as the workflow sees it, and its generated
training images, built with the workflow itself (up to the generate stage) in a working folder.

A folder built once can be reused where the workflow cannot run (a GPU node without Blender or Snakemake):
the build saves the merged, validated configuration beside the images as ``config.resolved.json``, and
:func:`prebuilt_train_images` reads the tables and that configuration back without running anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from dst3d.io import read_tables, write_json

REPO = Path(__file__).resolve().parent.parent
#: The configuration a build used, saved in its working folder.
RESOLVED_CONFIG = "config.resolved.json"
#: Keys of the config's train block that are the workflow's, not the estimator's (as in rules/common.smk).
WORKFLOW_KEYS = ("variants", "tasks", "threads")


def load_config(paths: list[Path]) -> dict:
    """The configuration files laid over each other (nested blocks merged, as Snakemake merges --configfile),
    then the schema defaults."""
    from snakemake.utils import validate

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


def _targets(config: dict) -> list[str]:
    split = config["splits"]["train"]
    shards = range(-(-split["images_per_category"] // split["shard_size"]))
    return [f"{config['results']}/generate/composite/train/{category}/{shard:03d}.parquet"
            for category in config["categories"] for shard in shards]


def _records(workdir: Path, targets: list[str]) -> pd.DataFrame:
    frame = read_tables([workdir / target for target in targets])
    frame["image_path"] = [str(workdir / path) for path in frame["image_path"]]
    return frame


def generated_train_images(workdir: Path, configfiles: list[Path], config: dict) -> pd.DataFrame:
    """Build (or reuse) the composite training images of ``config`` in ``workdir``; their records, with
    absolute image paths. The configuration is saved there too (``config.resolved.json``)."""
    targets = _targets(config)
    command = [str(Path(sys.executable).with_name("snakemake")), *targets, "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(workdir), "--cores", "2", "--configfile", *map(str, configfiles)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"building the images failed:\n{result.stderr[-3000:]}")
    write_json(config, workdir / RESOLVED_CONFIG)
    return _records(workdir, targets)


def prebuilt_train_images(workdir: Path) -> tuple[pd.DataFrame, dict]:
    """The records and configuration of a folder that :func:`generated_train_images` built earlier, read
    without running the workflow (no Snakemake or Blender needed)."""
    path = workdir / RESOLVED_CONFIG
    if not path.is_file():
        raise SystemExit(f"{path} is missing: --prebuilt reuses a --workdir that bench/kcf.py or bench/train.py "
                         "built before (run once without --prebuilt on a machine with the workflow installed)")
    config = json.loads(path.read_text())
    return _records(workdir, _targets(config)), config


def parse_overrides(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs (VALUE read as YAML: ``epochs=40``, ``device=cuda``) as a dict of train settings."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise SystemExit(f"--set {pair!r}: write KEY=VALUE, e.g. --set epochs=40")
        overrides[key] = yaml.safe_load(value)
    return overrides
