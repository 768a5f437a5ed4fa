"""Progress lines of long jobs: k/N, the rate and an ETA, at most every few seconds and always at the end."""

import logging

from dst3d.logs import Progress, eta_text


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_logs_rate_and_eta_at_most_every_interval_and_at_the_end(caplog):
    clock = Clock()
    log = logging.getLogger("progress-test")
    progress = Progress(log, 10, "images", every_s=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="progress-test"):
        for _ in range(4):  # 4 images in 8 s: under the interval, nothing logged
            clock.now += 2
            progress.step()
        assert caplog.messages == []
        clock.now += 2  # 5 images in 10 s: 0.5 images/s, 5 left -> 10 s
        progress.step()
        clock.now += 2
        progress.step()  # 2 s after the last line: quiet
        for _ in range(4):
            clock.now += 2
            progress.step()
    assert caplog.messages == [
        "5/10 images, 0.50 images/s, ETA 0:00:10",
        "10/10 images, 0.50 images/s, done",
    ]


def test_eta_text_reads_hours_minutes_seconds():
    assert eta_text(3725.4, 1, 2) == "ETA 1:02:05"
    assert eta_text(float("inf"), 0, 2) == "ETA unknown"
    assert eta_text(0, 2, 2) == "done"
