"""The model-free consistency check (dst3d.consistency): synthetic renders, shifted and mirrored copies, and the
combined KCF + consistency policy."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from dst3d import consistency
from dst3d.generate.edges import EdgeSettings, edge_map
from dst3d.io import write_image

SIZE = 128
#: An asymmetric polygon (an "L" with a slanted nose), so that its mirror image differs.
POLYGON = np.array([[34, 40], [70, 34], [96, 52], [88, 62], [60, 60], [58, 92], [40, 94]], np.int32)
SETTINGS = EdgeSettings(short_side=0)


def _background() -> np.ndarray:
    rng = np.random.default_rng(7)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (SIZE, SIZE, 3)).astype(np.float32), (0, 0), 3)
    noise = (noise - noise.mean()) * 3 + 110
    ramp = np.linspace(0, 60, SIZE, dtype=np.float32)[None, :, None]
    return np.clip(noise + ramp, 0, 255).astype(np.uint8)


def _render(dx: int = 0, dy: int = 0, mirror: bool = False) -> np.ndarray:
    """BGRA render of the textured polygon (moved by dx, dy, or mirrored left-right within its box) on black."""
    points = POLYGON.copy()
    if mirror:
        x0, x1 = points[:, 0].min(), points[:, 0].max()
        points[:, 0] = x0 + x1 - points[:, 0]
    points += [dx, dy]
    alpha = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillPoly(alpha, [points], 255)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    checker = ((xx - dx) // 11 + (yy - dy) // 11) % 2  # a period no tested shift is a multiple of
    colour = np.where(checker[:, :, None] == 1, [40, 200, 240], [200, 60, 150]).astype(np.uint8)
    rgba = np.concatenate([colour, alpha[:, :, None]], axis=2)
    rgba[alpha == 0] = 0
    return rgba


def _composite(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[:, :, 3:4].astype(np.float32) / 255
    return np.round(rgba[:, :, :3] * alpha + _background() * (1 - alpha)).astype(np.uint8)


def _mask_and_box(rgba: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    mask = (rgba[:, :, 3] > 0).astype(np.uint8) * 255
    ys, xs = np.nonzero(mask)
    return mask, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


@pytest.fixture(scope="module")
def render():
    rgba = _render()
    mask, box = _mask_and_box(rgba)
    return rgba, mask, box, edge_map(rgba, SETTINGS)


def _scores(image, render):
    _, mask, box, edges = render
    return consistency.score_image(image, mask, edges, box, SETTINGS)


def test_image_equal_to_its_render_scores_near_one(render):
    edge_f, iou = _scores(_composite(render[0]), render)
    # Measured 0.973 and 1.000 (the object's colours appear nowhere in the background).
    assert edge_f > 0.95
    assert iou > 0.95
    assert consistency.combine(edge_f, iou) < 0.05


def test_shifted_object_scores_monotonically_worse(render):
    scores = [_scores(_composite(_render(dx=shift, dy=shift // 2)), render) for shift in (0, 2, 4, 8, 16)]
    edge_fs, ious = zip(*scores, strict=True)
    assert all(a > b for a, b in zip(edge_fs, edge_fs[1:], strict=False)), edge_fs
    assert all(a > b for a, b in zip(ious, ious[1:], strict=False)), ious
    assert edge_fs[-1] < 0.5 and ious[-1] < 0.2


def test_mirrored_object_scores_worse(render):
    edge_f, iou = _scores(_composite(render[0]), render)
    mirrored_edge_f, mirrored_iou = _scores(_composite(_render(mirror=True)), render)
    assert mirrored_edge_f < edge_f - 0.3
    assert mirrored_iou < iou - 0.2


@pytest.mark.parametrize("short_side", [64, 256])
def test_edge_map_at_another_resolution_still_scores_near_one(render, short_side):
    rgba, mask, box, _ = render
    edges = edge_map(rgba, EdgeSettings(short_side=short_side))
    assert edges.shape[0] == short_side
    edge_f, _ = consistency.score_image(_composite(rgba), mask, edges, box, SETTINGS)
    # Measured 0.971 (64 px, enlarged) and 0.973 (256 px, shrunk), as 0.973 at the same size.
    assert edge_f > 0.9


def test_edge_f_empty_cases():
    image = np.full((32, 32, 3), 90, np.uint8)
    empty = np.zeros((32, 32), np.uint8)
    assert consistency.edge_f_score(image, empty, (8, 8, 24, 24)) == 1.0
    line = empty.copy()
    line[16, 4:28] = 255
    assert consistency.edge_f_score(image, line, (8, 8, 24, 24)) == 0.0


def test_consistency_scores_of_a_table(tmp_path, render):
    rgba, mask, box, edges = render
    write_image(_composite(rgba), tmp_path / "a.png")
    write_image(mask, tmp_path / "a_mask.png")
    write_image(edges, tmp_path / "a_edges.png")
    common = {"category": "car", "width": SIZE, "height": SIZE, "image_width": SIZE, "image_height": SIZE}
    records = pd.DataFrame(
        [
            {
                "image_id": "a",
                "image_path": str(tmp_path / "a.png"),
                "mask_path": str(tmp_path / "a_mask.png"),
                **dict(zip(["bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1"], box, strict=True)),
                **common,
            },
            # An empty render mask: nothing is read, and it is the most suspicious.
            {
                "image_id": "b",
                "image_path": str(tmp_path / "missing.png"),
                "mask_path": str(tmp_path / "missing_mask.png"),
                "bbox_x0": -1,
                "bbox_y0": -1,
                "bbox_x1": -1,
                "bbox_y1": -1,
                **common,
            },
        ]
    )
    scores = consistency.consistency_scores(
        records, [tmp_path / "a_edges.png", tmp_path / "missing_edges.png"], SETTINGS
    )
    assert list(scores.columns) == ["image_id", "category", "edge_f", "silhouette_iou", "consistency"]
    assert scores["consistency"].iloc[0] < 0.05
    assert scores["consistency"].iloc[1] == 1.0
    assert scores[["edge_f", "silhouette_iou"]].iloc[1].tolist() == [0.0, 0.0]

    # The report's figure: histograms, then the worst-scored images first (a shifted copy before the exact one).
    from dst3d.figures import consistency_figure

    write_image(_composite(_render(dx=12, dy=6)), tmp_path / "c.png")
    shifted = records.iloc[[0]].assign(image_id="c", image_path=str(tmp_path / "c.png"))
    generated = pd.concat([records.iloc[[0]], shifted], ignore_index=True)
    figure_scores = consistency.consistency_scores(generated, [tmp_path / "a_edges.png"] * 2, SETTINGS)
    figure = consistency_figure(figure_scores, generated, worst=2)
    titles = [axis.get_title() for axis in figure.axes]
    assert titles[0].startswith("edge F-score") and len(titles) == 3 + 2
    assert titles[3].startswith("c\n") and titles[4].startswith("a\n")


def _tables():
    ids = [f"car-{i}" for i in range(5)] + [f"chair-{i}" for i in range(4)]
    categories = ["car"] * 5 + ["chair"] * 4
    kcf_scores = pd.DataFrame(
        {"image_id": ids, "category": categories, "kcf_loss": [0.1, 0.9, 0.2, 0.3, 0.8, 0.5, 0.5, 0.1, 0.05]}
    )
    consistency_scores = pd.DataFrame(
        {"image_id": ids, "category": categories, "consistency": [0.9, 0.1, 0.2, 0.1, 0.3, 0.2, 0.6, 0.2, 0.1]}
    )
    return kcf_scores, consistency_scores


@pytest.mark.parametrize(
    ("scores", "kept_ids", "counts"),
    [
        # car: keep ceil(0.6 * 5) = 3; chair: ceil(0.6 * 4) = 3, the tie 0.5/0.5 at the cut kept by image_id.
        (["kcf"], ["car-0", "car-2", "car-3", "chair-0", "chair-2", "chair-3"], {"car": (2, 0), "chair": (1, 0)}),
        (
            ["consistency"],
            ["car-1", "car-2", "car-3", "chair-0", "chair-2", "chair-3"],
            {"car": (0, 2), "chair": (0, 1)},
        ),
        # Robust z by hand. car: kcf median 0.3, MAD 0.2 -> z (-0.67, 2.02, -0.34, 0, 1.69); consistency median
        # 0.2, MAD 0.1 -> z (4.72, -0.67, 0, -0.67, 0.67); the larger: (4.72 c, 2.02 k, 0, 0, 1.69 k), so car-0
        # (by consistency) and car-1 (by kcf) go. chair: kcf median 0.3, MAD 0.2 -> (0.67, 0.67, -0.67, -0.84);
        # consistency median 0.2, MAD 0.05 -> (0, 5.40, 0, -1.35): chair-1 goes, by consistency.
        (
            ["kcf", "consistency"],
            ["car-2", "car-3", "car-4", "chair-0", "chair-2", "chair-3"],
            {"car": (1, 1), "chair": (0, 1)},
        ),
    ],
)
def test_select_combined(scores, kept_ids, counts):
    kcf_scores, consistency_scores = _tables()
    kept, summary = consistency.select_combined(
        kcf_scores if "kcf" in scores else None,
        consistency_scores if "consistency" in scores else None,
        {"scores": scores, "keep_fraction": 0.6},
    )
    assert kept["image_id"].tolist() == kept_ids
    summary = summary.set_index("category")
    for category, (by_kcf, by_consistency) in counts.items():
        row = summary.loc[category]
        assert (row["dropped_by_kcf"], row["dropped_by_consistency"]) == counts[category]
        assert row["images"] == {"car": 5, "chair": 4}[category]
        assert row["kept"] == sum(image.startswith(category) for image in kept_ids)
        assert row["dropped"] == by_kcf + by_consistency
    if scores == ["kcf", "consistency"]:
        assert kept.set_index("image_id").loc["car-4", "outlier_z"] == pytest.approx(0.5 / (1.4826 * 0.2), abs=1e-5)


def test_robust_z_ignores_the_tail_and_survives_a_zero_mad():
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    # median 3, MAD 1: the outlier does not move the scale.
    assert consistency.robust_z(values) == pytest.approx((values - 3) / 1.4826)
    same = np.array([1.0, 1.0, 1.0, 5.0])  # MAD 0: the standard deviation (sqrt(3)) instead
    assert consistency.robust_z(same) == pytest.approx((same - 1) / np.sqrt(3))
    assert consistency.robust_z(np.ones(3)) == pytest.approx(np.zeros(3))


def test_select_combined_rejects_a_bad_policy():
    kcf_scores, consistency_scores = _tables()
    with pytest.raises(ValueError, match="subset"):
        consistency.select_combined(kcf_scores, consistency_scores, {"scores": ["edges"], "keep_fraction": 0.5})
    with pytest.raises(ValueError, match="keep_fraction"):
        consistency.select_combined(kcf_scores, consistency_scores, {"scores": ["kcf"], "keep_fraction": 0})
    with pytest.raises(ValueError, match="None"):
        consistency.select_combined(None, consistency_scores, {"scores": ["kcf"], "keep_fraction": 0.5})
