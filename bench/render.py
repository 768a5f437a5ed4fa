"""Render-stage benchmark: time per image and the share of a whole render job spent outside Blender's own render
call (``bpy.ops.render.render``, which includes Blender writing the PNG), split into process start and imports
(Blender's included), scene set-up, model import with UV projection, per-image work (mask, depth, annotation
record) and the Parquet write.

Each case runs as a fresh Python process, as a Snakemake job does, rendering one shard of the embedded default's
car category with the schema's render defaults (smart UV texturing) at the given size and samples.
Usage: python bench/render.py [--images 80] [--threads 2] [--sizes 256 512] [--samples 32] [--denoise both]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

JOB = """
import json, sys, time
started = time.perf_counter()
sys.path.insert(0, {repo!r})
import bpy
import pandas as pd
from dst3d.inputs import catalog
from dst3d.io import write_table
from dst3d.render.blender import ShardAssets, render_shard
root = {root!r}
models = catalog.models_of(catalog.read_model_table(root + "/models.csv"), "car")
textures = catalog.split_assets(catalog.index_textures(root + "/textures", 0.2), "train", "textures")
backgrounds = catalog.split_assets(catalog.index_backgrounds(root + "/backgrounds", 0.2), "train", "backgrounds")
timing = {{"startup_s": time.perf_counter() - started}}
assets = ShardAssets(models, textures, backgrounds)
table, shard_timing = render_shard("train", "car", range({images}), assets, {settings!r}, 0, {out!r}, threads={threads})
timing.update(shard_timing)
write_started = time.perf_counter()
write_table(table, {out!r} + ".parquet")
timing["parquet_s"] = time.perf_counter() - write_started
print(json.dumps(timing))
"""


def render_settings(size: int, samples: int, denoise: bool, threads: int) -> dict:
    """The schema's render defaults with the benchmark's size, samples and denoiser."""
    from snakemake.utils import validate

    config = {
        "categories": ["car"],
        "render": {"width": size, "height": size, "samples": samples, "denoise": denoise, "threads": threads},
    }
    validate(config, str(REPO / "config" / "schema.yaml"), set_default=True)
    return config["render"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=80, help="images per shard (embedded default: 80)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--denoise", choices=["off", "on", "both"], default="off")
    arguments = parser.parse_args()
    from dst3d.inputs.embedded import build_embedded_assets

    denoise_cases = {"off": [False], "on": [True], "both": [False, True]}[arguments.denoise]
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "assets"
        build_embedded_assets(
            root,
            {
                "categories": ["car"],
                "models_per_category": 3,
                "distance": 2.0,
                "sampling_mode": "3",
                "textures_per_class": 5,
                "texture_test_fraction": 0.2,
                "texture_size": 256,
                "backgrounds_train": 4,
                "backgrounds_test": 1,
                "background_size": 64,
            },
            global_seed=0,
        )
        print(
            f"{'size':>5} {'samples':>7} {'denoise':>7} {'images':>6} {'s/image':>8} {'render s/image':>14} "
            f"{'outside':>8} {'start':>6} {'setup':>6} {'models':>6} {'per image':>9} {'parquet':>7}"
        )
        for size in arguments.sizes:
            for denoise in denoise_cases:
                out = str(Path(temporary) / f"shard-{size}-{denoise}")
                code = JOB.format(
                    repo=str(REPO),
                    root=str(root),
                    images=arguments.images,
                    out=out,
                    settings=render_settings(size, arguments.samples, denoise, arguments.threads),
                    threads=arguments.threads,
                )
                started = time.perf_counter()
                completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                job_s = time.perf_counter() - started
                timing = json.loads(completed.stdout.strip().splitlines()[-1])
                images = timing["images"]
                per_image_s = timing["total_s"] - timing["render_s"] - timing["import_s"] - timing["setup_s"]
                start_s = job_s - timing["total_s"] - timing["parquet_s"]  # interpreter, imports, index tables
                shares = [start_s, timing["setup_s"], timing["import_s"], per_image_s, timing["parquet_s"]]
                print(
                    f"{size:>5} {arguments.samples:>7} {str(denoise):>7} {images:>6} {job_s / images:>8.3f} "
                    f"{timing['render_s'] / images:>14.3f} {100 * (1 - timing['render_s'] / job_s):>7.1f}% "
                    + " ".join(f"{100 * share / job_s:>5.1f}%" for share in shares[:3])
                    + f" {100 * shares[3] / job_s:>8.1f}% {100 * shares[4] / job_s:>6.1f}%",
                    flush=True,
                )


if __name__ == "__main__":
    main()
