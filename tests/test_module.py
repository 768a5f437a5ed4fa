"""dst3d as a Snakemake module of another workflow, and the catalog's .test/ config (README.md, "Using dst3d from another workflow"): a host
Snakefile that names the repository's Snakefile, passes its own config and takes every rule under a prefix plans
the same jobs as dst3d run directly, and its jobs write the same files (the render and edge stages, byte for
byte, against the session's direct reference run)."""

from __future__ import annotations

import hashlib
import subprocess

import pandas as pd
import yaml
from snakemake.utils import update_config
from workflow_runs import CONFIGS, REPO, SNAKEMAKE, _read, job_counts, reference_run, run

HOST = """\
configfile: "config.yaml"


module dst3d:
    snakefile:
        "{snakefile}"
    config:
        config


use rule * from dst3d as dst3d_*


rule all:
    default_target: True
    input:
        rules.dst3d_all.input,
"""


def merged_config(paths=CONFIGS) -> dict:
    """The config files of the workflow tests' runs laid over each other as Snakemake lays `--configfile`s, as
    one (a host passes one config)."""
    config: dict = {}
    for path in paths:
        update_config(config, yaml.safe_load(path.read_text()))
    return config


def host(tmp_path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "Snakefile").write_text(HOST.format(snakefile=REPO / "Snakefile"))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(merged_config()))
    return tmp_path


def host_snakemake(workdir, *arguments):
    result = subprocess.run(
        [SNAKEMAKE, "--cores", "2", *arguments], capture_output=True, text=True, cwd=workdir, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_a_host_workflow_plans_the_same_jobs_under_its_prefix(tmp_path):
    hosted = job_counts(host_snakemake(host(tmp_path / "host"), "--dry-run").stdout)
    direct = run(tmp_path / "direct", "--cores", "2", "--dry-run")
    assert direct.returncode == 0, direct.stderr[-3000:]
    expected = {
        (rule if rule in ("all", "total") else f"dst3d_{rule}"): count
        for rule, count in job_counts(direct.stdout).items()
    }
    assert hosted == expected and hosted["dst3d_train_model"] == 1


def test_a_host_workflow_renders_the_same_files(tmp_path, tmp_path_factory):
    workdir = host(tmp_path)
    host_snakemake(workdir, "results/edges/train/car/000")
    reference = reference_run(tmp_path_factory)
    shard = "results/render/train/car/000.parquet"
    pd.testing.assert_frame_equal(
        _read(workdir / shard, workdir), _read(reference / shard, reference), check_exact=True
    )
    for folder in ("results/render/train/car/000", "results/edges/train/car/000"):
        files = sorted(path.relative_to(reference) for path in (reference / folder).iterdir())
        assert files and sorted(path.relative_to(workdir) for path in (workdir / folder).iterdir()) == files
        for path in files:
            digests = [hashlib.sha256((root / path).read_bytes()).hexdigest() for root in (workdir, reference)]
            assert digests[0] == digests[1], path


def test_the_catalog_test_config_alone_is_the_tiny_run():
    """`snakemake --directory .test` reads .test/config/config.yaml alone (the Snakefile's configfile is relative
    to the working directory); the workflow tests lay it over config/config.yaml. Both must be one config."""
    from dst3d.config_schema import validate_config

    alone = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    layered = merged_config([REPO / "config" / "config.yaml", REPO / ".test" / "config" / "config.yaml"])
    validate_config(alone)
    validate_config(layered)
    assert alone == layered
