"""Resume and faults, with real processes: the workflow is SIGKILLed (Snakemake and every job, as a lost node
or an out-of-memory kill would) inside a render shard and inside training, then rerun; and a job fails on a bad
model file. Runs use .test/config/config.yaml (see tests/workflow_runs.py) and are compared with one uninterrupted
run of the same configuration."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from workflow_runs import (
    CONFIGS,
    REPO,
    assert_same_checkpoints,
    assert_same_results,
    job_counts,
    reference_run,
    run,
    snakemake_command,
    start_reference_run,
)

pytestmark = pytest.mark.slow


def start(workdir: Path, name: str) -> subprocess.Popen:
    """Snakemake on ``workdir`` in a process group of its own (its jobs are in it too)."""
    log = open(workdir / f"{name}.log", "w")
    process = subprocess.Popen(
        snakemake_command(workdir, "--cores", "2"),
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return process


def group_members(group: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def kill_when(process: subprocess.Popen, ready, what: str, timeout_s: float = 300) -> None:
    """SIGKILL Snakemake and all its jobs as soon as ``ready()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 30
    while group_members(process.pid):
        assert time.monotonic() < deadline, f"processes {group_members(process.pid)} outlived SIGKILL"
        time.sleep(0.1)


def snapshot(workdir: Path) -> dict[str, tuple[int, int]]:
    """(mtime in ns, inode) of every published file under results/, by relative path; a running job's work in
    progress (``.partial`` staging, a training job's ``resume.pt``) is not published."""
    return {
        str(path.relative_to(workdir)): (path.stat().st_mtime_ns, path.stat().st_ino)
        for path in (workdir / "results").rglob("*")
        if path.is_file() and ".partial" not in str(path) and not path.name.endswith("resume.pt")
    }


def planned_jobs(workdir: Path, configfiles: list[Path] = CONFIGS) -> list[dict]:
    """The jobs a dry run would run: rule, outputs and reason of each."""
    result = run(workdir, "--cores", "2", "--dry-run", configfiles=configfiles)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = []
    for line in result.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")) and line.endswith(":"):
            jobs.append({"rule": line.split()[1].rstrip(":"), "outputs": [], "reason": ""})
        elif jobs and line.startswith("    output: "):
            jobs[-1]["outputs"] = line.removeprefix("    output: ").split(", ")
        elif jobs and line.startswith("    reason: "):
            jobs[-1]["reason"] = line.removeprefix("    reason: ")
    assert sum(1 for job in jobs if job["rule"] != "all") == job_counts(result.stdout)["total"] - 1
    return jobs


def unchanged_outside(plan: list[dict], before: dict, after: dict) -> list[str]:
    """Files present at the kill that no planned job writes, but that are different or gone afterwards."""

    def written_by_plan(path: str) -> bool:
        return any(path == output or path.startswith(output + "/") for job in plan for output in job["outputs"])

    return [path for path, stamp in before.items() if not written_by_plan(path) and after.get(path) != stamp]


def unlock(workdir: Path) -> None:
    # A SIGKILLed Snakemake leaves its lock behind; `--unlock` is the documented first step of the rerun.
    result = run(workdir, "--unlock")
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> dict:
    """Run 1 killed inside a render shard, run 2 killed inside training, run 3 to the end; what each saw."""
    start_reference_run(tmp_path_factory)  # side by side: both leave a core idle much of the time
    workdir = tmp_path_factory.mktemp("interrupted")
    seen: dict = {"workdir": workdir}

    def render_shard_half_done() -> list[Path]:
        staging = (workdir / "results" / "render").glob("*/*/*.partial")
        return [folder for folder in staging if any(folder.glob("*.png"))]

    def resume_files() -> list[Path]:
        return list((workdir / "results" / "train").glob("*/pose_resume.pt"))

    first = start(workdir, "run1")
    kill_when(first, lambda: bool(render_shard_half_done()), "a render shard holds its first images")
    seen["killed_shards"] = [
        str(folder.relative_to(workdir)).removesuffix(".partial") for folder in render_shard_half_done()
    ]
    seen["files_at_kill_1"] = snapshot(workdir)
    unlock(workdir)
    seen["plan_after_kill_1"] = planned_jobs(workdir)

    second = start(workdir, "run2")
    kill_when(second, lambda: bool(resume_files()), "training saves its first epoch")
    (resume,) = resume_files()
    seen["variant"] = resume.parent.name
    seen["model_at_kill_2"] = (resume.parent / "pose.pt").exists()
    seen["epochs_at_kill_2"] = torch.load(resume, map_location="cpu", weights_only=False)["epoch"]
    seen["files_at_kill_2"] = snapshot(workdir)
    unlock(workdir)
    seen["plan_after_kill_2"] = planned_jobs(workdir)

    last = run(workdir, "--cores", "2")
    assert last.returncode == 0, last.stderr[-5000:]
    seen["files_at_end"] = snapshot(workdir)
    seen["train_log"] = (workdir / "logs" / "train_model" / seen["variant"] / "pose.log").read_text()
    return seen


