"""A real one-node SLURM cluster for the tests: Debian's slurm-wlm 22.05 and munge, all state in one folder.

``SlurmCluster(root).start()`` runs munged, slurmctld and ``slurmd -N localhost`` in the foreground as children
of the test, bound to 127.0.0.1 on free ports, with a private munge key and socket and a private slurm.conf that
only the processes given :meth:`SlurmCluster.environment` see (``SLURM_CONF``); nothing is written under /etc,
so plain ``snakemake`` calls elsewhere on the machine keep their fast start (the SLURM plugin runs ``scontrol
show config`` when Snakemake starts; without a config it fails at once, with an unreachable controller it waits
about 9 s). :meth:`SlurmCluster.stop` cancels the cluster's jobs and stops every process it started, by PID.

No accounting (no slurmdbd): ``sacct`` fails, so the status of jobs comes from ``squeue`` (MinJobAge keeps
finished jobs listed for an hour). The node advertises one GPU as a count-only GRES (no device file) so that a
job asking for ``--gpus=1`` is scheduled; memory is not a consumable (CR_Core).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
CLIENTS = ("sbatch", "srun", "squeue", "scontrol", "scancel", "sinfo", "sacct", "sacctmgr", "sshare")
PROGRAMS = ("munged", "slurmctld", "slurmd", *CLIENTS)
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin"])
PARTITION = "debug"


def missing_programs() -> list[str]:
    return [program for program in PROGRAMS if shutil.which(program, path=SEARCH_PATH) is None]


def install() -> str | None:
    """Install slurm-wlm and munge with apt-get when a program is missing. Returns why not, or None when the
    programs are there."""
    if not missing_programs():
        return None
    if os.geteuid() != 0:
        return f"SLURM is not installed ({', '.join(missing_programs())} missing) and installing it needs root"
    if shutil.which("apt-get") is None:
        return "SLURM is not installed and there is no apt-get to install Debian's slurm-wlm and munge"
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900)
        if result.returncode != 0:
            return f"`{' '.join(command)}` failed: {(result.stdout + result.stderr)[-2000:]}"
    if missing_programs():
        return f"after installing {PACKAGES}, still missing: {missing_programs()}"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SlurmCluster:
    """One controller and one node (``localhost``, partition ``debug``) with state under ``root``."""

    def __init__(self, root: Path, cpus: int, memory_mb: int):
        self.root = Path(root)
        self.cpus, self.memory_mb = cpus, memory_mb
        self.config = self.root / "etc" / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.processes: dict[str, subprocess.Popen] = {}

    def environment(self, **extra: str) -> dict[str, str]:
        """The environment for SLURM clients (and Snakemake) that talk to this cluster."""
        path = os.pathsep.join([str(self.root / "bin"), SEARCH_PATH])
        return {**os.environ, "PATH": path, "SLURM_CONF": str(self.config), **extra}

    def _write_client_wrappers(self) -> None:
        """``bin/<client>`` runs the real client with this cluster's config. SLURM_CONF alone is not enough: the
        plugin's job step drops SLURM_* variables before it calls srun inside the job."""
        (self.root / "bin").mkdir(exist_ok=True)
        for client in CLIENTS:
            wrapper = self.root / "bin" / client
            program = shutil.which(client, path=SEARCH_PATH)
            wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{self.config}" exec {program} "$@"\n')
            wrapper.chmod(0o755)

    def start(self, timeout_s: float = 60) -> None:
        for folder in ("etc", "munge", "state", "spool", "log"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o711)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={self.root / 'munge' / 'munged.pid'}",
                f"--seed-file={self.root / 'munge' / 'seed'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
            ],
        )
        self._wait(lambda: self.munge_socket.exists(), timeout_s, "munged to open its socket")
        self._write_config()
        self._write_client_wrappers()
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.config)])
        self._wait(
            lambda: "UP" in self.client("scontrol", "ping", check=False).stdout,
            timeout_s,
            "slurmctld to answer `scontrol ping`",
        )
        self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.config)])
        self._wait(
            lambda: self.client("sinfo", "-h", "-o", "%T", check=False).stdout.strip() == "idle",
            timeout_s,
            "the node to be idle in `sinfo`",
        )

    def _write_config(self) -> None:
        (self.root / "etc" / "gres.conf").write_text("Name=gpu File=/dev/null\n")
        self.config.write_text(
            "\n".join(
                [
                    "ClusterName=dst3dtest",
                    "SlurmctldHost=localhost(127.0.0.1)",
                    f"SlurmctldPort={free_port()}",
                    f"SlurmdPort={free_port()}",
                    "CommunicationParameters=NoInAddrAny",  # bind to 127.0.0.1, not to every address
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"StateSaveLocation={self.root / 'state'}",
                    f"SlurmdSpoolDir={self.root / 'spool'}",
                    f"SlurmctldPidFile={self.root / 'state' / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.root / 'spool' / 'slurmd.pid'}",
                    f"SlurmctldLogFile={self.root / 'log' / 'slurmctld.log'}",
                    f"SlurmdLogFile={self.root / 'log' / 'slurmd.log'}",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "MpiDefault=none",
                    "SwitchType=switch/none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core",
                    "SlurmdParameters=config_overrides",  # the node is what this file says, whatever the machine
                    "ReturnToService=2",
                    "MinJobAge=3600",  # finished jobs stay in squeue: Snakemake's status checks and the tests read them
                    "KillWait=5",
                    "InactiveLimit=0",
                    "GresTypes=gpu",
                    f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} Gres=gpu:1 "
                    "State=UNKNOWN",
                    f"PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")
        executable = shutil.which(command[0], path=SEARCH_PATH)
        self.processes[name] = subprocess.Popen(
            [executable, *command[1:]], stdout=log, stderr=subprocess.STDOUT, env=self.environment(), cwd=self.root
        )
        log.close()

    def _wait(self, ready, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode} while waiting for {what}:\n{self.logs()}"
                    )
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}:\n{self.logs()}")

    def client(self, *command: str, check: bool = True, timeout_s: float = 30) -> subprocess.CompletedProcess:
        """Run a SLURM client command (sinfo, squeue, ...) against this cluster."""
        return subprocess.run(
            list(command), capture_output=True, text=True, env=self.environment(), check=check, timeout=timeout_s
        )

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller knows (finished ones for MinJobAge): id, name, state and comment."""
        output = self.client("squeue", "-h", "--states=all", "-O", "JobID:|,Name:|,State:|,Comment:").stdout
        return [
            dict(zip(("id", "name", "state", "comment"), (field.strip() for field in line.split("|")), strict=True))
            for line in output.splitlines()
            if line.strip()
        ]

    def jobs_by_id(self) -> dict[str, dict[str, str]]:
        return {job["id"]: job for job in self.jobs()}

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel the cluster's jobs, stop the daemons this object started (by PID), then end any process still
        running with this cluster's SLURM_CONF (job steps and jobs that outlived their daemon)."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            try:
                ids = [job["id"] for job in self.jobs() if job["state"] in ("PENDING", "RUNNING", "CONFIGURING")]
                if ids:
                    self.client("scancel", *ids, check=False)
                    deadline = time.monotonic() + 30
                    while time.monotonic() < deadline and any(
                        job["state"] in ("PENDING", "RUNNING", "COMPLETING") for job in self.jobs()
                    ):
                        time.sleep(0.5)
            except (subprocess.SubprocessError, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.get(name)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for pid in self.leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def leftover_pids(self) -> list[int]:
        """Processes (other than this one) whose environment names this cluster's slurm.conf."""
        marker = f"SLURM_CONF={self.config}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
