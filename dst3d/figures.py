"""Figures, each saved as PNG and PDF: the sample grid (render, edges, generated image, projected cuboid), the
viewpoint distributions, the consistency scores, KCF's selection, the training curves and the accuracy bars."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dst3d.io import atomic_write, read_image  # noqa: E402
from dst3d.render.annotations import matrix

#: The 12 cuboid edges: corner pairs that differ in exactly one axis bit.
CUBOID_EDGES = [(i, i | (1 << axis)) for i in range(8) for axis in range(3) if not i & (1 << axis)]


def draw_cuboid(image: np.ndarray, record, color_visible=(0, 220, 0), color_hidden=(0, 0, 255)) -> np.ndarray:
    """Draw the projected cuboid of an annotation record on a BGR image of the generated size."""
    scale = np.array([record.image_width / record.width, record.image_height / record.height])
    corners = matrix(record._asdict(), "cuboid_uv") * scale
    visible = np.asarray(record.cuboid_visible, bool)
    canvas = image.copy()
    thickness = max(1, image.shape[0] // 200)
    for a, b in CUBOID_EDGES:
        color = color_visible if visible[a] and visible[b] else color_hidden
        cv2.line(
            canvas,
            tuple(np.round(corners[a]).astype(int)),
            tuple(np.round(corners[b]).astype(int)),
            color,
            thickness,
            cv2.LINE_AA,
        )
    for corner, seen in zip(corners, visible, strict=True):
        cv2.circle(
            canvas, tuple(np.round(corner).astype(int)), thickness + 1, color_visible if seen else color_hidden, -1
        )
    return canvas


def sample_grid(
    generated: pd.DataFrame, edge_dirs: dict[str, str], samples_per_category: int, path: Path, pdf: Path | None = None
) -> None:
    """One row per sample, ``samples_per_category`` per category and backend (the records' ``backend`` column,
    when there is one): render on grey, Canny edges, generated image, generated image with the cuboid."""
    rows = []
    keys = ["category", "backend"] if "backend" in generated else ["category"]
    for _key, group in generated.groupby(keys, sort=False):
        rows += list(group.sort_values("image_index").head(samples_per_category).itertuples(index=False))
    columns = ["render", "edges", "generated", "annotation"]
    figure, axes = plt.subplots(len(rows), 4, figsize=(8, 2 * len(rows)), squeeze=False)
    for row_axes, record in zip(axes, rows, strict=True):
        rgba = read_image(record.render_path, cv2.IMREAD_UNCHANGED).astype(np.float32)
        alpha = rgba[:, :, 3:] / 255.0
        render = (rgba[:, :, :3] * alpha + 160.0 * (1 - alpha)).astype(np.uint8)
        edges = read_image(Path(edge_dirs[record.category]) / f"{record.image_id}.png")
        image = read_image(record.image_path)
        panels = [render, edges, image, draw_cuboid(image, record)]
        for axis, panel in zip(row_axes, panels, strict=True):
            axis.imshow(cv2.cvtColor(panel, cv2.COLOR_BGR2RGB), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
        backend = f" ({record.backend})" if "backend" in generated else ""
        row_axes[0].set_ylabel(
            f"{record.category}{backend}\naz {np.degrees(record.azimuth):.0f} el {np.degrees(record.elevation):.0f}",
            fontsize=8,
        )
    for axis, title in zip(axes[0], columns, strict=True):
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    plot_both(figure, path, pdf)


def viewpoint_plot(annotations: pd.DataFrame, path: Path, pdf: Path | None = None) -> None:
    """:func:`viewpoint_figure` saved as PNG (and PDF)."""
    plot_both(viewpoint_figure(annotations), path, pdf)


def viewpoint_figure(annotations: pd.DataFrame, azimuth_bins: int = 24):
    """Per category (columns, in order of appearance): a polar histogram of the sampled azimuths (0 deg = the
    object's front, counter-clockwise as PASCAL3D+ counts) above a histogram of the elevations, degrees."""
    categories = list(dict.fromkeys(annotations["category"]))
    figure = plt.figure(figsize=(3.0 * len(categories), 5.6))
    edges = np.linspace(0, 2 * np.pi, azimuth_bins + 1)
    for column, category in enumerate(categories):
        subset = annotations[annotations["category"] == category]
        polar = figure.add_subplot(2, len(categories), column + 1, projection="polar")
        counts, _ = np.histogram(np.mod(subset["azimuth"], 2 * np.pi), bins=edges)
        polar.bar(edges[:-1], counts, width=edges[1] - edges[0], align="edge", alpha=0.7)
        polar.set_theta_zero_location("S")  # the front (azimuth 0) faces the reader
        polar.set_title(f"{category} (n={len(subset)})\nazimuth", fontsize=9)
        polar.tick_params(labelsize=6)
        elevation = figure.add_subplot(2, len(categories), len(categories) + column + 1)
        elevation.hist(np.degrees(subset["elevation"]), bins=np.arange(-90, 91, 10))
        elevation.set_xlim(-90, 90)
        elevation.set_xlabel("elevation (deg)")
        if column == 0:
            elevation.set_ylabel("images")
    figure.tight_layout()
    return figure


def consistency_figure(scores: pd.DataFrame, generated: pd.DataFrame, worst: int = 8):
    """Histograms of the consistency check's scores (edge F, silhouette IoU, combined; per category) and, below,
    the ``worst`` images with the highest combined score, each with its render mask's outline (green) and its
    scores: what the filter would look at first. ``scores``: consistency.csv; ``generated``: the generated-image
    records of the same images (image_path, mask_path, width, height)."""
    columns = [
        ("edge_f", "edge F-score"),
        ("silhouette_iou", "silhouette IoU"),
        ("consistency", "combined (1 = worst)"),
    ]
    worst_rows = scores.sort_values(["consistency", "image_id"], ascending=[False, True]).head(worst)
    records = generated.set_index("image_id")
    figure = plt.figure(figsize=(12, 6.4))
    grid = figure.add_gridspec(2, max(len(columns), len(worst_rows), 1), height_ratios=[1.3, 1])
    span = max(len(worst_rows), len(columns), 1) // len(columns)
    bins = np.linspace(0, 1, 26)
    for position, (column, title) in enumerate(columns):
        axis = figure.add_subplot(grid[0, position * span : (position + 1) * span])
        for category, group in scores.groupby("category"):
            axis.hist(group[column], bins=bins, histtype="step", label=category)
        axis.set_title(f"{title}, median {scores[column].median():.2f}", fontsize=9)
        axis.set_xlim(0, 1)
    figure.axes[0].legend(fontsize=7)
    figure.axes[0].set_ylabel("images")
    for position, row in enumerate(worst_rows.itertuples(index=False)):
        axis = figure.add_subplot(grid[1, position])
        record = records.loc[row.image_id]
        image = read_image(record["image_path"])
        mask = read_image(record["mask_path"], cv2.IMREAD_UNCHANGED)
        mask = cv2.resize(
            (mask > 0).astype(np.uint8), (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST
        )
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(image, contours, -1, (0, 220, 0), 1)
        ys, xs = np.nonzero(mask)
        if len(xs):  # zoomed to the object: twice its box, square, inside the image
            side = 2 * max(xs.max() - xs.min(), ys.max() - ys.min(), 8)
            cx, cy = (xs.max() + xs.min()) // 2, (ys.max() + ys.min()) // 2
            x0, y0 = max(0, cx - side // 2), max(0, cy - side // 2)
            image = image[y0 : y0 + side, x0 : x0 + side]
        axis.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), interpolation="nearest")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_title(f"{row.image_id}\nF {row.edge_f:.2f} IoU {row.silhouette_iou:.2f}", fontsize=6)
    figure.tight_layout()
    return figure


def consistency_plot(scores: pd.DataFrame, generated: pd.DataFrame, path: Path, pdf: Path | None = None) -> None:
    """:func:`consistency_figure` saved as PNG (and PDF)."""
    plot_both(consistency_figure(scores, generated), path, pdf)


def plot_both(figure, png: Path, pdf: Path | None) -> None:
    """Save ``figure`` as PNG (and as PDF when ``pdf`` is given), each atomically, then close it."""
    try:
        with atomic_write(png) as temporary:
            figure.savefig(temporary, format="png", dpi=100, bbox_inches="tight")
        if pdf is not None:
            with atomic_write(pdf) as temporary:
                figure.savefig(temporary, format="pdf", bbox_inches="tight")
    finally:
        plt.close(figure)


def policy_score(scores: pd.DataFrame, chosen: list[str]) -> tuple[pd.Series, str]:
    """The score KCF's policy ranks the images by, per image of ``scores`` (kcf/<backend>/scores.csv), and its
    axis label: the fold models' loss with ``[kcf]``, else the larger robust z-score of the chosen scores
    (:func:`dst3d.consistency.select_combined`)."""
    if list(chosen) == ["kcf"]:
        return scores["kcf_loss"], "KCF loss (sum of the three angle cross-entropies)"
    from dst3d import consistency

    everything, _ = consistency.select_combined(scores, scores, {"scores": list(chosen), "keep_fraction": 1.0})
    merged = scores[["image_id"]].merge(everything[["image_id", "outlier_z"]], on="image_id", how="left")
    return merged["outlier_z"].set_axis(scores.index), f"outlier z of {' and '.join(chosen)}"


def kcf_figure(scores: pd.DataFrame, kept_ids: set, generated: pd.DataFrame, chosen: list[str], shown: int = 3):
    """KCF's selection per category: the histogram of the policy's score with the discard threshold (between the
    highest kept and the lowest dropped image) and, below, the ``shown`` lowest-scored (kept) and highest-scored
    (dropped) images with their annotated cuboid: how a user checks the filter on data without ground truth."""
    score, label = policy_score(scores, chosen)
    scores = scores.assign(score=score.to_numpy(), kept=scores["image_id"].isin(kept_ids))
    categories = list(dict.fromkeys(scores["category"]))
    records = {record.image_id: record for record in generated.itertuples(index=False)}
    columns = max(2 * shown, len(categories))
    figure = plt.figure(figsize=(2.2 * columns, 2.4 + 2.0 * len(categories)))
    grid = figure.add_gridspec(1 + len(categories), columns, height_ratios=[1.4] + [1] * len(categories))
    span = columns // len(categories)
    for position, category in enumerate(categories):
        group = scores[scores["category"] == category]
        axis = figure.add_subplot(grid[0, position * span : (position + 1) * span])
        bins = np.linspace(group["score"].min(), group["score"].max(), 21)
        axis.hist(
            [group.loc[group["kept"], "score"], group.loc[~group["kept"], "score"]],
            bins=bins,
            stacked=True,
            color=["tab:green", "tab:red"],
            label=["kept", "dropped"],
        )
        dropped = group.loc[~group["kept"], "score"]
        if len(dropped):
            threshold = (group.loc[group["kept"], "score"].max() + dropped.min()) / 2
            axis.axvline(threshold, color="black", linestyle="--", linewidth=1)
        axis.set_title(f"{category}: kept {int(group['kept'].sum())} of {len(group)}", fontsize=8)
        axis.set_xlabel(label, fontsize=7)
        axis.tick_params(labelsize=7)
        if position == 0:
            axis.set_ylabel("images", fontsize=8)
            axis.legend(fontsize=7)
    for row, category in enumerate(categories, start=1):
        group = scores[scores["category"] == category].sort_values(["score", "image_id"])
        chosen_rows = list(group.head(shown).itertuples(index=False)) + list(group.tail(shown).itertuples(index=False))
        for column, entry in enumerate(chosen_rows[: 2 * shown]):
            axis = figure.add_subplot(grid[row, column])
            record = records[entry.image_id]
            image = draw_cuboid(read_image(record.image_path), record)
            axis.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_edgecolor("tab:green" if entry.kept else "tab:red")
                spine.set_linewidth(2)
            axis.set_title(f"{'kept' if entry.kept else 'dropped'} {entry.score:.2f}", fontsize=7)
            if column == 0:
                axis.set_ylabel(f"{category}\nlowest | highest", fontsize=7)
    figure.tight_layout()
    return figure


def training_figure(histories: dict[str, pd.DataFrame]):
    """Loss and learning rate per epoch of every trained model (``histories``: label -> history.csv)."""
    figure, (loss_axis, lr_axis) = plt.subplots(1, 2, figsize=(9, 3.2))
    for label, history in histories.items():
        loss_axis.plot(history["epoch"], history["loss"], marker="o", markersize=3, label=label)
        lr_axis.plot(history["epoch"], history["lr"], marker="o", markersize=3, label=label)
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss")
    lr_axis.set_xlabel("epoch")
    lr_axis.set_ylabel("learning rate (after the epoch)")
    lr_axis.set_yscale("log")
    loss_axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def accuracy_figure(metrics: pd.DataFrame, metric: str = "acc_pi_6"):
    """Per evaluation set, ``metric`` per category (bars: one per variant), from pose_metrics.csv; with NeMo rows
    (``estimator`` nemo) a bar is a variant and estimator, the NeMo ones labelled ``<variant> (NeMo)``."""
    names = {"acc_pi_6": "Acc@pi/6", "acc_pi_18": "Acc@pi/18"}
    if "estimator" in metrics and (metrics["estimator"] != "resnet").any():
        metrics = metrics.assign(
            variant=metrics["variant"].where(metrics["estimator"] == "resnet", metrics["variant"] + " (NeMo)")
        )
    eval_sets = list(dict.fromkeys(metrics["eval_set"]))
    figure, axes = plt.subplots(1, len(eval_sets), figsize=(4.5 * len(eval_sets), 3.2), squeeze=False, sharey=True)
    for axis, eval_set in zip(axes[0], eval_sets, strict=True):
        subset = metrics[metrics["eval_set"] == eval_set]
        categories = list(dict.fromkeys(subset["category"]))
        variants = list(dict.fromkeys(subset["variant"]))
        width = 0.8 / max(len(variants), 1)
        for number, variant in enumerate(variants):
            values = subset[subset["variant"] == variant].set_index("category")[metric].reindex(categories)
            axis.bar(
                np.arange(len(categories)) + (number - (len(variants) - 1) / 2) * width,
                100 * values,
                width,
                label=variant,
            )
        axis.set_xticks(np.arange(len(categories)))
        axis.set_xticklabels([category.replace("mean ", "mean\n") for category in categories], fontsize=7)
        axis.set_title(eval_set, fontsize=9)
        axis.set_ylim(0, 100)
    axes[0][0].set_ylabel(f"{names.get(metric, metric)} (%)")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    return figure
