"""The tables for reading (Markdown, LaTeX) and the dataset statistics, by hand."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dst3d import tables

REPO = Path(__file__).resolve().parent.parent


def test_markdown_and_latex_format_accuracies_errors_counts_and_missing_cells():
    table = pd.DataFrame(
        [
            {"variant": "a_b", "images": 40, "acc_pi_6": 0.53125, "median_error_deg": 27.44, "kcf_kept": np.nan},
            {"variant": "c", "images": 8, "acc_pi_6": 1.0, "median_error_deg": 0.0, "kcf_kept": 7.0},
        ]
    ).assign(manifest_hash="f" * 64, checkpoint_sha256="e" * 64)
    markdown = tables.markdown(table, "caption")
    assert markdown.splitlines()[2] == "| variant | images | Acc@pi/6 | MedErr | kcf_kept |"
    assert "| a_b | 40 | 53.1 | 27.4 |  |" in markdown and "| c | 8 | 100.0 | 0.0 | 7 |" in markdown
    assert "f" * 64 not in markdown  # the hashes stay in the CSV
    latex = tables.latex(table, "caption")
    assert r"a\_b & 40 & 53.1 & 27.4 &  \\" in latex and r"Acc@$\pi$/6" in latex


def test_dataset_statistics_count_generated_empty_and_kept_images():
    records = pd.DataFrame(
        {
            "image_id": ["train-car-0", "train-car-1", "train-car-2", "train-boat-0"],
            "category": ["car", "car", "car", "boat"],
            "bbox_x0": [3.0, -1.0, 5.0, 2.0],
        }
    )
    test = pd.DataFrame({"image_id": ["test-car-0"], "category": ["car"], "bbox_x0": [1.0]})
    kept = {"composite": pd.DataFrame({"image_id": ["train-car-0", "train-car-2", "train-boat-0"]})}
    table = tables.dataset_statistics(
        {("composite", "train"): records, ("composite", "test"): test}, kept, {"composite": "abc"}
    ).set_index(["split", "category"])
    assert table.loc[("train", "car"), ["generated", "empty_mask", "kcf_kept", "kcf_dropped"]].tolist() == [3, 1, 2, 1]
    assert table.loc[("train", "boat"), "kcf_kept"] == 1
    assert pd.isna(table.loc[("test", "car"), "kcf_kept"])  # KCF filters the training split only
    assert set(table["settings_hash"]) == {"abc"}
    assert tables.settings_hash({"a": 1, "b": [2]}) == tables.settings_hash({"b": [2], "a": 1})
    assert tables.settings_hash({"a": 1}) != tables.settings_hash({"a": 2})


def _read_in_subprocess(path, code):
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=REPO)


def test_digest_columns_are_read_as_text_not_parsed_as_numbers(tmp_path):
    """A hex digest like 9e647828529417f9... reads as a float with a huge exponent, on which pandas 2.3.3's C parser
    crashes the interpreter (SIGSEGV; CI died of it once, reading category_metrics.csv); tables.read_csv reads
    digests as text. In a subprocess, so a crash is a failure, not the end of the suite. Digest columns are found by
    name (a new ``..._sha256`` column too), and a short all-digit digest keeps its leading zero."""
    path = tmp_path / "metrics.csv"
    path.write_text(
        "variant,manifest_hash,checkpoint_sha256,adapted_from_sha256,acc_pi_6\n"
        "a,01234567,9e647828529417f9964f430a7b61853b,9e6478285294,0.1\n"
    )
    code = (
        "import sys; from dst3d import tables; t = tables.read_csv(sys.argv[1]); "
        "print(*t.loc[0, ['manifest_hash', 'checkpoint_sha256', 'adapted_from_sha256']], repr(t.loc[0, 'acc_pi_6']))"
    )
    result = _read_in_subprocess(path, code)
    assert result.returncode == 0, result
    assert result.stdout.split() == ["01234567", "9e647828529417f9964f430a7b61853b", "9e6478285294", "0.1"]


def test_digest_shaped_text_in_any_column_does_not_crash_the_reader(tmp_path):
    """The same field in a column whose name says nothing (a model id, a free note) is parsed by Python's float
    parser (``float_precision="round_trip"``), which has no such bug: the column stays text and numbers stay exact."""
    path = tmp_path / "models.csv"
    path.write_text("model_id,scale\n9e647828529417f9964f430a7b61853b,0.30000000000000004\nplain,2\n")
    code = "import sys; from dst3d import tables; t = tables.read_csv(sys.argv[1]); print(t.loc[0, 'model_id'], repr(t.loc[0, 'scale']))"
    result = _read_in_subprocess(path, code)
    assert result.returncode == 0, result
    assert result.stdout.split() == ["9e647828529417f9964f430a7b61853b", "0.30000000000000004"]
