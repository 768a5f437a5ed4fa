"""ImageNet3D's tasks in the package: the linear probe (exact pose features vs random ones), the joint model's
3D-aware accuracy by hand, the open-vocabulary table, and the config checks that stop a run before any job."""

import numpy as np
import pandas as pd
import pytest
import torch

from dst3d import evaluate, imagenet3d, preflight
from dst3d.config_schema import validate_config
from dst3d.training import joint, loop, pose, probing

PROBE = {"epochs": 300, "lr": 0.05, "weight_decay": 1e-4}


def _poses(rng, count):
    return pd.DataFrame(
        {
            "azimuth": rng.uniform(0, 2 * np.pi, count),
            "elevation": rng.uniform(-0.3, 1.0, count),
            "theta": rng.normal(0, 0.15, count),
        }
    )


def _exact_features(frame):
    """Features from which the bins are linearly decodable: cosine and sine of each angle."""
    angles = frame[["azimuth", "elevation", "theta"]].to_numpy()
    return torch.tensor(np.concatenate([np.cos(angles), np.sin(angles)], axis=1), dtype=torch.float32)


def _probe_accuracy(train_features, train, test_features, test):
    probe, history = probing.fit_probe(train_features, pose.pose_labels(train), PROBE, seed=0)
    assert history[-1] < history[0]
    predicted = probing.predict_poses(probe, test_features)
    errors = evaluate.pose_errors(test[["azimuth", "elevation", "theta"]].to_numpy(), predicted)
    return float(np.mean(errors < np.pi / 6))


def test_probe_reads_the_pose_from_features_that_encode_it_and_not_from_noise():
    rng = np.random.default_rng(0)
    train, test = _poses(rng, 600), _poses(rng, 200)
    assert _probe_accuracy(_exact_features(train), train, _exact_features(test), test) >= 0.95
    noise = torch.from_numpy(rng.normal(size=(800, 64)).astype(np.float32))
    # Chance here: about 1 in 6 poses lies within pi/6 of any fixed guess (azimuth uniform on the circle).
    assert _probe_accuracy(noise[:600], train, noise[600:], test) <= 0.2


def test_probe_is_deterministic_for_a_seed():
    rng = np.random.default_rng(1)
    train = _poses(rng, 50)
    features = _exact_features(train)
    first, _ = probing.fit_probe(features, pose.pose_labels(train), {**PROBE, "epochs": 20}, seed=3)
    second, _ = probing.fit_probe(features, pose.pose_labels(train), {**PROBE, "epochs": 20}, seed=3)
    assert torch.equal(first.linear.weight, second.linear.weight)


@pytest.mark.parametrize(
    "name, message",
    [
        ("random-resnet7", "resnet7"),
        ("imagenet-vgg16", "vgg16"),
        ("composite-kcf", "none of random-<backbone>"),
    ],
)
def test_unknown_feature_sources_name_the_key(name, message):
    with pytest.raises(ValueError, match="tables.probing.sources") as error:
        probing.parse_source(name, ["composite-all"])
    assert message in str(error.value)


def test_feature_sources_are_what_they_say(tmp_path, monkeypatch):
    assert probing.parse_source("composite-all", ["composite-all"]).kind == "variant"
    random_source = probing.parse_source("random-resnet18", [])
    first = probing.feature_extractor(random_source, seed=5)
    second = probing.feature_extractor(random_source, seed=5)
    images = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    features = probing.extract_features(first, images, 32, 2)
    assert features.shape == (3, 512) and torch.equal(features, probing.extract_features(second, images, 32, 2))
    assert all(not parameter.requires_grad for parameter in first.parameters())
    # ImageNet weights come from the torch cache, never a download; a missing file says where it goes.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(loop.PretrainedWeightsMissing, match="resnet18"):
        probing.feature_extractor(probing.parse_source("imagenet-resnet18", []), seed=0)
    path, _ = loop.pretrained_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.manual_seed(9)
    saved = loop.build_model("resnet18", pretrained=False, outputs=1000).state_dict()
    torch.save(saved, path)
    loaded = probing.feature_extractor(probing.parse_source("imagenet-resnet18", []), seed=0)
    assert torch.equal(loaded.state_dict()["conv1.weight"], saved["conv1.weight"])


def test_three_d_aware_accuracy_by_hand():
    # Four objects: class and pose right; class right, pose off by 90 degrees; class wrong, pose right; both wrong.
    frame = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "category": ["car", "car", "boat", "boat"],
            "azimuth": [0.5, 0.5, 1.0, 1.0],
            "elevation": [0.2] * 4,
            "theta": [0.0] * 4,
        }
    )
    categories = ["car", "boat"]
    predicted_pose = frame[["azimuth", "elevation", "theta"]].to_numpy().copy()
    predicted_pose[[1, 3], 0] += np.pi / 2
    logits = torch.full((4, pose.POSE_OUTPUTS + 2), -10.0)
    labels = pose.pose_labels(pd.DataFrame(predicted_pose, columns=["azimuth", "elevation", "theta"]))
    for row, bins in enumerate(labels):
        for angle, index in enumerate(bins):
            logits[row, angle * 41 + index] = 10.0
    for row, predicted_class in enumerate(["car", "car", "car", "car"]):
        logits[row, pose.POSE_OUTPUTS + categories.index(predicted_class)] = 10.0
    predictions = joint.predictions_table(frame, logits, categories)
    table = joint.metrics_table(predictions).set_index("category")
    assert table.loc["car", ["class_accuracy", "acc_pi_6", "aware_acc_pi_6"]].tolist() == [1.0, 0.5, 0.5]
    assert table.loc["boat", ["class_accuracy", "acc_pi_6", "aware_acc_pi_6"]].tolist() == [0.0, 0.5, 0.0]
    assert table.loc[evaluate.POOLED, "aware_acc_pi_6"] == 0.25
    with pytest.raises(ValueError, match="3 categories"):
        joint.predictions_table(frame, logits, ["car", "boat", "chair"])


