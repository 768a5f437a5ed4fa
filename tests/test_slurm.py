"""The SLURM profile (profiles/slurm): what it asks for, checked by dry runs anywhere; and the workflow through
it on a real SLURM (marked ``slurm``): Debian's slurm-wlm 22.05 as a one-node cluster on 127.0.0.1
(tests/slurm_cluster.py), installed with apt-get when missing and possible (root, apt-get), else skipped (in CI,
where CI is set, that is a failure instead). The configuration is .test/config/config.yaml (via tests/workflow_runs.py),
not the full embedded default, to keep CI in minutes; the profile is used as users use it, with the local
partition given by DST3D_PARTITION and only faster status checks added on the command line."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

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
GPU_RULES = {"render_shard", "generate_shard", "train_model", "kcf_fold"}


def rule_blocks() -> dict[str, str]:
    """Each rule's text in rules/*.smk, by name."""
    blocks = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"(?m)^(?=rule \w+:\n)", path.read_text()):
            if match := re.match(r"rule (\w+):\n", block):
                blocks[match.group(1)] = block
    return blocks


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


def test_every_rule_sizes_itself_and_the_profile_adds_only_the_site():
    assert "set-resources" not in PROFILE, "state mem_mb and runtime in the rule (by_attempt), not in the profile"
    assert set(PROFILE["default-resources"]) == {"slurm_partition", "slurm_account"}
    blocks = rule_blocks()
    assert set(blocks) == workflow_rules()
    for rule, block in blocks.items():
        for resource in ("mem_mb", "runtime"):
            assert re.search(rf"^        {resource}=by_attempt\(", block, re.M), f"{rule}: {resource}=by_attempt(...)"


@pytest.mark.parametrize("attempt", [1, 2])
def test_gpu_rules_ask_for_gpus_and_every_job_gets_the_site_and_its_resources(tmp_path, attempt):
    jobs = dry_run_resources(
        tmp_path,
        "--attempt",
        str(attempt),
        overlay=GPU_CONFIG,
        environment={**os.environ, "DST3D_PARTITION": "gpu-a100", "DST3D_ACCOUNT": "proj42"},
    )
    assert {job["rule"] for job in jobs} >= GPU_RULES
    first_attempt = (
        {} if attempt == 1 else {job_key(job): job for job in dry_run_resources(tmp_path, overlay=GPU_CONFIG)}
    )
    for job in jobs:
        resources, rule = job["resources"], job["rule"]
        assert resources["slurm_partition"] == "gpu-a100" and resources["slurm_account"] == "proj42", rule
        for resource in ("mem_mb", "runtime"):
            assert int(resources[resource]) > 0, (rule, resource)
            if attempt == 2:  # a resubmitted job gets twice the memory and time
                assert int(resources[resource]) == 2 * int(first_attempt[job_key(job)]["resources"][resource]), rule
        assert int(resources.get("gpu", 0)) == (1 if rule in GPU_RULES else 0), rule


def job_key(job: dict) -> tuple:
    return job["rule"], tuple(sorted(job["wildcards"].items()))


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
    largest = 2 * max(
        int(number) for block in rule_blocks().values() for number in re.findall(r"mem_mb=by_attempt\(.*?(\d+)", block)
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
    asks for a GPU."""
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
def test_every_job_runs_as_a_slurm_job_with_the_rules_resources(slurm_run, tmp_path):
    output = slurm_run["output"]
    assert slurm_run["returncode"] == 0, output[-5000:]
    submitted, calls, planned = submissions(output), sbatch_calls(output), job_counts(output)
    # Every job but the target rule `all` (no command) went through sbatch; the cancelled one twice.
    assert len(submitted) == len(calls) == planned["total"] - planned["all"] + 1
    (run_id,) = set(re.findall(r"SLURM run ID: (\S+)", output))
    # What each rule asks for at attempt 1, from a dry run of the same configuration (one figure per rule here).
    first_attempt = {job["rule"]: job["resources"] for job in dry_run_resources(tmp_path)}
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
        mem_mb, runtime = (int(first_attempt[rule][name]) * call["attempt"] for name in ("mem_mb", "runtime"))
        assert option(options, "--mem") == str(mem_mb) and option(options, "-t") == str(runtime)


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