def test_kill_inside_render_shard_then_rerun_redoes_only_unfinished_work(interrupted):
    workdir, plan = interrupted["workdir"], interrupted["plan_after_kill_1"]
    assert interrupted["killed_shards"], "no render shard was cut short"
    planned_rules = {job["rule"] for job in plan}
    # Finished before any shard started: not redone.
    assert not planned_rules & {"build_embedded_assets", "index_assets"}
    for shard in interrupted["killed_shards"]:
        # Neither the image folder nor the table of a shard cut short was published.
        published = interrupted["files_at_kill_1"]
        assert f"{shard}.parquet" not in published and not any(path.startswith(f"{shard}/") for path in published)
        (job,) = [job for job in plan if shard in job["outputs"]]
        assert job["rule"] == "render_shard"
    # Everything finished before the kill is kept as it was: same file, same time stamp.
    assert unchanged_outside(plan, interrupted["files_at_kill_1"], interrupted["files_at_end"]) == []
    assert not list((workdir / "results").rglob("*.partial")), "a staging folder survived the rerun"


def test_kill_inside_training_then_rerun_redoes_only_unfinished_work(interrupted):
    plan = interrupted["plan_after_kill_2"]
    assert not interrupted["model_at_kill_2"], "training had already finished when it was killed"
    planned_rules = {job["rule"] for job in plan}
    assert "train_model" in planned_rules
    assert not planned_rules & {"build_embedded_assets", "index_assets", "kcf_fold", "kcf_select"}
    assert unchanged_outside(plan, interrupted["files_at_kill_2"], interrupted["files_at_end"]) == []


def test_killed_training_resumes_from_its_last_checkpoint(interrupted, tmp_path_factory):
    epochs = interrupted["epochs_at_kill_2"]
    settings = yaml.safe_load((REPO / "tests" / "data" / "interrupt.yaml").read_text())
    assert 1 <= epochs < settings["train"]["epochs"]
    assert f"after epoch {epochs}" in interrupted["train_log"] and "resuming from" in interrupted["train_log"]
    # Only the remaining epochs ran after the restart.
    restarted = interrupted["train_log"].split("resuming from")[-1]
    assert f"epoch {epochs}/" not in restarted and f"epoch {epochs + 1}/" in restarted
    assert not (interrupted["workdir"] / "results" / "train" / interrupted["variant"] / "pose_resume.pt").exists()
    # The resumed model is the uninterrupted one, weight for weight.
    assert_same_checkpoints(interrupted["workdir"], reference_run(tmp_path_factory))


def test_interrupted_run_ends_with_the_results_of_an_uninterrupted_one(interrupted, tmp_path_factory):
    assert_same_results(interrupted["workdir"], reference_run(tmp_path_factory))


def test_bad_model_file_leaves_no_output_and_keep_going_finishes_other_categories(tmp_path, tmp_path_factory):
    data = tmp_path / "data"
    shutil.copytree(reference_run(tmp_path_factory) / "results" / "assets" / "embedded", data)
    (data / "models" / "boat" / "boat-000.obj").write_text("this is not a mesh\n")
    overlay = tmp_path / "folders.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "assets": {
                    "source": "folders",
                    "folders": {
                        "models_csv": str(data / "models.csv"),
                        "textures_dir": str(data / "textures"),
                        "backgrounds_dir": str(data / "backgrounds"),
                    },
                }
            }
        )
    )
    configfiles = [*CONFIGS, overlay]
    workdir = tmp_path / "run"
    result = run(workdir, "--cores", "2", "--keep-going", configfiles=configfiles)
    assert result.returncode != 0
    assert "boat-000.obj holds no mesh" in (result.stdout + result.stderr)

    results = workdir / "results"
    for split, shard_count in (("train", 2), ("test", 1)):
        for shard in range(shard_count):
            car = f"{split}/car/{shard:03d}"
            assert (results / "render" / f"{car}.parquet").is_file() and (results / "render" / car).is_dir()
            assert (results / "edges" / car).is_dir()
            assert (results / "generate" / "composite" / f"{car}.parquet").is_file()
        assert (results / "prompts" / split / "car.json").is_file()
    # Every boat shard uses boat-000 (models go round-robin), so every one failed and left nothing behind.
    assert not list((results / "render").glob("*/boat*")) and not list((results / "render").glob("*/boat/*"))

    plan = planned_jobs(workdir, configfiles)
    failed = [job for job in plan if job["rule"] == "render_shard"]
    assert sorted(job["outputs"][0] for job in failed) == sorted(
        f"results/render/{split}/boat/{shard:03d}.parquet"
        for split, count in (("train", 2), ("test", 1))
        for shard in range(count)
    )
    assert all("Missing output files" in job["reason"] for job in failed)
    # Nothing of the other category is left to do.
    car_outputs = [output for job in plan for output in job["outputs"] if "/car/" in output or "/car." in output]
    assert car_outputs == []
