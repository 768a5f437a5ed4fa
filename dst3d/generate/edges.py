"""Canny edge maps of the renders: the control images of the canny ControlNet.

The pipeline is that of 3D-DST, which ran ControlNet's annotator on each render:

1. background: the RGBA render becomes a 3-channel image (``EdgeSettings.background``, see ``BACKGROUNDS``);
   3D-DST dropped the alpha channel (PIL ``convert("RGB")``), which is ``"drop"``.
2. resize: scale so the short side is ``short_side`` px and round each side to the nearest multiple of
   ``multiple`` (``round`` half to even, as ControlNet's ``resize_image``); ``INTER_AREA`` when shrinking,
   ``INTER_LANCZOS4`` when enlarging. ``short_side = 0`` keeps the render's size exactly.
3. ``cv2.Canny(image, low_threshold, high_threshold, apertureSize=aperture_size)`` on the 3-channel image
   (L1 gradient norm, OpenCV's default). On a multi-channel image Canny uses, per pixel, the channel with the
   largest gradient, so the channel order (BGR as cv2 reads, or RGB as PIL reads) only matters where two
   channels tie (the first wins): about 1 % of the edge pixels of a noisy texture, none on clean silhouettes.
4. the single-channel map is repeated into 3 equal channels (values 0 = no edge, 255 = edge), the layout
   ControlNet expects.

Images are numpy arrays as cv2 reads them: H x W x 4 (BGRA, straight alpha) or H x W x 3 (BGR), uint8.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from dst3d.io import read_image, write_image
from dst3d.logs import Progress

#: How transparent pixels are treated before Canny:
#: ``"drop"``: discard alpha and keep the RGB as stored (3D-DST). Blender stores nearly black under alpha 0:
#: dither noise of 1-2 levels, and the object's colour in a few pixels just outside the silhouette.
#: ``"black"`` / ``"white"``: composite the straight-alpha render over a black / white background, which also
#: blends the anti-aliased silhouette pixels (``"white"`` is what ControlNet's ``HWC3`` does to RGBA input).
BACKGROUNDS = ("drop", "black", "white")
_BACKGROUND_LEVELS = {"black": 0, "white": 255}

APERTURE_SIZES = (3, 5, 7)

#: Keys of the ``edges:`` config block that configure the rule, not the edge maps; ``from_config`` skips them.
RULE_KEYS = ("threads",)

#: Published settings; a preset gives every field of ``EdgeSettings``.
EDGE_PRESETS: dict[str, dict[str, object]] = {
    "3d-dst": {
        "low_threshold": 100,
        "high_threshold": 200,
        "aperture_size": 3,
        "short_side": 512,
        "multiple": 64,
        "background": "drop",
    },
    "p3d-diffusion": {
        "low_threshold": 150,
        "high_threshold": 200,
        "aperture_size": 3,
        "short_side": 512,
        "multiple": 64,
        "background": "drop",
    },
}


@dataclass(frozen=True)
class EdgeSettings:
    """Canny thresholds (gradient magnitude, L1 norm of the Sobel responses), Sobel aperture, output size and
    background handling. Defaults are the ``"3d-dst"`` preset. Raises ``ValueError`` naming the ``edges.*``
    config key of an invalid value."""

    low_threshold: int = 100
    high_threshold: int = 200
    aperture_size: int = 3
    short_side: int = 512
    multiple: int = 64
    background: str = "drop"

    def __post_init__(self) -> None:
        if not 0 <= self.low_threshold <= self.high_threshold:
            raise ValueError(
                f"edges.low_threshold ({self.low_threshold}) and edges.high_threshold ({self.high_threshold}) "
                "must satisfy 0 <= low_threshold <= high_threshold"
            )
        if self.aperture_size not in APERTURE_SIZES:
            raise ValueError(f"edges.aperture_size must be one of {APERTURE_SIZES}, got {self.aperture_size}")
        if self.short_side < 0:
            raise ValueError(f"edges.short_side must be >= 0 (0 keeps the render's size), got {self.short_side}")
        if self.multiple < 1:
            raise ValueError(f"edges.multiple must be >= 1, got {self.multiple}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"edges.background must be one of {BACKGROUNDS}, got {self.background!r}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, object] | None) -> EdgeSettings:
        """Settings from the ``edges:`` config block: the ``preset`` (default ``"3d-dst"``) overridden by the
        explicit keys; a key set to ``None`` is treated as absent and ``RULE_KEYS`` are skipped."""
        given = {key: value for key, value in (cfg or {}).items() if value is not None and key not in RULE_KEYS}
        preset_name = given.pop("preset", "3d-dst")
        if preset_name not in EDGE_PRESETS:
            raise ValueError(f"edges.preset must be one of {sorted(EDGE_PRESETS)} or null, got {preset_name!r}")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            known_keys = ", ".join(["preset", *sorted(known), *RULE_KEYS])
            raise ValueError(f"unknown edges config keys {unknown}; known keys: {known_keys}")
        return cls(**{**EDGE_PRESETS[preset_name], **given})


def output_size(height: int, width: int, settings: EdgeSettings) -> tuple[int, int]:
    """(height, width) in px of the edge map of a ``height`` x ``width`` render (ControlNet's ``resize_image``)."""
    if settings.short_side == 0:
        return height, width
    scale = settings.short_side / min(height, width)
    return _round_to_multiple(height * scale, settings.multiple), _round_to_multiple(width * scale, settings.multiple)


def _round_to_multiple(length_px: float, multiple: int) -> int:
    return max(1, round(length_px / multiple)) * multiple


def _three_channels(image: np.ndarray, background: str) -> np.ndarray:
    """The BGR(A) ``image`` as a contiguous 3-channel uint8 image, transparent pixels handled per ``background``."""
    if image.shape[2] == 3:
        return np.ascontiguousarray(image)
    if background == "drop":
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    alpha = image[:, :, 3:4].astype(np.uint16)
    level = _BACKGROUND_LEVELS[background]
    # Straight alpha over a solid colour, rounded to the nearest level: (c * a + bg * (255 - a)) / 255.
    blended = (image[:, :, :3] * alpha + level * (255 - alpha) + 127) // 255
    return blended.astype(np.uint8)


def edge_map(image: np.ndarray, settings: EdgeSettings) -> np.ndarray:
    """The edge map of one render.

    ``image``: H x W x 4 (BGRA or RGBA) or H x W x 3 uint8. Returns an H' x W' x 3 uint8 array of 0 and 255
    with equal channels, (H', W') = ``output_size(H, W, settings)``.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W x 3 or H x W x 4 uint8 image, got shape {image.shape} {image.dtype}")
    colour = _three_channels(image, settings.background)
    height, width = colour.shape[:2]
    target_height, target_width = output_size(height, width, settings)
    if (target_height, target_width) != (height, width):
        interpolation = cv2.INTER_LANCZOS4 if settings.short_side > min(height, width) else cv2.INTER_AREA
        colour = cv2.resize(colour, (target_width, target_height), interpolation=interpolation)
    edges = cv2.Canny(colour, settings.low_threshold, settings.high_threshold, apertureSize=settings.aperture_size)
    return cv2.cvtColor(edges, cv2.COLOR_GRAY2BGR)


def read_render(path: Path, drop_alpha: bool = False) -> np.ndarray:
    """Read a render PNG as cv2 does (BGRA or BGR, uint8); errors name the file.

    With ``drop_alpha`` the decoder discards the alpha channel itself (BGR, the same pixels as
    ``cv2.cvtColor(BGRA2BGR)`` of the 4-channel image, without decoding and copying the fourth channel)."""
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH if drop_alpha else cv2.IMREAD_UNCHANGED
    image = read_image(path, flags)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"render {path} must be an 8-bit RGB or RGBA image, got shape {image.shape} {image.dtype}")
    return image


def _detect_edges_file(render_path: Path, out_path: Path, settings: EdgeSettings, atomic: bool) -> None:
    edges = edge_map(read_render(render_path, drop_alpha=settings.background == "drop"), settings)
    write_image(edges, out_path, atomic=atomic)


def detect_edges_shard(
    render_paths: Sequence[Path],
    out_paths: Sequence[Path],
    settings: EdgeSettings,
    threads: int,
    atomic: bool = True,
    log: logging.Logger | None = None,
) -> None:
    """Write the edge map of ``render_paths[i]`` to ``out_paths[i]`` (PNG, 3-channel uint8) for every i.

    Each file is written atomically (``dst3d.io.write_image``; folders are created) unless ``atomic`` is
    false: then the files are written in place into folders that must exist, for a caller that fills a staged
    folder (``dst3d.io.staged_directory``), which is published as a whole, so a per-file temporary and rename
    would only cost time. Images are spread over a pool of ``threads`` threads (cv2 releases the GIL while
    decoding, detecting and encoding; with one thread they are processed in the calling thread); OpenCV's own
    threading is limited to 1 meanwhile, so the shard uses ``threads`` cores, and restored afterwards. The
    first failure (a missing or undecodable render, which the error names) cancels the images not yet started
    and is raised. With ``log``, progress (k/N, rate, ETA) is logged every 10 s.
    """
    if len(render_paths) != len(out_paths):
        raise ValueError(f"{len(render_paths)} renders but {len(out_paths)} output paths")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    pairs = [(Path(render_path), Path(out_path)) for render_path, out_path in zip(render_paths, out_paths, strict=True)]
    progress = Progress(log, len(pairs), "edge maps") if log is not None else None
    opencv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        if threads == 1:
            for render_path, out_path in pairs:
                _detect_edges_file(render_path, out_path, settings, atomic)
                if progress is not None:
                    progress.step()
            return
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="edges") as pool:
            futures = [
                pool.submit(_detect_edges_file, render_path, out_path, settings, atomic)
                for render_path, out_path in pairs
            ]
            try:
                for future in futures:
                    future.result()
                    if progress is not None:
                        progress.step()
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
    finally:
        cv2.setNumThreads(opencv_threads)
