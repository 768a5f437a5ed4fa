"""Throughput of the edge stage against a plain OpenCV loop over the same renders.

Writes ``--images`` synthetic 512 x 512 RGBA renders (an anti-aliased, shaded object with inner panels and
Cycles-like residual noise on a transparent background) to a temporary folder, then times, per image:

* plain loop: ``cv2.imread`` + ``cv2.Canny(100, 200)`` + ``cv2.imwrite`` of the 1-channel map (OpenCV's
  default threading), and the same loop writing the 3-channel map that the stage writes, with OpenCV's
  default threading and limited to 1 thread;
* ``detect_edges_shard`` with 1 and 2 threads (3d-dst preset).

The renders are cut into blocks of ``--block`` images; each block is timed ``--repeats`` times with every
method (methods interleaved, the repeats spread over the whole run), and a method's figure is the sum over
blocks of its best time, so bursts of other load on the machine do not count; the order of the methods
rotates from block to block. The stage's files are checked
to be identical to the 3-channel plain loop's.

Usage: ``python bench/edges.py [--images 200] [--block 20] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dst3d.generate.edges import EdgeSettings, detect_edges_shard


def synthetic_render(rng: np.random.Generator, size_px: int) -> np.ndarray:
    """A BGRA render as Blender writes it: straight alpha, black under transparent pixels."""
    centre = size_px / 2
    angles = np.sort(rng.uniform(0, 2 * np.pi, 9))
    radii = rng.uniform(0.25, 0.42, 9) * size_px
    outline = np.stack([centre + radii * np.cos(angles), centre + radii * np.sin(angles)], axis=1)
    mask = np.zeros((size_px, size_px), np.uint8)
    cv2.fillPoly(mask, [outline.astype(np.int32)], 255, lineType=cv2.LINE_AA)

    rows = np.linspace(0.0, 1.0, size_px)[:, None, None]
    colour = rng.uniform(60, 200, 3) * (1.0 - 0.4 * rows) * np.ones((size_px, size_px, 3))  # lit from above
    for _ in range(4):  # panels, windows, wheels: inner edges of different contrast
        panel_centre = centre + rng.uniform(-0.2, 0.2, 2) * size_px
        panel = panel_centre + rng.uniform(-0.08, 0.08, (4, 2)) * size_px
        cv2.fillPoly(colour, [panel.astype(np.int32)], tuple(rng.uniform(20, 235, 3)), lineType=cv2.LINE_AA)
    colour += rng.normal(0.0, 2.0, colour.shape)  # residual path-tracing noise after denoising
    render = np.zeros((size_px, size_px, 4), np.uint8)
    render[:, :, :3] = np.where(mask[:, :, None] > 0, colour.clip(0, 255), 0).astype(np.uint8)
    render[:, :, 3] = mask
    return render


def plain_loop(render_paths: list[Path], out_paths: list[Path], three_channels: bool) -> None:
    for render_path, out_path in zip(render_paths, out_paths, strict=True):
        edges = cv2.Canny(cv2.imread(str(render_path)), 100, 200)
        cv2.imwrite(str(out_path), cv2.cvtColor(edges, cv2.COLOR_GRAY2BGR) if three_channels else edges)


def plain_loop_one_opencv_thread(render_paths: list[Path], out_paths: list[Path]) -> None:
    default_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        plain_loop(render_paths, out_paths, three_channels=True)
    finally:
        cv2.setNumThreads(default_threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=512, help="render side, px")
    parser.add_argument("--block", type=int, default=20, help="images per timed block")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dst3d-bench-edges-") as folder:
        root = Path(folder)
        (root / "renders").mkdir()
        rng = np.random.default_rng(0)
        renders = [root / "renders" / f"render-{index:04d}.png" for index in range(args.images)]
        for path in renders:
            cv2.imwrite(str(path), synthetic_render(rng, args.size))

        def outputs(name: str) -> list[Path]:
            (root / name).mkdir(exist_ok=True)
            return [root / name / path.name for path in renders]

        settings = EdgeSettings()
        methods = {
            "plain loop, 1-channel PNG": lambda ins, outs: plain_loop(ins, outs, three_channels=False),
            "plain loop, 3-channel PNG": lambda ins, outs: plain_loop(ins, outs, three_channels=True),
            "plain loop, 3-channel PNG, OpenCV 1 thread": plain_loop_one_opencv_thread,
            "detect_edges_shard, threads=1": lambda ins, outs: detect_edges_shard(ins, outs, settings, 1),
            "detect_edges_shard, threads=2": lambda ins, outs: detect_edges_shard(ins, outs, settings, 2),
        }
        folders = dict(zip(methods, ["plain1", "plain3", "plain3_1", "stage1", "stage2"], strict=True))
        out_paths = {name: outputs(folder) for name, folder in folders.items()}
        for path in renders:  # warm the page cache
            path.read_bytes()
        blocks = [slice(start, start + args.block) for start in range(0, args.images, args.block)]
        best_ms = {name: [float("inf")] * len(blocks) for name in methods}
        names = list(methods)
        for repeat in range(args.repeats):  # repeats outermost: a block's runs are spread over the whole benchmark
            for block_index, block in enumerate(blocks):
                # The order of the methods rotates with every block and repeat, so no method always runs right
                # after the same other one (which shifted the figures by up to 10 %).
                shift = (repeat + block_index) % len(names)
                for name in names[shift:] + names[:shift]:
                    method = methods[name]
                    for out_path in out_paths[name][block]:  # a real run writes new files
                        out_path.unlink(missing_ok=True)
                    started = time.perf_counter()
                    method(renders[block], out_paths[name][block])
                    elapsed_ms = (time.perf_counter() - started) * 1e3
                    best_ms[name][block_index] = min(best_ms[name][block_index], elapsed_ms)
        per_image_ms = {name: sum(block_ms) / args.images for name, block_ms in best_ms.items()}

        for stage_folder in ("stage1", "stage2"):
            for path in renders:
                if (root / stage_folder / path.name).read_bytes() != (root / "plain3" / path.name).read_bytes():
                    raise SystemExit(f"{stage_folder}/{path.name} differs from the plain loop's edge map")

    print(
        f"{args.images} renders of {args.size} x {args.size} px RGBA, OpenCV {cv2.__version__}, "
        f"{os.cpu_count()} CPUs, OpenCV default threads {cv2.getNumThreads()}, "
        f"blocks of {args.block}, best of {args.repeats} per block"
    )
    reference_1ch = per_image_ms["plain loop, 1-channel PNG"]
    reference_3ch = per_image_ms["plain loop, 3-channel PNG"]
    print(f"{'method':<45} {'ms/image':>9} {'vs plain 1ch':>13} {'vs plain 3ch':>13}")
    for name, milliseconds in per_image_ms.items():
        print(
            f"{name:<45} {milliseconds:>9.2f} {reference_1ch / milliseconds:>12.2f}x "
            f"{reference_3ch / milliseconds:>12.2f}x"
        )


if __name__ == "__main__":
    main()
