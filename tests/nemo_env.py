"""The NeMo interpreter the tests hand PyTorch3D work to (README, "NeMo"): ``DST3D_NEMO_PYTHON`` where set,
else the repository's ``.venv-nemo`` that ``make test`` builds. A missing one fails the test that needs it
with what to run: the tests never skip NeMo."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def nemo_python() -> str:
    path = Path(os.environ.get("DST3D_NEMO_PYTHON") or REPO / ".venv-nemo" / "bin" / "python")
    if not path.exists():
        pytest.fail(
            f"the NeMo interpreter {path} does not exist: run `make nemo-setup` (make test builds it) or set "
            "DST3D_NEMO_PYTHON to a Python with torch 2.2.2 and pytorch3d"
        )
    return str(path)


def environment() -> dict:
    """The environment for the NeMo interpreter: this checkout's dst3d first on its path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
