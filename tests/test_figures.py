"""The figures a reader checks the data with: KCF's selection (score histograms with the discard threshold, the
kept and dropped images), the training curves and the per-category accuracy bars, each checked against the
numbers it draws."""

import cv2
import numpy as np
import pandas as pd
from test_render import rendered  # noqa: F401 (a fixture)

from dst3d.figures import accuracy_figure, kcf_figure, plot_both, policy_score, training_figure


def _generated(rendered):  # noqa: F811
    records = pd.concat(rendered[1].values(), ignore_index=True)
    return records.assign(
        image_path=records["render_path"], image_width=records["width"], image_height=records["height"]
    )


def test_kcf_figure_marks_the_threshold_between_kept_and_dropped_and_shows_both_ends(rendered, tmp_path):  # noqa: F811
    generated = _generated(rendered)
    scores = generated[["image_id", "category"]].assign(kcf_loss=np.arange(len(generated), dtype=float))
    # Keep the 3 lowest losses of every category, drop its highest.
    kept = set(scores.sort_values("kcf_loss").groupby("category").head(3)["image_id"])
    figure = kcf_figure(scores, kept, generated, ["kcf"], shown=1)
    histograms = figure.axes[: scores["category"].nunique()]
    for axis, (category, group) in zip(histograms, scores.groupby("category", sort=False), strict=True):
        kept_losses = group.loc[group["image_id"].isin(kept), "kcf_loss"]
        dropped = group.loc[~group["image_id"].isin(kept), "kcf_loss"]
        (line,) = axis.get_lines()
        assert line.get_xdata()[0] == (kept_losses.max() + dropped.min()) / 2
        assert axis.get_title() == f"{category}: kept 3 of 4"
    # Below: per category its lowest (kept) and highest (dropped) image, titled with the score.
    titles = [axis.get_title() for axis in figure.axes[len(histograms) :]]
    assert titles[:2] == ["kept 0.00", "dropped 3.00"] and len(titles) == 2 * len(histograms)
    plot_both(figure, tmp_path / "kcf.png", tmp_path / "kcf.pdf")
    assert cv2.imread(str(tmp_path / "kcf.png")).shape[1] > 300
    assert (tmp_path / "kcf.pdf").read_bytes().startswith(b"%PDF")


def test_policy_score_is_the_larger_robust_z_with_both_scores():
    scores = pd.DataFrame(
        {
            "image_id": list("abcde"),
            "category": ["car"] * 5,
            "kcf_loss": [1.0, 2.0, 3.0, 4.0, 100.0],
            "consistency": [0.1, 0.1, 0.2, 0.1, 0.1],
        }
    )
    loss, label = policy_score(scores, ["kcf"])
    assert loss.tolist() == scores["kcf_loss"].tolist() and "KCF loss" in label
    z, label = policy_score(scores, ["kcf", "consistency"])
    # kcf: median 3, MAD 1 -> e: 97 / 1.4826; consistency: MAD 0 -> std 0.04 -> c: 0.1 / 0.04 = 2.5.
    assert z.iloc[4] == np.round(97 / 1.4826, 6) and z.iloc[2] == 2.5 and "outlier z" in label


def test_training_curves_and_accuracy_bars_draw_the_tables_numbers():
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.5], "lr": [0.01, 0.005, 0.001]})
    figure = training_figure({"composite-kcf": history})
    loss_axis, lr_axis = figure.axes
    np.testing.assert_allclose(loss_axis.get_lines()[0].get_ydata(), [3.0, 2.0, 1.5])
    np.testing.assert_allclose(lr_axis.get_lines()[0].get_ydata(), [0.01, 0.005, 0.001])
    assert lr_axis.get_yscale() == "log" and loss_axis.get_xlabel() == "epoch"
    metrics = pd.DataFrame(
        {
            "variant": ["a", "a", "b", "b"],
            "eval_set": ["synthetic-test"] * 4,
            "category": ["car", "mean (pooled)", "car", "mean (pooled)"],
            "acc_pi_6": [0.5, 0.4, 0.25, 0.3],
        }
    )
    figure = accuracy_figure(metrics)
    (axis,) = figure.axes
    heights = [patch.get_height() for patch in axis.patches]
    assert heights == [50.0, 40.0, 25.0, 30.0]  # variant a's bars, then b's, in percent
    assert axis.get_title() == "synthetic-test" and axis.get_ylabel() == "Acc@pi/6 (%)"


def test_accuracy_bars_keep_a_variants_resnet_and_nemo_apart():
    metrics = pd.DataFrame(
        {
            "estimator": ["resnet", "resnet", "nemo", "nemo"],
            "variant": ["a", "a", "a", "a"],
            "eval_set": ["synthetic-test"] * 4,
            "category": ["car", "mean (pooled)", "car", "mean (pooled)"],
            "acc_pi_6": [0.5, 0.4, 0.25, 0.3],
        }
    )
    (axis,) = accuracy_figure(metrics).axes
    assert [patch.get_height() for patch in axis.patches] == [50.0, 40.0, 25.0, 30.0]
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["a", "a (NeMo)"]
