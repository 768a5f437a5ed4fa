"""The SLURM profile (profiles/slurm): what it asks for, checked by dry runs anywhere; and the workflow through
it on a real SLURM (marked ``slurm``): Debian's slurm-wlm 22.05 as a one-node cluster on 127.0.0.1
(tests/slurm_cluster.py), installed with apt-get when missing and possible (root, apt-get), else skipped (in CI,
where CI is set, that is a failure instead). The configuration is tests/data/tiny.yaml (via tests/workflow_runs.py),
not the full embedded default, to keep CI in minutes; the profile is used as users use it, with the local
partition given by DST3D_PARTITION and only faster status checks added on the command line."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from slurm_cluster import PARTITION, SlurmCluster, install
from workflow_runs import (
    CONFIGS,
    REPO,
    SNAKEMAKE,
    assert_same_results,
    job_counts,
    reference_run,
    snakemake_command,
    start_reference_run,
)

PROFILE = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
GPU_CONFIG = {"render": {"device": "gpu"}, "train": {"variants": ["controlnet-kcf"], "device": "cuda"}}
# Rules that ask for a GPU in GPU_CONFIG; every other rule must not.
GPU_RULES = {"render_shard", "generate_shard", "train_pose_estimator", "kcf_fold"}


def profile_value(rule: str, resource: str, attempt: int, **wildcards: str):
    """A resource as the profile sets it for ``rule`` at ``attempt``."""
    expression = PROFILE["set-resources"].get(rule, {}).get(resource, PROFILE["default-resources"].get(resource))
    return eval(str(expression), {"attempt": attempt, "wildcards": SimpleNamespace(**wildcards)})


def workflow_rules() -> set[str]:
    result = subprocess.run([SNAKEMAKE, "--list-rules"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return set(result.stdout.split()) - {"all"}


def dry_run_resources(
    tmp_path: Path, *arguments: str, overlay: dict | None = None, environment: dict[str, str] | None = None
) -> list[dict]:
    """Each planned job's rule, wildcards and resources in a dry run through the SLURM profile."""
    configfiles = list(CONFIGS)
    if overlay:
        (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        configfiles.append(tmp_path / "overlay.yaml")
    command = snakemake_command(
        tmp_path / "run", "--profile", "profiles/slurm", "--dry-run", *arguments, configfiles=configfiles
    )
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, timeout=300, env=environment or os.environ
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = []
    for line in result.stdout.splitlines():
        if re.match(r"(local)?rule \w+:$", line):
            jobs.append({"rule": line.split()[-1].rstrip(":"), "wildcards": {}, "resources": {}})
        elif jobs and line.startswith("    wildcards: "):
            jobs[-1]["wildcards"] = dict(item.split("=", 1) for item in line.split(": ", 1)[1].split(", "))
        elif jobs and line.startswith("    resources: "):
            jobs[-1]["resources"] = dict(item.split("=", 1) for item in line.split(": ", 1)[1].split(", "))
    return [job for job in jobs if job["rule"] != "all"]


def test_profile_sizes_every_rule_by_attempt():
    assert set(PROFILE["set-resources"]) == workflow_rules(), "size new rules in profiles/slurm/config.yaml"
    for rule, resources in PROFILE["set-resources"].items():
        assert set(resources) == {"mem_mb", "runtime"}, rule
        for resource in resources:
            first = profile_value(rule, resource, 1, backend="controlnet", group="car")
            assert first > 0 and profile_value(rule, resource, 2, backend="controlnet", group="car") == 2 * first


@pytest.mark.parametrize("attempt", [1, 2])
def test_gpu_rules_ask_for_gpus_and_every_job_gets_the_profile_resources(tmp_path, attempt):
    jobs = dry_run_resources(
        tmp_path,
        "--attempt",
        str(attempt),
        overlay=GPU_CONFIG,
        environment={**os.environ, "DST3D_PARTITION": "gpu-a100", "DST3D_ACCOUNT": "proj42"},
    )
    assert {job["rule"] for job in jobs} >= GPU_RULES | {"train_pose_estimator", "kcf_fold"}
    for job in jobs:
        resources, rule = job["resources"], job["rule"]
        assert resources["slurm_partition"] == "gpu-a100" and resources["slurm_account"] == "proj42", rule
        assert int(resources["mem_mb"]) == profile_value(rule, "mem_mb", attempt, **job["wildcards"]), rule
        assert int(resources["runtime"]) == profile_value(rule, "runtime", attempt, **job["wildcards"]), rule
        assert int(resources.get("gpu", 0)) == (1 if rule in GPU_RULES else 0), rule


def test_without_site_variables_jobs_use_the_cluster_defaults(tmp_path):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DST3D_")}
    for job in dry_run_resources(tmp_path, environment=environment):
        # Empty: the plugin takes the partition sinfo marks as default and submits without an account.
        assert job["resources"]["slurm_partition"] == "" and job["resources"]["slurm_account"] == ""
        assert int(job["resources"].get("gpu", 0)) == 0, job["rule"]


# --- a real one-node SLURM ------------------------------------------------------------------------------------


def system_configs() -> dict[str, bool]:
    """Whether each place SLURM clients look for a config without SLURM_CONF holds one."""
    places = ["/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf", "/run/slurm/conf/slurm.conf"]
    return {place: Path(place).exists() for place in places}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = install()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the SLURM test: {reason}")
        pytest.skip(reason)
    # More CPUs than the machine has: jobs spend most of their time starting Snakemake, so run them side by side.
    # Memory is not consumed (CR_Core); the node only has to be big enough for the profile's largest request.
    largest = max(
        profile_value(rule, "mem_mb", 2, backend="controlnet", group="all") for rule in PROFILE["set-resources"]
    )
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), cpus=8, memory_mb=largest)
    cluster.system_configs_before = system_configs()
    try:
        try:
            cluster.start()
        except (RuntimeError, TimeoutError) as error:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"SLURM installed but its daemons did not start here: {error}"[:3000])
        yield cluster
    finally:
        cluster.stop()


