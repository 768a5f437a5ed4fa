"""How the workflow's plan scales: wall time, peak memory and job count of ``snakemake -n`` from 1,000 to 1,000,000
generated training images, and the largest number of entries in one output folder at that scale.

For each size it writes, in a temporary folder, the stand-in tree of ``--preset`` (config/dst3d_imagenet.yaml by
default: 100 classes, per-category KCF, the classification table; :func:`dst3d.testing.stand_in.write_preset_tree`)
and a config that sets ``splits.train.images_per_category`` to size / categories (shards of 250, test split 250 per
category), then times one dry run (``/usr/bin/time``: elapsed seconds and maximum resident set size, Snakemake and
the workflow's config checks included) and counts the jobs it plans. The folder figure is computed from the
config: the generated images of a shard live in their own folder (``results/generate/<backend>/<split>/<category>/
<shard>/``, ``shard_size`` images), shard tables sit beside them per category (``shards`` entries), and the
category folders hold a few hundred shards each; the printed ``max folder entries`` is the largest of those.

Usage: ``python bench/dag.py [--preset config/dst3d_imagenet.yaml] [--sizes 1000 10000 100000 1000000]``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dst3d.testing import stand_in  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def dry_run(preset: Path, images: int, workdir: Path) -> dict:
    config = yaml.safe_load(preset.read_text())
    categories = len(config["categories"])
    per_category = max(1, round(images / categories))
    shard = 250
    overlay = {"splits": {"train": {"images_per_category": per_category, "shard_size": shard}}}
    overlay_path = workdir / "size.yaml"
    overlay_path.write_text(yaml.safe_dump(overlay))
    command = [
        "/usr/bin/time",
        "-f",
        "TIME %e %M",
        SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "-n",
        "--quiet",
        "rules",
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        str(preset),
        str(overlay_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    seconds, kilobytes = re.search(r"TIME ([\d.]+) (\d+)", result.stderr).groups()
    total = re.search(r"^total\s+(\d+)", result.stdout + result.stderr, re.MULTILINE)
    shards = -(-per_category // shard)
    return {
        "images": per_category * categories,
        "jobs": int(total.group(1)) if total else -1,
        "seconds": float(seconds),
        "peak_mb": int(kilobytes) / 1024,
        "max_folder_entries": max(shard, 2 * shards, categories),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", type=Path, default=REPO / "config" / "dst3d_imagenet.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000, 1000000])
    args = parser.parse_args()
    print(f"preset {args.preset.name}")
    print(f"{'images':>9} {'jobs':>7} {'seconds':>8} {'peak MB':>8} {'max folder entries':>19}")
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            workdir = Path(folder)
            stand_in.write_preset_tree(args.preset, workdir)
            row = dry_run(args.preset, size, workdir)
        print(
            f"{row['images']:>9} {row['jobs']:>7} {row['seconds']:>8.1f} {row['peak_mb']:>8.0f} "
            f"{row['max_folder_entries']:>19}"
        )


if __name__ == "__main__":
    main()