def test_joint_loss_is_the_sum_of_its_parts_and_its_labels_carry_the_class():
    frame = pd.DataFrame(
        {"category": ["boat", "car"], "azimuth": [0.1, 2.0], "elevation": [0.0, 0.3], "theta": [0.0, -0.1]}
    )
    labels = joint.joint_labels(frame, ["car", "boat"])
    assert labels[:, 3].tolist() == [1, 0] and labels.shape == (2, 4)
    task = joint.task(["car", "boat"])
    logits = torch.randn(2, task.outputs)
    target = torch.from_numpy(labels)
    expected = pose.pose_loss(logits[:, :123], target[:, :3], "none") + torch.nn.functional.cross_entropy(
        logits[:, 123:], target[:, 3], reduction="none"
    )
    assert torch.allclose(task.loss(logits, target, "none"), expected)


def test_flip_averaging_leaves_a_joint_heads_class_logits_alone():
    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.fc = torch.nn.Linear(1, 125)

        def forward(self, batch):
            return torch.arange(125, dtype=torch.float32).expand(len(batch), 125) + batch.mean((1, 2, 3))[:, None] * 0

    images = torch.zeros((2, 3, 8, 8), dtype=torch.uint8)
    logits = loop.predict_logits(Fixed(), images, 8, flip=True)
    base = torch.arange(125, dtype=torch.float32)
    assert torch.equal(logits[0, 123:], base[123:])  # class logits unchanged
    assert torch.equal(logits[0, 41:82], base[41:82])  # elevation is not mirrored
    assert torch.equal(logits[0, :41], (base[:41] + base[:41].flip(0)) / 2)


def _predictions(ids, categories, errors):
    return pd.DataFrame({"image_id": ids, "category": categories, "error": errors})


def test_open_vocabulary_table_puts_the_oracle_beside_the_seen_only_model():
    novel = _predictions(["b1", "b2"], ["boat", "boat"], [0.1, 1.0])
    oracle = _predictions(["c1", "b1", "b2"], ["car", "boat", "boat"], [0.0, 0.1, 0.2])
    table = imagenet3d.open_vocabulary_table(novel, oracle).set_index("category")
    assert table.loc["boat", "seen_only_acc_pi_6"] == 0.5 and table.loc["boat", "oracle_acc_pi_6"] == 1.0
    assert table.loc["boat", "images"] == 2 and list(table.index)[-2:] == [evaluate.POOLED, evaluate.PER_CATEGORY]
    with pytest.raises(ValueError, match="another evaluation set"):
        imagenet3d.open_vocabulary_table(novel, oracle.iloc[:2])


def _config(**tables):
    config = {"categories": ["car", "chair", "boat"], "tables": tables}
    validate_config(config)
    return config


@pytest.mark.parametrize(
    "tables, message",
    [
        ({"open_vocabulary": {"variants": ["composite-kcf"], "seen": ["car"], "novel": ["bus"]}}, "novel has"),
        ({"open_vocabulary": {"variants": ["composite-kcf"], "seen": ["car"], "novel": ["car"]}}, "both seen"),
        (
            {
                "open_vocabulary": {
                    "variants": ["composite-kcf"],
                    "seen": ["car"],
                    "novel": ["boat"],
                    "eval_sets": ["x"],
                }
            },
            "eval_sets 'x'",
        ),
        ({"probing": {"sources": ["random-resnet18"], "train_set": "imagenet"}}, "train_set 'imagenet'"),
        ({"probing": {"sources": ["random-resnet18"], "eval_set": "pascal"}}, "eval_set 'pascal'"),
        ({"probing": {"sources": ["random-resnet18"], "backend": "sdxl"}}, "backend 'sdxl'"),
        ({"probing": {"sources": ["composite-all"]}}, "sources"),
    ],
)
def test_task_tables_are_checked_before_any_job(tables, message):
    with pytest.raises(ValueError, match="config: tables") as error:
        imagenet3d.check_tasks(_config(**tables), ["composite-kcf"], ["composite", "controlnet"])
    assert message in str(error.value)


def test_task_tables_add_the_variants_they_read():
    config = _config(
        probing={"sources": ["random-resnet18", "composite-all"]},
        open_vocabulary={"variants": ["composite-kcf"], "seen": ["car"], "novel": ["boat"]},
    )
    assert imagenet3d.task_variants(config) == ["composite-kcf", "composite-all"]


def test_missing_imagenet_weights_of_a_probe_are_a_prerequisite(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    config = _config(probing={"sources": ["imagenet-resnet18", "random-resnet18"]})
    config["results"] = str(tmp_path / "results")
    problems = [text for text in preflight.problems(config, environ={}) if "tables.probing" in text]
    assert len(problems) == 1 and "imagenet-resnet18" in problems[0] and str(tmp_path / "torch") in problems[0]
    done = tmp_path / "results" / "probing" / "imagenet-resnet18" / "metrics.csv"
    done.parent.mkdir(parents=True)
    done.write_text("source\n")
    assert not [text for text in preflight.problems(config, environ={}) if "tables.probing" in text]
