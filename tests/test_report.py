"""The Snakemake report a researcher opens first, opened in a real browser (headless Chromium): it loads, shows
the workflow description with the run's settings, and holds every figure and metrics table with its caption;
the embedded figures are the run's own files and the embedded tables render as HTML tables."""

from __future__ import annotations

import base64
import html
import os
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser import chromium, rendered_dom
from workflow_runs import reference_run, snakemake_command

from dst3d.tables import html_page, read_csv

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def browser():
    binary, reason = chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the report test: {reason}")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    workdir = reference_run(tmp_path_factory)
    path = tmp_path_factory.mktemp("report") / "report.html"
    result = subprocess.run(
        snakemake_command(workdir, "--report", str(path)), capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return workdir, path


def embedded(report_html: str, path: str) -> tuple[str, bytes]:
    """(caption, file bytes) of one result the report embeds, by its path in the run."""
    match = re.search(
        re.escape(f'"{path}": {{') + r'.*?"caption": "(.*?)", "mime_type".*?"data_uri": "data:[^"]*?;base64,([^"]+)"',
        report_html,
    )
    assert match, f"{path} is not in the report"
    return html.unescape(match.group(1)), base64.b64decode(match.group(2))


def text_of(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_the_report_loads_in_chromium_with_its_description_and_categories(browser, report):
    workdir, path = report
    text = text_of(rendered_dom(browser, path))
    assert "Loading Snakemake Report" not in text.split("Snakemake Report", 2)[-1]  # the app replaced the loader
    assert "How to read this report" in text and "Figures" in text and "Tables" in text
    # The description's templates are filled from the run's configuration.
    assert "Run: seed 0, categories car, boat, training variants composite-kcf." in text


def test_every_figure_is_embedded_as_the_runs_file_with_its_caption(report):
    workdir, path = report
    page = path.read_text()
    for figure, words in (
        ("samples.png", "Sample grid"),
        ("viewpoints.png", "azimuth"),
        ("consistency_composite.png", "consistency"),
        ("kcf_composite.png", "discard threshold"),
        ("training.png", "Training curves"),
        ("accuracy.png", "Acc@pi/6"),
    ):
        caption, data = embedded(page, f"results/figures/{figure}")
        assert words in caption and "mailto:" not in caption, (figure, caption)  # rst links "a@b" as e-mail
        shown = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        on_disk = cv2.imread(str(workdir / "results" / "figures" / figure), cv2.IMREAD_UNCHANGED)
        assert shown is not None and np.array_equal(shown, on_disk), figure


def test_every_metrics_table_is_an_html_table_in_the_report(browser, report, tmp_path):
    workdir, path = report
    report_html = path.read_text()
    for table, title in (("pose_metrics", "Pose accuracy"), ("dataset", "Dataset statistics")):
        caption, data = embedded(report_html, f"results/report/{table}.html")
        assert title in caption and f"results/tables/{table}.csv" in caption
        frame = read_csv(workdir / "results" / "tables" / f"{table}.csv")
        assert data.decode() == html_page(frame, data.decode().split("<title>", 1)[1].split("</title>", 1)[0])
        page = tmp_path / f"{table}.html"
        page.write_bytes(data)
        cells = text_of(rendered_dom(browser, page, budget_ms=2000))
        if table == "pose_metrics":
            pooled = frame[frame["category"] == "mean (pooled)"].iloc[0]
            assert "Acc@pi/6" in cells and "mean (pooled)" in cells
            assert f"{100 * pooled['acc_pi_6']:.1f}" in cells
        else:
            assert "generated" in cells and "kcf_kept" in cells
