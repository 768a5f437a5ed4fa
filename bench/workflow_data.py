"""Shared by bench/kcf.py and bench/train.py: the configuration as the workflow sees it, and its generated
training images, built with the workflow itself (up to the generate stage) in a working folder.

A folder built once can be reused where the workflow cannot run (a GPU node without Blender or Snakemake):
the build saves the merged, validated configuration beside the images as ``config.resolved.json``, and
:func:`data_config` and :func:`train_images` read that configuration and the tables back without running
anything (``--prebuilt``)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from dst3d.identity import shard_names
from dst3d.io import read_tables, write_json

REPO = Path(__file__).resolve().parent.parent
#: The configuration a build used, saved in its working folder.
RESOLVED_CONFIG = "config.resolved.json"


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


def _targets(config: dict) -> list[str]:
    return [
        f"{config['results']}/generate/composite/train/{category}/{shard}.parquet"
        for category in config["categories"]
        for shard in shard_names(config["splits"]["train"])
    ]


def _records(workdir: Path, targets: list[str]) -> pd.DataFrame:
    frame = read_tables([workdir / target for target in targets])
    frame["image_path"] = [str(workdir / path) for path in frame["image_path"]]
    return frame


def generated_train_images(workdir: Path, configfiles: list[Path], config: dict) -> pd.DataFrame:
    """Build (or reuse) the composite training images of ``config`` in ``workdir``; their records, with
    absolute image paths. The configuration is saved there too (``config.resolved.json``)."""
    targets = _targets(config)
    command = [
        str(Path(sys.executable).with_name("snakemake")),
        *targets,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--configfile",
        *map(str, configfiles),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"building the images failed:\n{result.stderr[-3000:]}")
    write_json(config, workdir / RESOLVED_CONFIG)
    return _records(workdir, targets)


def add_data_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """The options every training benchmark takes: where to build (or find) the images, from which
    configuration, and ``--set`` overrides of ``what`` (the settings the benchmark trains with)."""
    parser.add_argument("--workdir", type=Path, help="workflow folder to build in (default: a temporary one)")
    parser.add_argument("--configfile", type=Path, nargs="+", default=[REPO / "config" / "config.yaml"])
    parser.add_argument(
        "--prebuilt",
        action="store_true",
        help="reuse the images and configuration already in --workdir; run no workflow",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override {what} (repeatable)",
    )


def data_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """The configuration of the images: the one a ``--prebuilt`` folder was built with (read back without
    Snakemake or Blender), else the ``--configfile`` files merged and validated."""
    if not args.prebuilt:
        return load_config([path.resolve() for path in args.configfile])
    if not args.workdir:
        parser.error("--prebuilt needs the --workdir to reuse")
    path = args.workdir.resolve() / RESOLVED_CONFIG
    if not path.is_file():
        parser.error(
            f"{path} is missing: --prebuilt reuses a --workdir that bench/kcf.py or bench/train.py "
            "built before (run once without --prebuilt on a machine with the workflow installed)"
        )
    return json.loads(path.read_text())


def train_images(args: argparse.Namespace, config: dict, workdir: Path) -> pd.DataFrame:
    """The records of the training images in ``workdir``: read as they are with ``--prebuilt``, else built
    (or reused) with the workflow."""
    if args.prebuilt:
        return _records(workdir, _targets(config))
    return generated_train_images(workdir, [path.resolve() for path in args.configfile], config)


def apply_overrides(parser: argparse.ArgumentParser, settings: dict, pairs: list[str]) -> dict:
    """``settings`` with the ``--set`` pairs over them; a key the settings do not have is an error naming them."""
    overrides = parse_overrides(pairs)
    unknown = set(overrides) - set(settings)
    if unknown:
        parser.error(f"--set: {sorted(unknown)} are not train settings; use one of {sorted(settings)}")
    return {**settings, **overrides}


def parse_overrides(pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs (VALUE read as YAML: ``epochs=40``, ``device=cuda``) as a dict of train settings."""
    overrides = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise SystemExit(f"--set {pair!r}: write KEY=VALUE, e.g. --set epochs=40")
        overrides[key] = yaml.safe_load(value)
    return overrides
