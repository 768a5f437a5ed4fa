"""The KCF, training and evaluation rules as a user drives them: per-category KCF, the ablation variants, the
category classifier and real sets in the DAG (dry runs), config errors, and (slow) a small real run that
fills both tables from real sets in the four formats."""

from pathlib import Path

import pytest
import torch
import yaml
from real_set_fixtures import SPLITS, WRITERS
from test_workflow import REPO, job_counts, snakemake
from workflow_runs import trained_tasks

from dst3d.tables import read_csv

TINY = REPO / ".test" / "config" / "config.yaml"


def run(workdir: Path, overrides: dict, *arguments: str):
    """Snakemake on the embedded default with .test/config/config.yaml and ``overrides`` laid over it."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for layer in (yaml.safe_load(TINY.read_text()), overrides):
        for key, value in layer.items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return snakemake(workdir, *arguments, configfile=path)


def test_per_category_kcf_plans_folds_times_categories(tmp_path):
    result = run(tmp_path, {"kcf": {"per_category": True, "folds": 3}}, "-n")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["kcf_fold"] == 3 * 2 and counts["kcf_select"] == 1  # .test: car and boat
    assert trained_tasks(result.stdout) == {"pose": 1} and "evaluate_pose_real" not in counts


def test_ablation_tasks_and_real_sets_are_one_dag(tmp_path):
    overrides = {
        "train": {"variants": ["composite-all", "composite-kcf"], "tasks": ["pose", "category"]},
        "evaluate": {
            "real_sets": [
                {"name": "p3d", "format": "pascal3d", "root": str(tmp_path)},
                {"name": "ood-weather", "format": "oodcv", "root": str(tmp_path), "split": "weather"},
            ]
        },
    }
    result = run(tmp_path, overrides, "-n")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert trained_tasks(result.stdout) == {"pose": 2, "category": 2}
    for rule in ("evaluate_pose", "evaluate_category_classifier"):
        assert counts[rule] == 2, rule
    assert counts["evaluate_pose_real"] == 2 * 2 and counts["kcf_select"] == 1
    assert counts["pose_table"] == 1 and counts["category_table"] == 1


@pytest.mark.parametrize(
    "real_sets, expected",
    [
        ([{"name": "x", "format": "pascal5d", "root": "/data"}], "pascal5d"),
        ([{"name": "x", "format": "pascal3d"}], "root"),
        (
            [{"name": "x", "format": "pascal3d", "root": "/a"}, {"name": "x", "format": "oodcv", "root": "/b"}],
            "same name",
        ),
        ([{"name": "x", "format": "nemo", "root": "/a", "occlusion_level": 5}], "occlusion_level"),
        ([{"name": "x", "format": "oodcv", "root": "/a", "nuisance": "weather"}], "apply to format nemo only"),
    ],
)
def test_bad_real_set_config_says_what_is_wrong(tmp_path, real_sets, expected):
    result = run(tmp_path, {"evaluate": {"real_sets": real_sets}}, "-n")
    assert result.returncode != 0
    assert expected in result.stderr + result.stdout


@pytest.mark.slow
def test_ablation_classifier_and_real_sets_end_to_end(tmp_path):
    real_sets = []
    for format_name, writer in WRITERS.items():
        writer(tmp_path / format_name)
        real_sets.append(
            {
                "name": format_name,
                "format": format_name,
                "root": str(tmp_path / format_name),
                "split": SPLITS[format_name],
            }
        )
    overrides = {
        "categories": ["car", "airplane"],
        "train": {"variants": ["composite-all", "composite-kcf"], "tasks": ["pose", "category"]},
        "evaluate": {"real_sets": real_sets},
    }
    result = run(tmp_path, overrides)
    assert result.returncode == 0, result.stderr[-5000:]
    results = tmp_path / "results"

    pose_table = read_csv(results / "tables" / "pose_metrics.csv")
    assert set(pose_table["variant"]) == {"composite-all", "composite-kcf"}
    assert set(pose_table["eval_set"]) == {"synthetic-test", *WRITERS}
    # Real-set rows use our category names (PASCAL3D+'s aeroplane is our airplane) and only our categories.
    assert set(pose_table.loc[pose_table["eval_set"] == "pascal3d", "category"]) == {
        "airplane",
        "car",
        "mean (pooled)",
        "mean (per-category)",
    }
    assert set(pose_table.loc[pose_table["eval_set"] == "objectnet3d", "category"]) == {
        "car",
        "mean (pooled)",
        "mean (per-category)",
    }
    hashes = pose_table.groupby("variant")["manifest_hash"].nunique()
    assert (hashes == 1).all() and pose_table["manifest_hash"].nunique() == 2

    category_table = read_csv(results / "tables" / "category_metrics.csv")
    assert set(category_table["variant"]) == {"composite-all", "composite-kcf"}
    # Exact: 4 held-out images per category. (This seconds-scale run checks the plumbing, not learning, which
    # tests/test_pose.py checks against lr = 0: its 2 epochs on 12 images give 0.5 here.)
    assert category_table.set_index(["variant", "category"])["images"].to_dict() == {
        (variant, category): count
        for variant in ("composite-all", "composite-kcf")
        for category, count in (("airplane", 4), ("car", 4), ("mean (pooled)", 8), ("mean (per-category)", 8))
    }

    checkpoint = torch.load(results / "train" / "composite-kcf" / "pose.pt", weights_only=False)
    assert checkpoint["config"]["train"]["variants"] == ["composite-all", "composite-kcf"]
    kcf_rows = pose_table[pose_table["variant"] == "composite-kcf"]
    assert checkpoint["manifest_hash"] == kcf_rows["manifest_hash"].iloc[0]
    assert checkpoint["images"] == 2 * 11  # ceil(0.9 x 12) kept of each category's 12 training images
