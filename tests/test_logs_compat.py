"""Job logging catches C-level output; torchvision imports on a CPU-only torch. Both run in fresh interpreters:
each rebinds process-wide state (file descriptors 1 and 2; torchvision's operator registry)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def python(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, cwd=REPO, timeout=300
    )


def test_job_log_holds_python_logging_prints_and_c_level_writes(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("earlier attempt\n")
    result = python(f"""
        import ctypes, os, sys
        from dst3d.logs import send_output_to
        logger = send_output_to({str(log)!r}, "job")
        logger.info("from logging")
        print("from print")
        sys.stderr.write("from stderr\\n")
        os.write(1, b"raw fd 1\\n")
        libc = ctypes.CDLL(None)
        libc.puts(b"from C puts")
        libc.fflush(None)
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""  # nothing escaped to the terminal
    text = log.read_text()
    assert text.startswith("earlier attempt\n")  # appended, as a retried job's log is
    for line in ("job INFO from logging", "from print", "from stderr", "raw fd 1", "from C puts"):
        assert line in text, (line, text)


def test_torchvision_models_import_and_run_through_the_compat_layer():
    result = python("""
        import torch
        from dst3d.torch_compat import import_torchvision
        torchvision = import_torchvision()
        assert import_torchvision() is torchvision  # the second call reuses the module
        model = torchvision.models.resnet18(weights=None, num_classes=5).eval()
        with torch.no_grad():
            print(tuple(model(torch.zeros(1, 3, 32, 32)).shape))
        """)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "(1, 5)"
