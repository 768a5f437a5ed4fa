"""Whole-workflow runs for the resume, fault and SLURM tests: the command line, one uninterrupted reference run
shared by the tests of a session, and the comparison of two runs' results.

Every run uses the seconds-scale configuration ``.test/config/config.yaml`` laid over ``config/config.yaml``, plus
``tests/data/interrupt.yaml`` (render shards and training long enough for a kill to land inside them).
"""

from __future__ import annotations

import atexit
import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd

from dst3d.tables import read_csv

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CONFIGS = [
    REPO / "config" / "config.yaml",
    REPO / ".test" / "config" / "config.yaml",
    REPO / "tests" / "data" / "interrupt.yaml",
]


def snakemake_command(workdir: Path, *arguments: str, configfiles: list[Path] = CONFIGS) -> list[str]:
    return [
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        *map(str, configfiles),
        *arguments,
    ]


def run(
    workdir: Path, *arguments: str, configfiles: list[Path] = CONFIGS, env: dict | None = None, timeout_s: float = 900
) -> subprocess.CompletedProcess:
    """Run Snakemake from the repository root (so the default profile applies) on ``workdir``."""
    return subprocess.run(
        snakemake_command(workdir, *arguments, configfiles=configfiles),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout_s,
    )


_REFERENCE_RUNS: dict[Path, subprocess.Popen] = {}


@atexit.register
def _stop_reference_runs() -> None:
    """A background reference run that no test waited for does not outlive the session."""
    for process in _REFERENCE_RUNS.values():
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


def start_reference_run(tmp_path_factory) -> None:
    """Start the session's reference run in the background (if it is neither done nor running), so that it
    overlaps with a test that mostly waits, such as the SLURM run."""
    workdir = tmp_path_factory.getbasetemp() / "reference-run"
    if workdir in _REFERENCE_RUNS or (workdir / ".complete").exists():
        return
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    log = open(workdir.parent / "reference-run.log", "w")
    _REFERENCE_RUNS[workdir] = subprocess.Popen(
        snakemake_command(workdir, "--cores", "2"), cwd=REPO, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()


def reference_run(tmp_path_factory) -> Path:
    """The working directory of one complete, uninterrupted local run (made once per test session)."""
    workdir = tmp_path_factory.getbasetemp() / "reference-run"
    if not (workdir / ".complete").exists():
        start_reference_run(tmp_path_factory)
        process = _REFERENCE_RUNS.pop(workdir)
        returncode = process.wait(timeout=900)
        assert returncode == 0, (workdir.parent / "reference-run.log").read_text()[-5000:]
        (workdir / ".complete").touch()
    return workdir


def job_counts(output: str) -> dict[str, int]:
    """The job-stats table Snakemake prints before running (or in a dry run) as {rule: count}."""
    counts, in_table = {}, False
    for line in output.splitlines():
        fields = line.split()
        if fields[:2] == ["job", "count"]:
            in_table = True
        elif in_table and len(fields) == 2 and fields[1].isdigit():
            counts[fields[0]] = int(fields[1])
        elif in_table and counts and not line.startswith("-"):
            break
    return counts


def trained_tasks(output: str) -> dict[str, int]:
    """The train_model jobs Snakemake lists (its per-job blocks, printed before they run or in a dry run) as
    {task: count}."""
    counts, in_training_job = {}, False
    for line in output.splitlines():
        if re.match(r"(local)?rule \w+:$", line):
            in_training_job = line.split()[-1] == "train_model:"
        elif in_training_job and line.startswith("    wildcards: "):
            wildcards = dict(item.split("=", 1) for item in line.split(": ", 1)[1].split(", "))
            counts[wildcards["task"]] = counts.get(wildcards["task"], 0) + 1
    return counts


def _portable(frame: pd.DataFrame, workdir: Path) -> pd.DataFrame:
    """Absolute paths inside the run's folder (texture and background sources) made relative to it."""
    prefix = f"{workdir.resolve()}/"
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object and frame[column].map(lambda value: isinstance(value, str)).all():
            frame[column] = frame[column].str.replace(prefix, "", regex=False)
    return frame


def compared_files(workdir: Path) -> list[Path]:
    """The outputs whose equality makes two runs equal: annotation tables, KCF scores and kept lists, metrics."""
    results = workdir / "results"
    patterns = [
        "render/**/*.parquet",
        "generate/**/*.parquet",
        "kcf/*/scores.csv",
        "kcf/*/kept.csv",
        "evaluate/**/*metrics.csv",
        "tables/*.csv",
    ]
    return sorted(path.relative_to(workdir) for pattern in patterns for path in results.glob(pattern))


def image_digests(workdir: Path) -> dict[str, str]:
    """SHA-256 of every rendered and generated image file, by path relative to the run's folder (the files carry
    no metadata that changes from run to run: Blender's stamp fields are off, render._configure_scene)."""
    results = workdir / "results"
    return {
        str(path.relative_to(workdir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in ("render", "generate")
        for path in sorted((results / folder).rglob("*.png"))
    }


def _read(path: Path, workdir: Path) -> pd.DataFrame:
    frame = _portable(pd.read_parquet(path) if path.suffix == ".parquet" else read_csv(path), workdir)
    # The checkpoint's file hash differs between runs with identical weights: torch.save names the archive's
    # root folder after the file it writes, here a random temporary name. The weights are compared instead.
    return frame.drop(columns=["checkpoint_sha256"], errors="ignore")


def assert_same_checkpoints(actual: Path, expected: Path) -> None:
    """Same trained weights and training history in every checkpoint under results/train."""
    import torch

    paths = sorted(path.relative_to(expected) for path in (expected / "results" / "train").rglob("*.pt"))
    assert paths and sorted(path.relative_to(actual) for path in (actual / "results" / "train").rglob("*.pt")) == paths
    for path in paths:
        mine, theirs = (torch.load(root / path, map_location="cpu", weights_only=False) for root in (actual, expected))
        assert mine["history"] == theirs["history"], path
        assert mine["model"].keys() == theirs["model"].keys(), path
        for name, tensor in theirs["model"].items():
            assert torch.equal(mine["model"][name], tensor), f"{path}: {name}"


def assert_same_results(actual: Path, expected: Path) -> None:
    """The two runs made the same annotation tables, KCF scores, metrics, images and weights (exactly)."""
    files = compared_files(expected)
    assert files and compared_files(actual) == files
    assert any(path.suffix == ".parquet" for path in files) and any("scores" in path.name for path in files)
    for path in files:
        pd.testing.assert_frame_equal(
            _read(actual / path, actual), _read(expected / path, expected), check_exact=True, obj=str(path)
        )
    assert image_digests(actual) == image_digests(expected)
    assert_same_checkpoints(actual, expected)
