"""Logging for workflow jobs: everything a job prints, Blender's C-level output included, goes to its log."""

from __future__ import annotations

import logging
import os
import sys


def send_output_to(log_path: str, name: str) -> logging.Logger:
    """Point file descriptors 1 and 2 at ``log_path`` (appending) and return a logger that writes there."""
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr, force=True
    )
    return logging.getLogger(name)
