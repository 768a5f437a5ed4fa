"""Headless Chromium for the report test: Debian's `chromium`, installed with apt-get when missing (as root, as
CI runs); elsewhere the test is skipped with the reason, and under CI it fails instead."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PACKAGE = "chromium"


def chromium() -> tuple[str | None, str]:
    """(path of the chromium binary or None, why not)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found, ""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None, "chromium is not installed and installing Debian's package needs root and apt-get"
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", PACKAGE],
    ):
        result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900)
        if result.returncode != 0:
            return None, f"`{' '.join(command)}` failed: {(result.stdout + result.stderr)[-2000:]}"
    found = shutil.which("chromium")
    return (found, "") if found else (None, f"after installing {PACKAGE}, no chromium on PATH")


def rendered_dom(binary: str, page: Path, budget_ms: int = 20000) -> str:
    """The page's DOM after its scripts ran (Chromium's --dump-dom, with virtual time to let them finish)."""
    result = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
