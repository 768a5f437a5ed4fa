"""The published presets plan their whole run from a clean checkout: config/p3d_diffusion.yaml and
config/dst3d_imagenet.yaml, each on a stand-in tree in the published layouts written at the preset's own paths."""

import os

import pytest
from test_workflow import REPO, job_counts
from workflow_runs import run

from dst3d.testing import stand_in

PRESETS = {
    # 12 categories x (7000 / 250 + 500 / 250) shards; composite and controlnet generate each; no KCF.
    # NeMo on both variants, CC3D of each from PASCAL3D+'s unlabelled training split, every model on both evaluation
    # sets; one cuboid mesh per category.
    "p3d_diffusion": {
        "render_shard": 360,
        "generate_shard": 720,
        "train_model": 2,
        "nemo_mesh": 12,
        "train_nemo": 2,
        "cc3d_nemo": 2,
        "evaluate_nemo": 4,
        "evaluate_nemo_real": 4,
    },
    # 100 classes x (2500 / 250 + 1) shards; 5 folds per class; 2 rows x 2 backbones of classifiers.
    "dst3d_imagenet": {"render_shard": 1100, "kcf_fold": 500, "train_classification": 4, "pretrain_classifier": 2},
}


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_plans_its_whole_run_on_a_stand_in_tree(preset, tmp_path):
    path = REPO / "config" / f"{preset}.yaml"
    stand_in.write_preset_tree(path, tmp_path)
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty-torch-cache")}
    result = run(tmp_path, "--cores", "2", "-n", configfiles=[REPO / "config" / "config.yaml", path], env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    counts = job_counts(result.stdout)
    for rule, count in PRESETS[preset].items():
        assert counts.get(rule) == count, (rule, counts.get(rule))
    # What the stand-in cannot hold is named before any job: the ImageNet weights of the official initialisation.
    assert "train.pretrained is true but the ImageNet weights of resnet50" in result.stdout + result.stderr
    if PRESETS[preset].get("train_nemo"):
        assert "nemo.pretrained is true but the ImageNet weights of resnet50" in result.stdout + result.stderr