class SlurmRun:
    """Snakemake through `--profile profiles/slurm`, as a user runs it from the repository root, with the local
    partition in DST3D_PARTITION, faster status checks, kept SLURM logs and --verbose (to log sbatch calls)."""

    def __init__(self, cluster: SlurmCluster, workdir: Path, *arguments: str):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir, self.log = workdir, workdir.parent / f"{workdir.name}-snakemake.log"
        # Status checks every 5 s after a job ends instead of 40 s: the jobs here take seconds, not minutes.
        command = snakemake_command(
            workdir,
            "--profile",
            "profiles/slurm",
            "--slurm-init-seconds-before-status-checks",
            "5",
            "--slurm-keep-successful-logs",
            "--verbose",
            *arguments,
        )
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=cluster.environment(DST3D_PARTITION=PARTITION),
            )

    @property
    def output(self) -> str:
        return self.log.read_text()


def wait_for(cluster: SlurmCluster, runs: list[SlurmRun], cancel_rule: str, timeout_s: float = 900) -> str | None:
    """Wait for the runs to end; meanwhile scancel the first SLURM job of ``cancel_rule`` once it runs (as a
    preemption or a node failure would end it). Returns that job's id."""
    cancelled = None
    deadline = time.monotonic() + timeout_s
    try:
        while any(run.process.poll() is None for run in runs):
            assert time.monotonic() < deadline, f"the SLURM runs took more than {timeout_s} s"
            if cancelled is None:
                running = [
                    job["id"]
                    for job in cluster.jobs()
                    if job["state"] == "RUNNING" and job["comment"].startswith(f"rule_{cancel_rule}_")
                ]
                if running:
                    cancelled = running[0]
                    cluster.client("scancel", cancelled)
            time.sleep(0.5)
    finally:
        for run in runs:
            if run.process.poll() is None:
                run.process.terminate()  # Snakemake cancels its SLURM jobs on SIGTERM
                run.process.wait(timeout=60)
    return cancelled


def sbatch_calls(output: str) -> list[dict]:
    """The plugin's sbatch calls (logged with --verbose): rule, options and attempt (1, 2, ... per job)."""
    calls, attempts = [], {}
    for line in output.splitlines():
        if "sbatch call: " in line:
            options = line.split("sbatch call: ", 1)[1].split(' --wrap="', 1)[0]
            comment = re.search(r"--comment (\S+)", options).group(1)  # rule_<rule>[_wildcards_<values>]
            attempts[comment] = attempts.get(comment, 0) + 1
            calls.append(
                {
                    "rule": re.match(r"rule_(\w+?)(_wildcards_|$)", comment).group(1),
                    "options": options,
                    "attempt": attempts[comment],
                }
            )
    return calls


def option(call: str, name: str) -> str | None:
    match = re.search(rf"(?:^|\s){re.escape(name)}[ =](\S+)", call)
    return match.group(1) if match else None


# A job off the critical path (prompts feed only the final target), so that its retry costs no time.
CANCELLED_RULE = "write_prompts"


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory) -> dict:
    """The workflow through the profile, with one job cancelled by SLURM; beside it, a second run whose one job
    asks for a GPU (this replaces the profile's set-resources, which is fine for that job)."""
    start_reference_run(tmp_path_factory)  # the SLURM run mostly waits: let the local run use the CPU meanwhile
    root = tmp_path_factory.mktemp("through-slurm")
    main = SlurmRun(cluster, root / "run")
    gpu = SlurmRun(cluster, root / "gpu", "results/assets/embedded", "--set-resources", "build_embedded_assets:gpu=1")
    cancelled = wait_for(cluster, [main, gpu], CANCELLED_RULE)
    return {
        "workdir": main.workdir,
        "returncode": main.process.returncode,
        "output": main.output,
        "cancelled": cancelled,
        "gpu_returncode": gpu.process.returncode,
        "gpu_output": gpu.output,
        "jobs": cluster.jobs_by_id(),
    }


