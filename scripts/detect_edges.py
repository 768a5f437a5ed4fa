from _bootstrap import start

log = start(snakemake, "detect_edges")

from pathlib import Path

import pandas as pd

from dst3d.generate.edges import EdgeSettings, detect_edges_shard
from dst3d.io import staged_directory

records = pd.read_parquet(snakemake.input.annotations, columns=["image_id", "render_path"])
settings = EdgeSettings.from_config(snakemake.params.settings)
with staged_directory(snakemake.output[0]) as staging:
    detect_edges_shard(
        [Path(path) for path in records["render_path"]],
        [staging / f"{image_id}.png" for image_id in records["image_id"]],
        settings,
        threads=snakemake.threads,
        atomic=False,
        log=log,
    )
log.info("%d edge maps with %s", len(records), settings)
