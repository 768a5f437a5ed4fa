"""The linters, as part of the suite: ruff (lint rules and formatting, configured in pyproject.toml) on the
Python code, snakefmt on the Snakefile and the rule files. A finding fails the suite; run `make format` to apply
the formatters (lint findings are fixed by hand or with `ruff check --fix`)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["snakefmt", "--line-length", "120", "--check", "Snakefile", "rules"],
    ],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_linter_finds_nothing(command):
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
