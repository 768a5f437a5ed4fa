"""Edge maps: silhouette edges, sizes, presets, background handling and the shard writer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dst3d.generate.edges import EDGE_PRESETS, EdgeSettings, detect_edges_shard, edge_map, output_size, read_render

SQUARE = slice(128, 384)  # rows and columns of the opaque square in the synthetic render


def square_render(height: int = 512, width: int = 512, grey: int = 160) -> np.ndarray:
    """A render as Blender writes it: BGRA, transparent black background, an opaque grey square."""
    image = np.zeros((height, width, 4), np.uint8)
    image[SQUARE, SQUARE] = (grey, grey, grey, 255)
    return image


def textured_render(seed: int = 0) -> np.ndarray:
    """An opaque render with texture at all gradient levels, so thresholds change the result."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(128, 60, (512, 512, 3)).clip(0, 255).astype(np.uint8), (5, 5), 1.5)
    return np.dstack([noise, np.full((512, 512), 255, np.uint8)])


def distance_to_square_outline(height: int, width: int, top: float, bottom: float) -> np.ndarray:
    """Per-pixel distance (px) to the outline of the square [top, bottom) x [top, bottom)."""
    rows, cols = np.mgrid[0:height, 0:width] + 0.5
    inside = (rows > top) & (rows < bottom) & (cols > top) & (cols < bottom)
    to_sides = np.minimum.reduce([abs(rows - top), abs(rows - bottom), abs(cols - top), abs(cols - bottom)])
    outside_distance = np.hypot(
        np.clip(np.maximum(top - rows, rows - bottom), 0, None), np.clip(np.maximum(top - cols, cols - bottom), 0, None)
    )
    return np.where(inside, to_sides, outside_distance)


def test_edges_trace_the_silhouette_of_the_square():
    edges = edge_map(square_render(), EdgeSettings())

    assert edges.shape == (512, 512, 3) and edges.dtype == np.uint8
    assert set(np.unique(edges)) == {0, 255}
    assert np.array_equal(edges[:, :, 0], edges[:, :, 1]) and np.array_equal(edges[:, :, 0], edges[:, :, 2])
    on = edges[:, :, 0] == 255
    distance = distance_to_square_outline(512, 512, 128, 384)
    assert distance[on].max() <= 1.5, "edge pixels away from the silhouette"
    # every side of the square carries an edge along its whole length (corners aside)
    for band in (on[126:131, 140:372], on[381:386, 140:372], on[140:372, 126:131].T, on[140:372, 381:386].T):
        assert band.any(axis=0).all()


def test_edge_map_matches_cv2_canny_on_the_rgb_render_for_both_presets():
    render = textured_render()
    for name, preset in EDGE_PRESETS.items():
        settings = EdgeSettings.from_config({"preset": name})
        rgb = np.ascontiguousarray(render[:, :, :3])
        expected = cv2.Canny(rgb, preset["low_threshold"], preset["high_threshold"])
        assert np.array_equal(edge_map(render, settings)[:, :, 0], expected), name
    strict = edge_map(render, EdgeSettings.from_config({"preset": "p3d-diffusion"}))
    loose = edge_map(render, EdgeSettings.from_config({"preset": "3d-dst"}))
    assert (strict > 0).sum() < (loose > 0).sum()


def test_channel_order_only_matters_where_channels_tie():
    coloured = square_render()
    coloured[SQUARE, SQUARE, :3] = (40, 200, 120)
    assert np.array_equal(edge_map(coloured, EdgeSettings()), edge_map(coloured[:, :, [2, 1, 0, 3]], EdgeSettings()))
    assert np.array_equal(edge_map(coloured, EdgeSettings()), edge_map(coloured[:, :, :3], EdgeSettings()))
    textured = textured_render(seed=1)
    bgr, rgb = edge_map(textured, EdgeSettings()), edge_map(textured[:, :, [2, 1, 0, 3]], EdgeSettings())
    assert (bgr != rgb).any(axis=2).sum() < 0.02 * (bgr > 0).any(axis=2).sum()


