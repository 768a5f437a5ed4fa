"""A job reruns only when what it reads changes: after one complete run of the tiny config (the session's
reference run, tests/workflow_runs.py), each config change below is dry-run and must plan exactly the jobs whose
output it changes. Threads and devices are resources, not settings; a new real set adds its own
evaluation and the table, nothing else. The last cases are the controls: a setting that does change the data
plans everything after it."""

from __future__ import annotations

import pytest
import yaml
from real_set_fixtures import write_pascal3d
from workflow_runs import CONFIGS, job_counts, reference_run, run

pytestmark = pytest.mark.slow

NOTHING = {}
# The tiny config (.test/config/config.yaml): 2 categories, 2 + 1 shards each, 2 KCF folds over all categories.
AFTER_KCF_SELECT = {
    "kcf_select": 1,
    "train_model": 1,
    "evaluate_pose": 1,
    "pose_table": 1,
    "export_coco": 1,  # the COCO and NeMo exports of composite-kcf hold the kept images, its card counts them
    "export_nemo": 1,
    "export_bop": 1,
    "dataset_card": 1,
    "dataset_table": 1,  # and the dataset statistics count them
    "table_html": 2,  # the report pages of both tables
    "plot_kcf": 1,  # and the figures of KCF's selection, the training curves and the accuracy
    "plot_training": 1,
    "plot_accuracy": 1,
    "all": 1,
}
# The figure shows the edge maps; the consistency check compares them with the generated images.
AFTER_EDGES = {"detect_edges": 6, "plot_samples": 1, "kcf_consistency": 1, "plot_consistency": 1, "all": 1}
AFTER_RENDER = {
    "render_shard": 6,
    "detect_edges": 6,
    "generate_shard": 6,
    "kcf_fold": 2,
    "kcf_consistency": 1,
    "plot_consistency": 1,
    "plot_samples": 1,
    "plot_viewpoints": 1,
    **AFTER_KCF_SELECT,
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return reference_run(tmp_path_factory)


def planned(workdir, tmp_path, overlay: dict) -> dict[str, int]:
    path = tmp_path / "change.yaml"
    path.write_text(yaml.safe_dump(overlay))
    result = run(workdir, "-n", configfiles=[*CONFIGS, path])
    assert result.returncode == 0, result.stderr[-3000:]
    if "Nothing to be done" in result.stdout + result.stderr:
        return {}
    counts = job_counts(result.stdout)
    counts.pop("total")
    return counts


@pytest.mark.parametrize(
    "overlay, expected",
    [
        ({}, NOTHING),
        ({"render": {"threads": 1, "device": "gpu"}}, NOTHING),
        ({"edges": {"threads": 1}}, NOTHING),
        ({"train": {"threads": 1, "device": "cpu"}}, NOTHING),
        ({"kcf": {"train": {"device": "cpu"}}}, NOTHING),
        ({"prompts": {"openai": {"timeout_s": 5, "max_retries": 1}}}, NOTHING),
        ({"prompts": {"openai": {"model": "another-model"}}}, NOTHING),  # the template backend does not read it
        ({"generate": {"controlnet": {"steps": 3}}}, NOTHING),  # no controlnet variant is trained here
        ({"kcf": {"policy": {"mode": "fraction", "keep_fraction": 0.8}}}, AFTER_KCF_SELECT),
        (
            {"evaluate": {"flip": True}},
            {"evaluate_pose": 1, "pose_table": 1, "table_html": 1, "plot_accuracy": 1, "all": 1},
        ),
        (
            {"kcf": {"consistency": {"tolerance_px": 3}}},
            {"kcf_consistency": 1, "plot_consistency": 1, "all": 1},
        ),  # the policy reads KCF only
        (
            {"kcf": {"policy": {"mode": "fraction", "keep_fraction": 0.9, "scores": ["kcf", "consistency"]}}},
            AFTER_KCF_SELECT,
        ),
        ({"edges": {"low_threshold": 50}}, AFTER_EDGES),
        ({"render": {"samples": 3}}, AFTER_RENDER),
    ],
    ids=[
        "unchanged",
        "render-threads-device",
        "edges-threads",
        "train-threads-device",
        "kcf-device",
        "openai-retries",
        "openai-unused",
        "unused-backend",
        "kcf-policy",
        "evaluate-flip",
        "consistency-unused",
        "policy-both-scores",
        "edge-threshold",
        "render-samples",
    ],
)
def test_a_change_plans_only_the_jobs_it_changes(finished, tmp_path, overlay, expected):
    assert planned(finished, tmp_path, overlay) == expected


def test_a_new_real_set_entry_evaluates_only_on_it(finished, tmp_path):
    write_pascal3d(tmp_path / "pascal3d")
    entry = {"name": "p3d", "format": "pascal3d", "root": str(tmp_path / "pascal3d")}
    assert planned(finished, tmp_path, {"evaluate": {"real_sets": [entry]}}) == {
        "evaluate_pose_real": 1,
        "pose_table": 1,
        "table_html": 1,
        "plot_accuracy": 1,
        "all": 1,
    }


def test_adding_the_protocols_after_a_run_plans_only_their_own_jobs(finished, tmp_path):
    """config/protocols.yaml over a finished run: the pseudo-real set, the real variants and the tables are
    added; nothing of the synthetic data or of composite-kcf is redone, only the pose table gains rows."""
    overlay = yaml.safe_load((CONFIGS[0].parent / "protocols.yaml").read_text())
    overlay["pseudo_real"].update(
        {"train": {"images_per_category": 4, "shard_size": 4}, "val": {"images_per_category": 2, "shard_size": 2}}
    )
    overlay["tables"]["few_shot"]["shots"] = [2]
    counts = planned(finished, tmp_path, overlay)
    # real-pseudo, its fine-tuned version, real-pseudo-2shot, its fine-tuned version; 2 categories x 2 splits.
    assert counts == {
        "build_pseudo_real_assets": 1,
        "render_shard": 4,
        "write_pseudo_real": 1,
        "select_real": 2,
        "train_model": 4,
        "evaluate_pose": 4,
        "evaluate_pose_real": 5,  # the 4 new variants and composite-kcf on the new real set
        "pose_table": 1,
        "protocol_table": 2,
        "table_html": 3,  # the report pages of the pose table and both protocol tables
        "plot_training": 1,
        "plot_accuracy": 1,
        "all": 1,
    }
