"""Which conditioning keeps the annotation: the same renders generated with ``canny``, ``depth`` and ``canny+depth``,
each image scored against its own render by the model-free consistency check (:mod:`dst3d.consistency`: edge
F-score against the render's edge map, silhouette IoU, combined score; higher combined = more suspicious), plus the
time per image.

With ``--base-model``, ``--controlnet-model`` and ``--depth-controlnet-model`` (model ids in the Hugging Face cache,
or local folders) it measures real weights; without them it builds tiny random-weight SD 1.5 pipelines
(:mod:`dst3d.testing.tiny_diffusion`), which exercise the plumbing only: their images are noise around the controls,
so their scores say nothing about which conditioning is better. The renders are the embedded default's (Blender,
``--images`` per category for car and chair, ``render.depth: png16``), the edge maps the 3D-DST preset's.

Usage: ``python bench/conditioning.py [--images 6] [--size 64] [--steps 4] [--base-model M --controlnet-model C
--depth-controlnet-model D] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dst3d import consistency  # noqa: E402
from dst3d.config_schema import validate_config  # noqa: E402
from dst3d.generate import generate_shard  # noqa: E402
from dst3d.generate.edges import EdgeSettings, detect_edges_shard  # noqa: E402
from dst3d.inputs import catalog, embedded  # noqa: E402
from dst3d.render.blender import ShardAssets, render_shard  # noqa: E402

CATEGORIES = ["car", "chair"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--base-model")
    parser.add_argument("--controlnet-model")
    parser.add_argument("--depth-controlnet-model")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    config = {"categories": CATEGORIES, "render": {"width": args.size, "height": args.size, "samples": 8}}
    config["render"]["depth"] = "png16"
    validate_config(config)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if args.base_model:
            models = (args.base_model, args.controlnet_model, args.depth_controlnet_model)
            label = "given weights"
        else:
            from dst3d.testing.tiny_diffusion import build_tiny_controlnet, build_tiny_pipeline

            tiny = build_tiny_pipeline(root / "tiny")
            depth = build_tiny_controlnet(root / "tiny" / "depth", seed=5)
            models = (str(tiny.base_model), str(tiny.controlnet_model), str(depth))
            label = "tiny random weights (plumbing only)"
        embedded.build_embedded_assets(root / "assets", {**config["assets"]["embedded"], "categories": CATEGORIES}, 0)
        table = catalog.read_model_table(root / "assets" / "models.csv")
        textures = catalog.index_textures(root / "assets" / "textures", 0.2)
        backgrounds = catalog.index_backgrounds(root / "assets" / "backgrounds", 0.2)
        edge_settings = EdgeSettings.from_config({"preset": "3d-dst", "short_side": args.size})
        shards = []
        for category in CATEGORIES:
            records, _ = render_shard(
                "train",
                category,
                range(args.images),
                ShardAssets(
                    catalog.models_of(table, category),
                    catalog.split_assets(textures, "train", "textures"),
                    catalog.split_assets(backgrounds, "train", "backgrounds"),
                ),
                config["render"],
                0,
                root / "render" / category,
                threads=2,
            )
            edges_dir = root / "edges" / category
            detect_edges_shard(
                [Path(path) for path in records["render_path"]],
                [edges_dir / f"{image_id}.png" for image_id in records["image_id"]],
                edge_settings,
                threads=2,
            )
            shards.append((category, records, edges_dir))
        print(f"{len(CATEGORIES) * args.images} images of {args.size} px, {args.steps} steps, {label}")
        print(f"{'conditioning':>12} {'edge_f':>7} {'sil_iou':>8} {'combined':>9} {'s/image':>8}")
        for conditioning in ("canny", "depth", "canny+depth"):
            settings = {
                "base_model": models[0],
                "controlnet_model": models[1],
                "depth_controlnet_model": models[2],
                "conditioning": conditioning,
                "size": args.size,
                "steps": args.steps,
                "batch_size": 2,
                "device": args.device,
            }
            scored, started = [], time.perf_counter()
            for category, records, edges_dir in shards:
                prompts = {
                    "prompts": {image_id: f"An image of {category}" for image_id in records["image_id"]},
                    "negative_prompt": "",
                    "split": "train",
                    "category": category,
                }
                out = root / "generate" / conditioning.replace("+", "_") / category
                generated = generate_shard("controlnet", records, out, settings, 0, prompts, edges_dir)
                edge_paths = [edges_dir / f"{image_id}.png" for image_id in generated["image_id"]]
                scored.append(consistency.consistency_scores(generated, edge_paths, edge_settings))
            seconds = (time.perf_counter() - started) / (len(CATEGORIES) * args.images)
            scores = pd.concat(scored)
            print(
                f"{conditioning:>12} {scores['edge_f'].mean():>7.3f} {scores['silhouette_iou'].mean():>8.3f} "
                f"{scores['consistency'].mean():>9.3f} {seconds:>8.2f}"
            )


if __name__ == "__main__":
    main()
