"""KCF folds, selection, label corruption and a small end-to-end proof that its scores find wrong labels; AUROC,
the pose and classification metrics tables against hand-computed values; provenance columns."""

import colorsys
import hashlib

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from dst3d import evaluate, kcf
from dst3d.training import classify


def _frame(counts):
    return pd.DataFrame(
        [{"image_id": f"train-{c}-{i:06d}", "category": c} for c, n in counts.items() for i in range(n)]
    )


def test_folds_are_balanced_per_category_and_independent_of_row_order():
    frame = _frame({"car": 10, "boat": 7})
    folds = kcf.assign_folds(frame, 3, seed=0)
    for _category, group in frame.assign(fold=folds).groupby("category"):
        sizes = group["fold"].value_counts().sort_index().tolist()
        assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(group)
    shuffled = frame.sample(frac=1.0, random_state=3)
    again = kcf.assign_folds(shuffled, 3, seed=0)
    assert (again.loc[frame.index] == folds).all()
    assert not (kcf.assign_folds(frame, 3, seed=1) == folds).all()


def test_fold_split_holds_out_exactly_one_fold():
    frame = _frame({"car": 9, "boat": 9})
    frame["kcf_fold"] = kcf.assign_folds(frame, 3, seed=0)
    training, held_out = kcf.fold_split(frame, 1, "all")
    assert set(held_out["kcf_fold"]) == {1} and 1 not in set(training["kcf_fold"])
    assert len(training) + len(held_out) == 18
    training, held_out = kcf.fold_split(frame, 0, "boat")
    assert set(training["category"]) == {"boat"} == set(held_out["category"])


def test_selection_policies():
    scores = pd.DataFrame(
        {
            "image_id": [f"i{k}" for k in range(10)],
            "category": ["car"] * 5 + ["boat"] * 5,
            "kcf_loss": [0.5, 3.0, 1.0, 9.0, 2.0, 0.1, 0.2, 0.3, 0.4, 8.0],
        }
    )
    kept, summary = kcf.select(scores, {"mode": "fraction", "keep_fraction": 0.6})
    assert sorted(kept["image_id"]) == ["i0", "i2", "i4", "i5", "i6", "i7"]
    assert summary.set_index("category").loc["car", "dropped"] == 2
    kept, _ = kcf.select(scores, {"mode": "threshold", "max_loss": 2.0})
    assert sorted(kept["image_id"]) == ["i0", "i2", "i4", "i5", "i6", "i7", "i8"]
    kept, _ = kcf.select(scores, {"mode": "none"})
    assert len(kept) == 10


def test_auroc_by_hand():
    assert kcf.auroc([0.9, 0.8, 0.1, 0.2], [True, True, False, False]) == 1.0
    assert kcf.auroc([0.1, 0.2, 0.9, 0.8], [True, True, False, False]) == 0.0
    # One positive above one of two negatives, tie with the other: (1 + 0.5) / 2.
    assert kcf.auroc([0.5, 0.4, 0.5], [True, False, False]) == pytest.approx(0.75)


def test_metrics_table_by_hand():
    deg = np.pi / 180
    predictions = pd.DataFrame(
        {
            "category": ["car"] * 4 + ["boat"] * 2,
            "error": [5 * deg, 20 * deg, 40 * deg, 2 * deg, 100 * deg, 8 * deg],
        }
    )
    table = evaluate.metrics_table(predictions).set_index("category")
    assert table.loc["car", "acc_pi_6"] == pytest.approx(0.75)  # 5, 20, 2 < 30 degrees
    assert table.loc["car", "acc_pi_18"] == pytest.approx(0.5)  # 5, 2 < 10 degrees
    assert table.loc["car", "median_error_deg"] == pytest.approx(12.5)
    assert table.loc["boat", "acc_pi_6"] == pytest.approx(0.5)
    assert table.loc[evaluate.POOLED, "acc_pi_6"] == pytest.approx(4 / 6)
    assert table.loc[evaluate.PER_CATEGORY, "acc_pi_6"] == pytest.approx((0.75 + 0.5) / 2)
    assert table.loc[evaluate.POOLED, "median_error_deg"] == pytest.approx(14.0)


def test_pose_errors_use_the_geodesic_metric():
    truth = np.array([[0.5, 0.2, 0.0], [1.0, 0.0, 0.1]])
    predicted = np.array([[0.8, 0.2, 0.0], [1.0, 0.0, 0.1]])
    np.testing.assert_allclose(evaluate.pose_errors(truth, predicted), [0.3, 0.0], atol=1e-7)


def test_corruption_turns_a_fixed_share_of_each_category_by_90_to_270_degrees():
    frame = _frame({"car": 20, "boat": 30})
    frame["azimuth"] = np.linspace(0, 6, len(frame))
    corrupted, mask = kcf.corrupt_azimuths(frame, 0.1, seed=0)
    assert mask[:20].sum() == 2 and mask[20:].sum() == 3
    turn = np.degrees(np.mod(corrupted["azimuth"] - frame["azimuth"], 2 * np.pi))
    assert (turn[mask] >= 90).all() and (turn[mask] <= 270).all() and (turn[~mask] == 0).all()
    again, same_mask = kcf.corrupt_azimuths(frame.sample(frac=1.0, random_state=1), 0.1, seed=0)
    assert set(again[same_mask]["image_id"]) == set(frame[mask]["image_id"])
    pd.testing.assert_series_equal(
        again.set_index("image_id")["azimuth"].sort_index(), corrupted.set_index("image_id")["azimuth"].sort_index()
    )