@pytest.mark.parametrize(
    ("height", "width", "short_side", "multiple", "expected"),
    [
        (512, 512, 512, 64, (512, 512)),
        (480, 640, 512, 64, (512, 704)),  # 640 * 512 / 480 = 682.7 -> 10.67 * 64 -> 704
        (352, 520, 512, 64, (512, 768)),  # P3D-Diffusion's renders: 520 * 512 / 352 = 756.4 -> 768
        (1024, 1024, 512, 64, (512, 512)),
        (300, 500, 256, 8, (256, 424)),  # 500 * 256 / 300 = 426.7 -> 53.3 * 8 -> 424
        (300, 500, 0, 64, (300, 500)),
    ],
)
def test_output_size_rounds_the_scaled_sides_to_the_multiple(height, width, short_side, multiple, expected):
    settings = EdgeSettings(short_side=short_side, multiple=multiple)
    assert output_size(height, width, settings) == expected
    assert edge_map(square_render(height, width), settings).shape == (*expected, 3)


def test_resized_edges_follow_the_scaled_silhouette():
    edges = edge_map(square_render(1024, 1024), EdgeSettings(short_side=512))[:, :, 0] > 0
    distance = distance_to_square_outline(512, 512, 64, 192)  # the square [128, 384) of 1024 px, halved
    assert edges.any() and distance[edges].max() <= 1.5


@pytest.mark.parametrize(
    ("height", "width", "interpolation"),
    [(1024, 1024, cv2.INTER_AREA), (352, 520, cv2.INTER_LANCZOS4)],
)
def test_resize_follows_controlnets_resize_image(height, width, interpolation):
    render = cv2.resize(textured_render(seed=2), (width, height), interpolation=cv2.INTER_AREA)
    target_height, target_width = output_size(height, width, EdgeSettings())
    resized = cv2.resize(
        np.ascontiguousarray(render[:, :, :3]), (target_width, target_height), interpolation=interpolation
    )
    assert np.array_equal(edge_map(render, EdgeSettings())[:, :, 0], cv2.Canny(resized, 100, 200))


def test_background_modes_treat_transparent_pixels_as_documented():
    # white object on a transparent area whose stored RGB is also white
    render = np.full((256, 256, 4), 255, np.uint8)
    render[:, :, 3] = 0
    render[64:192, 64:192, 3] = 255
    drop = edge_map(render, EdgeSettings(background="drop", short_side=0))
    black = edge_map(render, EdgeSettings(background="black", short_side=0))
    white = edge_map(render, EdgeSettings(background="white", short_side=0))
    assert not drop.any(), "drop keeps the stored RGB, which is uniform here"
    assert not white.any(), "a white object over white has no silhouette"
    on = black[:, :, 0] > 0
    assert on.any() and distance_to_square_outline(256, 256, 64, 192)[on].max() <= 1.5


def test_from_config_applies_the_preset_then_the_explicit_keys():
    assert EdgeSettings.from_config({}) == EdgeSettings()
    assert EdgeSettings.from_config({"preset": None, "low_threshold": None, "threads": 2}) == EdgeSettings()
    p3d = EdgeSettings.from_config({"preset": "p3d-diffusion"})
    assert (p3d.low_threshold, p3d.high_threshold) == (150, 200)
    custom = EdgeSettings.from_config({"preset": "p3d-diffusion", "low_threshold": 120, "background": "white"})
    assert (custom.low_threshold, custom.high_threshold, custom.background) == (120, 200, "white")
    assert EdgeSettings().low_threshold == EDGE_PRESETS["3d-dst"]["low_threshold"] == 100


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"preset": "hed"}, "edges.preset"),
        ({"sigma": 1.0}, "sigma"),
        ({"aperture_size": 4}, "edges.aperture_size"),
        ({"low_threshold": 250}, "edges.low_threshold"),
        ({"short_side": -1}, "edges.short_side"),
        ({"multiple": 0}, "edges.multiple"),
        ({"background": "grey"}, "edges.background"),
    ],
)
def test_invalid_settings_name_the_config_key(cfg, message):
    with pytest.raises(ValueError, match=message):
        EdgeSettings.from_config(cfg)