def submissions(output: str) -> list[tuple[str, str]]:
    """(SLURM job id, SLURM log file) of every job the run submitted."""
    return re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", output)


@pytest.mark.slurm
@pytest.mark.slow
def test_every_job_runs_as_a_slurm_job_with_the_profile_resources(slurm_run):
    output = slurm_run["output"]
    assert slurm_run["returncode"] == 0, output[-5000:]
    submitted, calls, planned = submissions(output), sbatch_calls(output), job_counts(output)
    # Every job but the target rule `all` (no command) went through sbatch; the cancelled one twice.
    assert len(submitted) == len(calls) == planned["total"] - planned["all"] + 1
    (run_id,) = set(re.findall(r"SLURM run ID: (\S+)", output))
    for slurm_id, log in submitted:
        job = slurm_run["jobs"][slurm_id]  # the controller knows the job, under this run's name
        assert job["name"] == run_id
        if slurm_id == slurm_run["cancelled"]:
            assert job["state"] == "CANCELLED"
        else:
            assert job["state"] == "COMPLETED" and "Finished jobid" in Path(log).read_text(), slurm_id
    for call in calls:
        rule, options = call["rule"], call["options"]
        assert option(options, "-p") == PARTITION and option(options, "-A") is None, options
        assert option(options, "--gpus") is None and option(options, "--gres") is None, options
        assert re.search(r"--cpus-per-task=\d", options), options
        expected = {
            name: profile_value(rule, name, call["attempt"], backend="composite", group="all")
            for name in ("mem_mb", "runtime")
        }
        assert option(options, "--mem") == str(expected["mem_mb"]) and option(options, "-t") == str(expected["runtime"])


@pytest.mark.slurm
@pytest.mark.slow
def test_job_cancelled_by_slurm_is_retried_with_twice_the_memory_and_time(slurm_run):
    cancelled = slurm_run["cancelled"]
    assert cancelled, f"no {CANCELLED_RULE} job was seen running"
    comment = slurm_run["jobs"][cancelled]["comment"]
    retried = [call for call in sbatch_calls(slurm_run["output"]) if f"--comment {comment} " in call["options"]]
    assert [call["attempt"] for call in retried] == [1, 2]
    first, second = (call["options"] for call in retried)
    assert int(option(second, "--mem")) == 2 * int(option(first, "--mem"))
    assert int(option(second, "-t")) == 2 * int(option(first, "-t"))
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in slurm_run["output"]


@pytest.mark.slurm
@pytest.mark.slow
def test_results_through_slurm_equal_a_local_run(slurm_run, tmp_path_factory):
    assert slurm_run["returncode"] == 0
    assert_same_results(slurm_run["workdir"], reference_run(tmp_path_factory))


@pytest.mark.slurm
@pytest.mark.slow
def test_gpu_request_reaches_slurm_and_the_job_gets_a_gpu(slurm_run):
    output = slurm_run["gpu_output"]
    assert slurm_run["gpu_returncode"] == 0, output[-5000:]
    (call,) = sbatch_calls(output)
    assert call["rule"] == "build_embedded_assets" and option(call["options"], "--gpus") == "1"
    ((slurm_id, log),) = submissions(output)
    assert slurm_run["jobs"][slurm_id]["state"] == "COMPLETED"
    # The job's environment, as the job step logs it on the node: SLURM gave it the node's GPU.
    assert "'CUDA_VISIBLE_DEVICES': '0'" in Path(log).read_text()


@pytest.mark.slurm
@pytest.mark.slow
def test_cluster_stops_every_process_and_leaves_no_config_behind(cluster):
    pids = [process.pid for process in cluster.processes.values()]
    cluster.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    assert cluster.leftover_pids() == []
    # No config left where SLURM clients look by themselves. Without one, `scontrol show config` (which
    # Snakemake's SLURM plugin runs at every start) fails at once instead of waiting for a controller that is
    # gone, so plain snakemake calls stay fast.
    assert system_configs() == cluster.system_configs_before
    if not any(cluster.system_configs_before.values()):
        started = time.monotonic()
        result = subprocess.run(
            ["scontrol", "show", "config"],
            capture_output=True,
            text=True,
            timeout=60,
            env={key: value for key, value in os.environ.items() if key != "SLURM_CONF"},
        )
        assert result.returncode != 0 and time.monotonic() - started < 3
