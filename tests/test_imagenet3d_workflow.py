"""ImageNet3D's three tasks and 3D-DST's classification pre-training through the whole workflow on a seconds-scale
config: joint classification and pose (synthetic and pseudo-real sets), linear probes of three feature kinds
(random, ImageNet weights from the torch cache, a trained variant) on the pseudo-real release, open-vocabulary pose
estimation beside its oracle, and classifiers (ResNet and Swin-T) trained on the workflow's stand-in ImageFolder
from scratch or after pre-training on the generated images."""

import hashlib
import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from test_workflow import REPO, job_counts
from workflow_runs import run, trained_tasks

from dst3d import evaluate
from dst3d.tables import read_csv
from dst3d.training import loop

TASKS = REPO / "config" / "tasks.yaml"
TINY = REPO / ".test" / "config" / "config.yaml"
PSEUDO_ROOT = "results/pseudo_real/PASCAL3D"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_config(workdir: Path) -> Path:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for layer in (yaml.safe_load(TINY.read_text()), yaml.safe_load(TASKS.read_text())):
        for key, value in layer.items():
            config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    config["pseudo_real"] = {
        "enabled": True,
        "train": {"images_per_category": 8, "shard_size": 8},
        "val": {"images_per_category": 4, "shard_size": 4},
        "textures": 3,
        "backgrounds": 4,
    }
    entry = {"format": "pascal3d", "root": PSEUDO_ROOT, "sources": ["imagenet"]}
    config["evaluate"] = {"real_sets": [{"name": "pseudo-real", "split": "val", **entry}]}
    config["train"].update({"real": [{"name": "pseudo", "split": "train", **entry}], "tasks": ["pose", "joint"]})
    config["tables"] = {
        "probing": {
            "sources": ["random-resnet18", "imagenet-resnet18", "composite-kcf"],
            "train_set": "pseudo",
            "eval_set": "pseudo-real",
            "epochs": 50,
        },
        "open_vocabulary": {
            "variants": ["composite-kcf"],
            "seen": ["car"],
            "novel": ["boat"],
            "eval_sets": ["synthetic-test", "pseudo-real"],
        },
    }
    config["tables"]["classification"] = {
        "train": "results/pseudo_real/ImageFolder/train",
        "val": "results/pseudo_real/ImageFolder/val",
        "ood": {"rendition": "results/pseudo_real/ImageFolder/rendition"},
        "classes": "classes.csv",
        "backbones": ["resnet18", "swin_t"],
        "pretraining": ["none", "composite-kcf"],
        "pretrain": {"optimizer": "adamw", "lr": 0.001},
        "finetune": {"optimizer": "adamw", "lr": 0.001},
    }
    # A class list as real ones come: a class without generated data has an empty category.
    (workdir / "classes.csv").write_text("folder,category\ncar,car\nboat,boat\nbackground,\n")
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _snakemake(workdir: Path, config: Path, *arguments: str, env: dict):
    configfiles = [config]
    return run(workdir, "--cores", "2", *arguments, configfiles=configfiles, env=env)


def test_tasks_config_plans_the_three_tables_on_the_embedded_default(tmp_path):
    result = run(tmp_path, "--cores", "2", "-n", configfiles=[REPO / "config" / "config.yaml", TASKS])
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    assert counts["probe_features"] == 2 and counts["probing_table"] == 1
    assert counts["train_open_vocabulary"] == 1 and counts["open_vocabulary_table"] == 1
    assert counts["joint_table"] == 1
    # train.tasks [pose, category, joint] for composite-kcf; its pose estimator is also the probed variant and the
    # open-vocabulary oracle, so it is trained once.
    assert trained_tasks(result.stdout) == {"pose": 1, "category": 1, "joint": 1}
    # 2 backbones: pre-trained on composite-kcf, then 2 rows x 2 backbones trained, each on val and rendition.
    assert counts["pretrain_classifier"] == 2 and counts["train_classification"] == 4
    assert counts["evaluate_classification"] == 8 and counts["write_pseudo_imagefolder"] == 1