def _hue_images(folder, per_category):
    """Images whose colour encodes the azimuth (8 azimuths, hue = azimuth / 2 pi): a pose a small network learns
    in seconds, so KCF's folds, training and scoring can be checked end to end."""
    rows = []
    for category in ("car", "boat"):
        for index in range(per_category):
            azimuth = (index % 8) * np.pi / 4 + 0.1
            red, green, blue = colorsys.hsv_to_rgb(azimuth / (2 * np.pi), 1.0, 1.0)
            path = folder / f"{category}-{index}.png"
            cv2.imwrite(str(path), np.full((24, 24, 3), (255 * blue, 255 * green, 255 * red), np.uint8))
            rows.append(
                {
                    "image_id": f"train-{category}-{index:06d}",
                    "category": category,
                    "image_path": str(path),
                    "bbox_x0": 0.0,
                    "bbox_y0": 0.0,
                    "bbox_x1": 24.0,
                    "bbox_y1": 24.0,
                    "azimuth": azimuth,
                    "elevation": 0.1,
                    "theta": 0.0,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kcf_scores_separate_corrupted_labels(tmp_path, seed):
    """The CI-sized proof; bench/kcf.py measures the same on the embedded default's rendered images. The seed
    draws the corruption, the folds and the fold models. With SGD (the published optimiser) this set gave AUROC
    1.0 / 0.93 / 0.88 / 0.91 at seeds 0-3 and dropped 2-3 of the 6 corrupted images at seeds 1-3; AdamW with a
    cosine schedule (the embedded default's fold models) gave 1.0 and exactly the 6 at all four seeds."""
    frame, mask = kcf.corrupt_azimuths(_hue_images(tmp_path, 30), 0.1, seed=seed)
    frame["kcf_fold"] = kcf.assign_folds(frame, 2, seed=seed)
    settings = {
        "backbone": "resnet18",
        "pretrained": False,
        "input_size": 32,
        "context": 1.0,
        "epochs": 12,
        "batch_size": 8,
        "lr": 1e-3,
        "optimizer": "adamw",
        "lr_schedule": "cosine",
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "lr_step_epochs": 10,
        "lr_gamma": 0.1,
        "augment": False,
        "crop_jitter": 0.0,
        "colour_jitter": 0.0,
    }
    scores = pd.concat(
        [kcf.score_fold(frame, fold, "all", settings, seed=10 * seed + fold, threads=1) for fold in range(2)]
    )
    assert sorted(scores["image_id"]) == sorted(frame["image_id"])
    losses = scores.set_index("image_id").loc[frame["image_id"], "kcf_loss"].to_numpy()
    assert kcf.auroc(losses, mask) >= 0.95
    kept, summary = kcf.select(scores, {"mode": "fraction", "keep_fraction": 0.9})
    dropped = set(frame["image_id"]) - set(kept["image_id"])
    assert dropped == set(frame.loc[mask, "image_id"])  # the 6 corrupted images, and only they
    assert summary["dropped"].sum() == 6


def test_classification_accuracy_table_by_hand():
    predictions = pd.DataFrame(
        {"category": ["car", "car", "car", "boat"], "predicted_category": ["car", "boat", "car", "boat"]}
    )
    table = classify.accuracy_table(predictions).set_index("category")
    assert table.loc["car", "accuracy"] == pytest.approx(2 / 3) and table.loc["boat", "accuracy"] == 1.0
    assert table.loc[evaluate.POOLED, "accuracy"] == pytest.approx(0.75)
    assert table.loc[evaluate.PER_CATEGORY, "accuracy"] == pytest.approx((2 / 3 + 1) / 2)


def test_metrics_rows_carry_the_checkpoint_and_data_hashes(tmp_path):
    checkpoint = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(3)}, checkpoint)
    table = evaluate.provenance_columns(
        pd.DataFrame({"category": ["car"], "acc_pi_6": [0.5]}),
        "composite-kcf",
        evaluate.SYNTHETIC_TEST,
        {"manifest_hash": "abc"},
        checkpoint,
    )
    assert list(table.columns) == ["variant", "eval_set", "category", "acc_pi_6", "manifest_hash", "checkpoint_sha256"]
    assert table.loc[0, "checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()


def test_published_files_are_readable_by_others(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the published file must follow the umask instead."""
    from dst3d import io

    io.write_table(pd.DataFrame({"a": [1]}), tmp_path / "table.csv")
    assert (tmp_path / "table.csv").stat().st_mode & 0o777 == 0o666 & ~io._UMASK


def test_vectorised_pose_errors_equal_the_per_pose_metric():
    import numpy as np

    from dst3d import evaluate
    from dst3d import geometry as geo

    rng = np.random.default_rng(0)
    truth = np.stack([rng.uniform(0, 2 * np.pi, 300), rng.uniform(-1.5, 1.5, 300), rng.uniform(-3, 3, 300)], axis=1)
    predicted = truth + rng.normal(0, 0.4, truth.shape)
    expected = [geo.pose_error(tuple(p), tuple(t)) for p, t in zip(predicted, truth, strict=True)]
    np.testing.assert_allclose(evaluate.pose_errors(truth, predicted), expected, atol=1e-9)
    # Hand value: the same pose turned by 30 degrees of azimuth at elevation 0 is 30 degrees off.
    assert evaluate.pose_errors(np.zeros((1, 3)), np.array([[np.pi / 6, 0, 0]]))[0] == pytest.approx(np.pi / 6)
