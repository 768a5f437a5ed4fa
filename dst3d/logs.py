"""Logging for workflow jobs: everything a job prints, Blender's C-level output included, goes to its log."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable


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


class Progress:
    """k/N, the rate and an ETA of a long loop, logged at most every ``every_s`` seconds and at the end.

    ``step(n)`` after each n items done; ``clock`` (seconds, monotonic) is for tests."""

    def __init__(
        self,
        log: logging.Logger,
        total: int,
        what: str = "images",
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.log, self.total, self.what, self.every_s, self.clock = log, int(total), what, every_s, clock
        self.done = 0
        self.started = self.last = clock()

    def step(self, count: int = 1) -> None:
        self.done += count
        now = self.clock()
        if now - self.last < self.every_s and self.done < self.total:
            return
        self.last = now
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        self.log.info(
            "%d/%d %s, %.2f %s/s, %s",
            self.done,
            self.total,
            self.what,
            rate,
            self.what,
            eta_text(left, self.done, self.total),
        )


def eta_text(seconds: float, done: int, total: int) -> str:
    """``ETA h:mm:ss`` for ``seconds`` left, ``done`` when nothing is left."""
    if done >= total:
        return "done"
    if seconds == float("inf"):
        return "ETA unknown"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours:d}:{minutes:02d}:{secs:02d}"
