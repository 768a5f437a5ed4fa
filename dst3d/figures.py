"""Figures: the sample grid (render, edges, generated image, projected cuboid) and the viewpoint plot."""

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


def _save(figure, path: Path) -> None:
    try:
        with atomic_write(path) as temporary:
            figure.savefig(temporary, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)


def sample_grid(generated: pd.DataFrame, edge_dirs: dict[str, str], samples_per_category: int, path: Path) -> None:
    """One row per sample: render on grey, Canny edges, generated image, generated image with the cuboid."""
    rows = []
    for _category, group in generated.groupby("category", sort=False):
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
        row_axes[0].set_ylabel(
            f"{record.category}\naz {np.degrees(record.azimuth):.0f} el {np.degrees(record.elevation):.0f}", fontsize=8
        )
    for axis, title in zip(axes[0], columns, strict=True):
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    _save(figure, path)


def viewpoint_plot(annotations: pd.DataFrame, path: Path) -> None:
    """Scatter of sampled azimuth against elevation (degrees), one panel per category, saved as PNG."""
    _save(viewpoint_figure(annotations), path)


def viewpoint_figure(annotations: pd.DataFrame):
    """The figure of :func:`viewpoint_plot` (one matplotlib axes per category, in order of appearance)."""
    categories = list(dict.fromkeys(annotations["category"]))
    figure, axes = plt.subplots(1, len(categories), figsize=(3.2 * len(categories), 3), squeeze=False, sharey=True)
    for axis, category in zip(axes[0], categories, strict=True):
        subset = annotations[annotations["category"] == category]
        axis.scatter(np.degrees(subset["azimuth"]), np.degrees(subset["elevation"]), s=6, alpha=0.6)
        axis.set_title(f"{category} (n={len(subset)})", fontsize=9)
        axis.set_xlim(0, 360)
        axis.set_xlabel("azimuth (deg)")
    axes[0][0].set_ylabel("elevation (deg)")
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


def consistency_plot(scores: pd.DataFrame, generated: pd.DataFrame, path: Path) -> None:
    """:func:`consistency_figure` saved as PNG."""
    _save(consistency_figure(scores, generated), path)
