"""KCF folds and selection, AUROC, and the pose metrics table against hand-computed values."""

import numpy as np
import pandas as pd
import pytest

from dst3d import evaluate, kcf


def _frame(counts):
    return pd.DataFrame([{"image_id": f"train-{c}-{i:06d}", "category": c} for c, n in counts.items() for i in range(n)])


def test_folds_are_balanced_per_category_and_independent_of_row_order():
    frame = _frame({"car": 10, "boat": 7})
    folds = kcf.assign_folds(frame, 3, seed=0)
    for category, group in frame.assign(fold=folds).groupby("category"):
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
    scores = pd.DataFrame({
        "image_id": [f"i{k}" for k in range(10)], "category": ["car"] * 5 + ["boat"] * 5,
        "kcf_loss": [0.5, 3.0, 1.0, 9.0, 2.0, 0.1, 0.2, 0.3, 0.4, 8.0],
    })
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
    predictions = pd.DataFrame({
        "category": ["car"] * 4 + ["boat"] * 2,
        "error": [5 * deg, 20 * deg, 40 * deg, 2 * deg, 100 * deg, 8 * deg],
    })
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
