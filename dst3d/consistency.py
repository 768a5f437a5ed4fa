"""Model-free consistency check of every generated image against its own render, beside KCF.

A generated image keeps the pose label of its render only if the object is where, and as large and as shaped
as, the render says. Two scores check that without training anything:

* :func:`edge_f_score`: the Canny edges of the generated image against the edge map that conditioned it (the
  render's Canny edges, ``results/edges/<split>/<category>/<shard>/<image_id>.png``), an F-score with a
  distance tolerance, inside the object's box dilated by a margin;
* :func:`silhouette_iou`: how well the annotated mask separates the image's colours: a colour-histogram
  segmentation of the whole image learnt from the mask, and its IoU with the mask.

:func:`consistency_scores` scores a generated-image table (one row per image, the combined ``consistency``
higher = more suspicious, like KCF's loss) and :func:`select_combined` drops the worst images by KCF's loss,
the consistency score or both (``bench/consistency.py`` measures how well the scores find injected failures).

Images are numpy arrays as cv2 reads them: H x W x 3 BGR uint8; boxes are (x0, y0, x1, y1) in pixels with the
pixel-corner origin and exclusive x1/y1 (``dst3d.render.annotations.mask_bbox``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from dst3d.generate.edges import EdgeSettings
from dst3d.io import read_image

#: The scores :func:`select_combined` can filter by, and the column each is ranked by.
SCORE_COLUMNS = {"kcf": "kcf_loss", "consistency": "consistency"}

#: The edge maps' settings when none are given: the ``"3d-dst"`` preset.
DEFAULT_EDGE_SETTINGS = EdgeSettings()

#: Colour levels per channel of the :func:`silhouette_iou` histogram (8 x 8 x 8 = 512 bins).
_COLOUR_LEVELS = 8


def _region(box: Sequence[float], margin: float, width: int, height: int, at_least: int = 0) -> tuple[int, ...]:
    """Whole-pixel window (x0, y0, x1, y1) of ``box`` grown on every side by ``margin`` times its longer side
    (at least ``at_least`` px) and clipped to the image."""
    x0, y0, x1, y1 = (float(value) for value in box)
    grow = max(margin * max(x1 - x0, y1 - y0), at_least)
    return (
        max(int(np.floor(x0 - grow)), 0),
        max(int(np.floor(y0 - grow)), 0),
        min(int(np.ceil(x1 + grow)), width),
        min(int(np.ceil(y1 + grow)), height),
    )


def edge_map_at(edge_map: np.ndarray, width: int, height: int) -> np.ndarray:
    """The edge map (H' x W' or H' x W' x 3 uint8, edges > 0 in any channel) as a boolean ``height`` x ``width``
    map.

    Edge maps are computed at ``edges.short_side`` and may have another size than the generated image.
    Enlarging uses nearest neighbour (each edge pixel becomes a block; the F-score's tolerance absorbs the
    thickness). Shrinking marks an output pixel as an edge when any edge pixel falls in its footprint (area
    interpolation, then > 0: a max-pool), not nearest neighbour: nearest neighbour keeps one source row and
    column in ``scale``, so a 1-px line parallel to the axes can vanish whole, which no dilation afterwards
    brings back; the max-pool keeps every line, at most 2 px thick, as a 1-px dilation would.
    """
    edges = edge_map if edge_map.ndim == 2 else edge_map.max(axis=2)
    edges = (edges > 0).astype(np.uint8)
    source_height, source_width = edges.shape
    if (source_height, source_width) == (height, width):
        return edges.astype(bool)
    shrinking = source_width > width or source_height > height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_NEAREST
    resized = cv2.resize(edges * 255, (width, height), interpolation=interpolation)
    return resized > 0


def _matched(edges: np.ndarray, other: np.ndarray, tolerance_px: float) -> int:
    """How many pixels of ``edges`` lie within ``tolerance_px`` (Euclidean) of a pixel of ``other``."""
    distance = cv2.distanceTransform(np.where(other, 0, 255).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return int(np.count_nonzero(distance[edges] <= tolerance_px))


def edge_f_score(
    image_bgr: np.ndarray,
    edge_map: np.ndarray,
    box: Sequence[float],
    tolerance_px: float = 2,
    margin: float = 0.1,
    low_threshold: int = 100,
    high_threshold: int = 200,
    aperture_size: int = 3,
) -> float:
    """Edge F-score (0..1) of the generated image against the edge map that conditioned it.

    The image's edges are ``cv2.Canny`` of the whole 3-channel image with the edge map's settings (defaults:
    the ``"3d-dst"`` preset of :mod:`dst3d.generate.edges`; pass ``edges.*`` of the run), the edge map is
    brought to the image's size (:func:`edge_map_at`), and both are cut to ``box`` (image pixels) grown by
    ``margin`` times its longer side on every side (at least ``tolerance_px + 1`` px), so that a displaced object
    still shows, and the background far from the object does not count. An edge pixel is matched when an edge
    of the other map lies within ``tolerance_px`` (distance transform): precision is the matched share of the
    image's edges, recall that of the edge map's, F their harmonic mean. Both maps empty in the window: 1.0;
    one empty: 0.0.
    """
    height, width = image_bgr.shape[:2]
    image_edges = cv2.Canny(np.ascontiguousarray(image_bgr), low_threshold, high_threshold, apertureSize=aperture_size)
    x0, y0, x1, y1 = _region(box, margin, width, height, at_least=int(np.ceil(tolerance_px)) + 1)
    generated = image_edges[y0:y1, x0:x1] > 0
    conditioning = edge_map_at(edge_map, width, height)[y0:y1, x0:x1]
    generated_count, conditioning_count = np.count_nonzero(generated), np.count_nonzero(conditioning)
    if generated_count == 0 and conditioning_count == 0:
        return 1.0
    if generated_count == 0 or conditioning_count == 0:
        return 0.0
    precision = _matched(generated, conditioning, tolerance_px) / generated_count
    recall = _matched(conditioning, generated, tolerance_px) / conditioning_count
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def silhouette_iou(image_bgr: np.ndarray, mask: np.ndarray, box: Sequence[float] | None = None) -> float:
    """How well the annotated ``mask`` (H x W, object > 0, the image's size) separates the image's colours:
    the IoU (0..1) of a colour segmentation of the whole image, learnt from the mask, with the mask.

    Every pixel's colour falls in one of 8 x 8 x 8 BGR bins; a bin is object when more than half of the image's
    pixels of that colour lie inside the mask, and the segmentation is the pixels of object bins (the
    posterior of a histogram likelihood model with the mask's own share as prior). Where the object stands
    where the mask says, its colours are mostly inside the mask and the background's outside: the IoU is
    high. A displaced, rescaled or mirrored object leaves object colours outside the mask and background
    colours inside it, and a second copy puts as many object-coloured pixels outside as inside: the IoU drops.

    Why not GrabCut seeded from the mask: its definite background outside the object's box cannot see a
    second copy elsewhere, its graph cut repairs a displaced silhouette towards the image (that is its job),
    and it costs about 26 ms per 128 px image (3 iterations) against 0.12 ms for the histogram, which needs no
    randomness (deterministic), and is learnt from the image itself, so it suits composites and diffusion
    outputs alike. ``box`` is accepted for symmetry with :func:`edge_f_score` and unused: the whole image is
    the evidence. An empty mask: 0.0.
    """
    inside = np.asarray(mask) > 0
    if inside.shape != image_bgr.shape[:2]:
        raise ValueError(f"mask of shape {inside.shape} for an image of shape {image_bgr.shape[:2]}")
    inside_count = int(np.count_nonzero(inside))
    if inside_count == 0:
        return 0.0
    shift = 8 - int(np.log2(_COLOUR_LEVELS))
    quantised = (image_bgr[:, :, :3] >> shift).astype(np.int32)
    bins = (quantised[:, :, 0] * _COLOUR_LEVELS + quantised[:, :, 1]) * _COLOUR_LEVELS + quantised[:, :, 2]
    size = _COLOUR_LEVELS**3
    in_counts = np.bincount(bins[inside], minlength=size)
    all_counts = np.bincount(bins.ravel(), minlength=size)
    segmented = (2 * in_counts > all_counts)[bins]
    union = np.count_nonzero(segmented | inside)
    return float(np.count_nonzero(segmented & inside) / union)


def combine(edge_f: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """The combined consistency score, higher = more suspicious: ``1 - (edge_f + silhouette_iou) / 2``.

    The mean, not the minimum: the two scores sit at different levels on clean images (median edge_f 0.97,
    silhouette_iou 0.91 on the embedded default's composites), so the minimum is nearly always the IoU and
    throws the edge evidence away; the mean adds both deficits. Every failure ``bench/consistency.py`` injects
    lowers at least one score by 0.3-0.5 (a second copy outside the box leaves the edges in it intact but halves
    the IoU), which moves the mean well beyond the clean images' spread: AUROC 0.98-1.00 per failure type with
    the mean, 0.96-0.99 with the minimum."""
    return 1.0 - (np.asarray(edge_f, float) + np.asarray(iou, float)) / 2


def _mask_at(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """The render's mask (object > 0) at the generated image's size: area interpolation, object where at least
    half a pixel is covered."""
    inside = (mask if mask.ndim == 2 else mask.max(axis=2)) > 0
    if inside.shape == (height, width):
        return inside
    return cv2.resize(inside.astype(np.uint8) * 255, (width, height), interpolation=cv2.INTER_AREA) >= 128


def score_image(
    image_bgr: np.ndarray,
    mask: np.ndarray,
    edge_map: np.ndarray,
    box: Sequence[float],
    edge_settings: EdgeSettings = DEFAULT_EDGE_SETTINGS,
    tolerance_px: float = 2,
    margin: float = 0.1,
) -> tuple[float, float]:
    """(edge_f, silhouette_iou) of one generated image; ``mask`` (object > 0) and ``box`` (render pixels) are
    those of the render of ``render_width`` x ``render_height`` = the mask's size, scaled here to the image."""
    height, width = image_bgr.shape[:2]
    render_height, render_width = mask.shape[:2]
    scale_x, scale_y = width / render_width, height / render_height
    x0, y0, x1, y1 = (float(value) for value in box)
    image_box = (x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y)
    edge_f = edge_f_score(
        image_bgr,
        edge_map,
        image_box,
        tolerance_px=tolerance_px,
        margin=margin,
        low_threshold=edge_settings.low_threshold,
        high_threshold=edge_settings.high_threshold,
        aperture_size=edge_settings.aperture_size,
    )
    return edge_f, silhouette_iou(image_bgr, _mask_at(mask, width, height), image_box)


def consistency_scores(
    records: pd.DataFrame,
    edge_paths: Sequence[str | Path] | pd.Series,
    edge_settings: EdgeSettings = DEFAULT_EDGE_SETTINGS,
    tolerance_px: float = 2,
    margin: float = 0.1,
) -> pd.DataFrame:
    """Score every generated image against its render. Returns one row per record, in order: image_id,
    category, edge_f, silhouette_iou, consistency (:func:`combine`, higher = more suspicious).

    ``records``: a generated-image table (image_id, category, image_path, mask_path, width, height and
    bbox_x0..bbox_y1 of the render; paths absolute or relative to the working folder). ``edge_paths[i]``: the
    edge map of record i (the workflow's ``results/edges/<split>/<category>/<shard>/<image_id>.png``), aligned
    with the records by position. ``edge_settings``: those the edge maps were made with (``edges:`` config), for
    the Canny of the generated images. An image whose render mask is empty (``bbox_x0 < 0``: the object is out
    of view, so its pose label is not in the image) scores edge_f = silhouette_iou = 0.0, consistency = 1.0,
    the most suspicious, without reading any file.
    """
    edge_paths = list(edge_paths)
    if len(edge_paths) != len(records):
        raise ValueError(f"{len(records)} records but {len(edge_paths)} edge paths")
    rows = []
    for record, edge_path in zip(records.itertuples(index=False), edge_paths, strict=True):
        if record.bbox_x0 < 0:
            edge_f = iou = 0.0
        else:
            image = read_image(record.image_path)
            mask = read_image(record.mask_path, cv2.IMREAD_UNCHANGED)
            if mask.shape[:2] != (record.height, record.width):
                raise ValueError(
                    f"mask {record.mask_path} is {mask.shape[1]} x {mask.shape[0]}, the render "
                    f"{record.width} x {record.height}"
                )
            edges = read_image(edge_path, cv2.IMREAD_UNCHANGED)
            box = (record.bbox_x0, record.bbox_y0, record.bbox_x1, record.bbox_y1)
            edge_f, iou = score_image(image, mask, edges, box, edge_settings, tolerance_px, margin)
        rows.append({"image_id": record.image_id, "category": record.category, "edge_f": edge_f, "silhouette_iou": iou})
    scores = pd.DataFrame(rows, columns=["image_id", "category", "edge_f", "silhouette_iou"])
    scores["edge_f"] = scores["edge_f"].astype(float).round(6)
    scores["silhouette_iou"] = scores["silhouette_iou"].astype(float).round(6)
    scores["consistency"] = np.round(combine(scores["edge_f"], scores["silhouette_iou"]), 6)
    return scores


#: MAD to standard deviation for normally distributed scores.
_MAD_TO_SD = 1.4826


def robust_z(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """How far each value lies above the others, in robust standard deviations: (x - median) / (1.4826 MAD).

    Median and MAD ignore the tail being sought: a tenth of broken images moves neither, so a clean image scores
    about N(0, 1) whatever the failures do. A scale of zero (over half the values equal) falls back to the
    standard deviation, then to 1."""
    values = np.asarray(values, float)
    centre = np.median(values)
    scale = _MAD_TO_SD * np.median(np.abs(values - centre))
    if not scale > 0:
        scale = values.std()
    return (values - centre) / (scale if scale > 0 else 1.0)


def select_combined(
    kcf_scores: pd.DataFrame | None, consistency_scores: pd.DataFrame | None, policy: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep, per category, the images the chosen scores find least suspicious. Returns (kept, summary).

    policy: {"scores": a non-empty subset of ["kcf", "consistency"], "keep_fraction": f}. Each chosen score
    (``kcf``: ``kcf_loss`` of ``kcf_scores``, :func:`dst3d.kcf.score_fold`; ``consistency``: ``consistency`` of
    ``consistency_scores``, :func:`consistency_scores`) becomes a :func:`robust_z` within the category, and an
    image's ``outlier_z`` is the larger of them: how far it stands out on the score that suspects it most. The
    ceil(f * n) images of lowest ``outlier_z`` (ties by image_id) are kept, so exactly that share of every
    category, whatever the number of scores; with one score this is :func:`dst3d.kcf.select`'s fraction mode.
    The z-score measures how far outside the bulk of its category an image lies, which is where the failures
    are; a percentile rank would give a clean image with a middling score of one kind the same standing as a
    broken one caught by the other (``bench/consistency.py`` measures both, BENCHMARKS.md). The table of a score
    not chosen may be None; the chosen tables must score the same images.

    kept: the kept images (image_id, category, the chosen scores' columns and outlier_z), sorted by image_id.
    summary, one row per category: images, kept, dropped, kept_share, and dropped_by_kcf and
    dropped_by_consistency (dropped images whose larger z-score is that score's; 0 for a score not chosen), so
    dropped = dropped_by_kcf + dropped_by_consistency.
    """
    chosen = list(policy.get("scores", []))
    if not chosen or len(set(chosen)) != len(chosen) or set(chosen) - set(SCORE_COLUMNS):
        raise ValueError(f"policy scores must be a non-empty subset of {sorted(SCORE_COLUMNS)}, got {chosen!r}")
    keep_fraction = policy.get("keep_fraction")
    if keep_fraction is None or not 0 < keep_fraction <= 1:
        raise ValueError(f"policy keep_fraction must be in (0, 1], got {keep_fraction!r}")
    tables = {"kcf": kcf_scores, "consistency": consistency_scores}
    frame = None
    for name in chosen:
        table = tables[name]
        if table is None:
            raise ValueError(f"policy scores include {name!r} but its score table is None")
        table = table[["image_id", "category", SCORE_COLUMNS[name]]]
        if frame is None:
            frame = table
            continue
        missing = set(frame["image_id"]) ^ set(table["image_id"])
        if missing:
            raise ValueError(f"the score tables differ in {len(missing)} images, e.g. {sorted(missing)[:5]}")
        frame = frame.merge(table.drop(columns="category"), on="image_id", validate="one_to_one")
    kept_parts, summary = [], []
    for category, group in frame.groupby("category"):
        z = np.stack([robust_z(group[SCORE_COLUMNS[name]]) for name in chosen], axis=1)
        group = group.assign(outlier_z=np.round(z.max(axis=1), 6))
        by = pd.Series(np.asarray(chosen)[z.argmax(axis=1)], index=group.index)
        ranked = group.sort_values(["outlier_z", "image_id"], kind="stable")
        kept = ranked.head(int(np.ceil(keep_fraction * len(ranked))))
        dropped = by[~group.index.isin(kept.index)]
        kept_parts.append(kept)
        summary.append(
            {
                "category": category,
                "images": len(group),
                "kept": len(kept),
                "dropped": len(dropped),
                "kept_share": len(kept) / len(group),
                "dropped_by_kcf": int((dropped == "kcf").sum()),
                "dropped_by_consistency": int((dropped == "consistency").sum()),
            }
        )
    kept = pd.concat(kept_parts).sort_values("image_id").reset_index(drop=True)
    return kept, pd.DataFrame(summary)
