"""Render-stage benchmark: time per image and the share of a whole render job spent outside Blender's own
render call (process start, imports, scene set-up, mesh import, mask/annotation work, Parquet write).

Each case runs as a fresh Python process, as a Snakemake job does, rendering one shard of the embedded default.
Usage: python bench/render.py [--images 24] [--threads 2]
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
import pandas as pd
from dst3d import assets
from dst3d.io import write_table
from dst3d.render import render_shard
root = {root!r}
models = assets.models_of(assets.read_model_table(root + "/models.csv"), "car")
textures = assets.split_assets(assets.index_textures(root + "/textures", 0.2), "train", "textures")
backgrounds = assets.split_assets(assets.index_backgrounds(root + "/backgrounds", 0.2), "train", "backgrounds")
table, timing = render_shard("train", "car", range({images}), models, textures, backgrounds, {settings!r}, 0,
                             {out!r}, threads={threads})
write_table(table, {out!r} + ".parquet")
timing["in_process_s"] = time.perf_counter() - started
print(json.dumps(timing))
"""


def render_settings(size: int, samples: int, denoise: bool) -> dict:
    return {
        "width": size, "height": size, "samples": samples, "denoise": denoise, "device": "cpu",
        "lens_mm": 35, "sensor_width_mm": 32, "diffuse_bounces": 1, "glossy_bounces": 1, "texture_scale": 2.0,
        "obj_axes": {"forward": "Y", "up": "Z"},
        "light": {"energy_w": 300, "size": 3.0, "jitter_deg": 20, "energy_jitter": 0.3, "ambient": 0.3,
                  "distance_factor": 1.5},
        "viewpoint": {"mode": None, "theta_sd_deg": 0.0,
                      "distance": {"mode": "truncnorm", "sd": 0.5, "low": -0.5, "high": 1.5}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    from dst3d.assets import build_embedded_assets

    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary) / "assets"
        build_embedded_assets(root, {
            "categories": ["car"], "models_per_category": 3, "distance": 2.0, "sampling_mode": "3",
            "textures_per_class": 5, "texture_test_fraction": 0.2, "texture_size": 256,
            "backgrounds_train": 4, "backgrounds_test": 1, "background_size": 64,
        }, global_seed=0)
        print(f"{'size':>5} {'samples':>7} {'denoise':>7} {'images':>6} {'s/image':>8} {'job s':>7} "
              f"{'render s':>8} {'outside render':>14}")
        for size, samples, denoise in ((256, 32, False), (512, 32, False), (512, 32, True)):
            out = str(Path(temporary) / f"shard-{size}-{denoise}")
            code = JOB.format(repo=str(REPO), root=str(root), images=arguments.images,
                              settings=render_settings(size, samples, denoise), out=out, threads=arguments.threads)
            started = time.perf_counter()
            completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            job_seconds = time.perf_counter() - started
            timing = json.loads(completed.stdout.strip().splitlines()[-1])
            outside = 1 - timing["render_s"] / job_seconds
            print(f"{size:>5} {samples:>7} {str(denoise):>7} {timing['images']:>6} "
                  f"{job_seconds / timing['images']:>8.3f} {job_seconds:>7.2f} {timing['render_s']:>8.2f} "
                  f"{100 * outside:>13.1f}%")


if __name__ == "__main__":
    main()