@pytest.mark.slow
def test_imagenet3d_tasks_end_to_end(tmp_path):
    # ImageNet weights as torchvision would cache them, made here: random weights, saved where the cache is.
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = env["TORCH_HOME"]
    try:
        weights, _ = loop.pretrained_weights_path("resnet18")
    finally:
        os.environ.pop("TORCH_HOME") if previous is None else os.environ.update(TORCH_HOME=previous)
    weights.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(loop.build_model("resnet18", pretrained=False, outputs=1000).state_dict(), weights)
    config = _write_config(tmp_path)
    result = _snakemake(tmp_path, config, env=env)
    assert result.returncode == 0, result.stderr[-5000:]
    results = tmp_path / "results"
    tables = results / "tables"

    # Joint: one network, 123 pose bins + 2 classes, scored on both sets.
    checkpoint = torch.load(results / "train" / "composite-kcf" / "joint.pt", weights_only=False)
    assert checkpoint["outputs"] == 123 + 2 and checkpoint["task"] == "joint"
    joint = read_csv(tables / "joint.csv")
    assert set(joint["eval_set"]) == {"synthetic-test", "pseudo-real"}
    assert {"class_accuracy", "acc_pi_6", "aware_acc_pi_6"} <= set(joint.columns)
    assert (joint["aware_acc_pi_6"] <= joint[["class_accuracy", "acc_pi_6"]].min(axis=1) + 1e-12).all()
    predictions = read_csv(results / "evaluate" / "composite-kcf" / "joint_predictions.csv")
    pooled = joint[(joint["eval_set"] == "synthetic-test") & (joint["category"] == evaluate.POOLED)].iloc[0]
    right = (predictions["category"] == predictions["predicted_category"]) & (predictions["error"] < 3.14159265 / 6)
    assert pooled["aware_acc_pi_6"] == pytest.approx(right.mean())

    # Probing: one row set per source, each traced to the weights it read.
    probing = read_csv(tables / "probing.csv")
    assert list(dict.fromkeys(probing["source"])) == ["random-resnet18", "imagenet-resnet18", "composite-kcf"]
    assert set(probing["eval_set"]) == {"pseudo-real"} and set(probing["train_set"]) == {"pseudo"}
    by_source = probing.groupby("source").first()
    assert by_source.loc["imagenet-resnet18", "checkpoint_sha256"] == _sha256(weights)
    assert by_source.loc["composite-kcf", "checkpoint_sha256"] == _sha256(
        results / "train" / "composite-kcf" / "pose.pt"
    )
    assert pd.isna(by_source.loc["random-resnet18", "checkpoint_sha256"])
    assert "Acc@pi/6" in (tables / "probing.md").read_text()

    # Open vocabulary: trained on cars only, scored on boats, the oracle's numbers from its own predictions.
    seen_only = torch.load(results / "open_vocabulary" / "composite-kcf" / "model.pt", weights_only=False)
    oracle = torch.load(results / "train" / "composite-kcf" / "pose.pt", weights_only=False)
    assert seen_only["seen_categories"] == ["car"] and 0 < seen_only["images"] < oracle["images"]
    table = read_csv(tables / "open_vocabulary.csv")
    assert set(table["category"]) == {"boat", evaluate.POOLED, evaluate.PER_CATEGORY}
    oracle_predictions = read_csv(results / "evaluate" / "composite-kcf" / "predictions.csv")
    boats = oracle_predictions[oracle_predictions["category"] == "boat"]
    row = table[(table["eval_set"] == "synthetic-test") & (table["category"] == "boat")].iloc[0]
    assert row["oracle_acc_pi_6"] == pytest.approx((boats["error"] < 3.14159265 / 6).mean())
    assert row["images"] == len(boats)

    # Classification: rows = pre-training, columns = backbone x set; fine-tuned from the pre-trained checkpoint,
    # on every class of the ImageFolder (background has no generated images), head rows of mapped classes carried.
    table = read_csv(tables / "classification.csv")
    assert list(table["pretraining"]) == ["none (real only)", "composite-kcf"]
    assert list(table.columns[1:]) == [
        f"{backbone}/{name}/accuracy" for backbone in ("resnet18", "swin_t") for name in ("val", "rendition")
    ]
    metrics = read_csv(tables / "classification_metrics.csv")
    assert set(metrics.loc[metrics["eval_set"] == "rendition", "classes"]) == {2}
    for backbone, head in (("resnet18", "fc"), ("swin_t", "head")):
        pretrained_path = results / "classification" / "pretrain" / "composite-kcf" / f"{backbone}.pt"
        pretrained = torch.load(pretrained_path, weights_only=False)
        assert pretrained["settings"]["backbone"] == backbone and pretrained["categories"] == ["car", "boat"]
        tuned = torch.load(results / "classification" / "composite-kcf" / backbone / "model.pt", weights_only=False)
        assert tuned["init_checkpoint_sha256"] == _sha256(pretrained_path)
        assert tuned["categories"] == ["background", "boat", "car"] and tuned["outputs"] == 3
        assert tuned["class_mapping"] == {"background": None, "boat": "boat", "car": "car"}
        scratch = torch.load(results / "classification" / "none" / backbone / "model.pt", weights_only=False)
        assert "init_checkpoint_sha256" not in scratch
        # The backbone moved from its pre-trained start, and the start was the pre-trained one.
        first = next(key for key in pretrained["model"] if not key.startswith(head))
        assert not torch.equal(tuned["model"][first], scratch["model"][first])

    again = _snakemake(tmp_path, config, "-n", env=env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