def write_renders(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        render = square_render(grey=60 + 10 * index)
        render[SQUARE, 200 + index] = (255, 255, 255, 255)  # a distinct inner line per image
        path = folder / f"render-{index:03d}.png"
        assert cv2.imwrite(str(path), render)
        paths.append(path)
    return paths


@pytest.mark.parametrize("threads", [1, 3])
def test_shard_writes_three_channel_pngs_equal_to_edge_map(tmp_path, threads):
    renders = write_renders(tmp_path / "renders", 8)
    outputs = [tmp_path / "edges" / f"edge-{index:03d}.png" for index in range(8)]
    opencv_threads = cv2.getNumThreads()

    detect_edges_shard(renders, outputs, EdgeSettings(), threads=threads)

    assert cv2.getNumThreads() == opencv_threads
    assert sorted(path.name for path in (tmp_path / "edges").iterdir()) == [path.name for path in outputs]
    for render_path, out_path in zip(renders, outputs, strict=True):
        written = cv2.imread(str(out_path), cv2.IMREAD_UNCHANGED)
        assert written.shape == (512, 512, 3) and written.dtype == np.uint8
        assert np.array_equal(written, edge_map(read_render(render_path), EdgeSettings()))


def test_shard_output_does_not_depend_on_the_thread_count(tmp_path):
    renders = write_renders(tmp_path, 6)
    one = [tmp_path / f"one-{index}.png" for index in range(6)]
    four = [tmp_path / f"four-{index}.png" for index in range(6)]
    detect_edges_shard(renders, one, EdgeSettings(short_side=256), threads=1)
    detect_edges_shard(renders, four, EdgeSettings(short_side=256), threads=4)
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, four, strict=True))


def test_missing_render_is_named_and_leaves_no_temporary_files(tmp_path):
    renders = write_renders(tmp_path / "renders", 3)
    renders[1] = tmp_path / "renders" / "absent.png"
    outputs = [tmp_path / "edges" / f"edge-{index}.png" for index in range(3)]
    with pytest.raises(FileNotFoundError, match="absent.png"):
        detect_edges_shard(renders, outputs, EdgeSettings(), threads=2)
    assert not outputs[1].exists()
    assert not [path for path in (tmp_path / "edges").iterdir() if path.name.startswith(".")]


@pytest.mark.parametrize("content", [b"", b"not a png at all", "truncated"])
def test_undecodable_render_is_named(tmp_path, content):
    good = write_renders(tmp_path, 1)[0]
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:200] if content == "truncated" else content)
    with pytest.raises(FileNotFoundError, match="bad.png.*not an image"):
        detect_edges_shard([bad], [tmp_path / "edge.png"], EdgeSettings(), threads=1)
    assert not (tmp_path / "edge.png").exists()


def test_sixteen_bit_render_is_rejected_with_its_name(tmp_path):
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), square_render().astype(np.uint16) * 257)
    with pytest.raises(ValueError, match="deep.png.*8-bit"):
        read_render(path)


def test_shard_rejects_mismatched_lists(tmp_path):
    with pytest.raises(ValueError, match="2 renders but 1 output"):
        detect_edges_shard([tmp_path / "a.png", tmp_path / "b.png"], [tmp_path / "e.png"], EdgeSettings(), 1)


def test_decoder_alpha_drop_equals_dropping_it_after_decoding(tmp_path):
    for path in write_renders(tmp_path, 3):
        dropped = read_render(path, drop_alpha=True)
        assert dropped.shape == (512, 512, 3)
        assert np.array_equal(dropped, cv2.cvtColor(read_render(path), cv2.COLOR_BGRA2BGR))


def test_sixteen_bit_render_is_rejected_when_the_decoder_drops_alpha(tmp_path):
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), square_render().astype(np.uint16) * 257)
    with pytest.raises(ValueError, match="deep.png.*8-bit"):
        read_render(path, drop_alpha=True)


@pytest.mark.parametrize("threads", [1, 2])
def test_in_place_writes_equal_atomic_writes(tmp_path, threads):
    renders = write_renders(tmp_path / "renders", 4)
    (tmp_path / "staged").mkdir()
    atomic = [tmp_path / "atomic" / path.name for path in renders]
    in_place = [tmp_path / "staged" / path.name for path in renders]
    detect_edges_shard(renders, atomic, EdgeSettings(short_side=256), threads=threads)
    detect_edges_shard(renders, in_place, EdgeSettings(short_side=256), threads=threads, atomic=False)
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(atomic, in_place, strict=True))
    assert sorted(path.name for path in (tmp_path / "staged").iterdir()) == sorted(path.name for path in renders)
