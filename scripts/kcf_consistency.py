from _bootstrap import start

log = start(snakemake, "kcf_consistency")

from pathlib import Path

import pandas as pd

from dst3d.consistency import consistency_scores
from dst3d.generate.edges import EdgeSettings
from dst3d.io import write_table

settings = snakemake.params.settings
edge_settings = EdgeSettings.from_config(snakemake.params.edges)
parts = []
# The shard tables and the edge-map folders are listed in the same (category, shard) order.
for table_path, edges_dir in zip(snakemake.input.shards, snakemake.input.edges, strict=True):
    records = pd.read_parquet(table_path)
    edge_paths = [Path(edges_dir) / f"{image_id}.png" for image_id in records["image_id"]]
    parts.append(consistency_scores(records, edge_paths, edge_settings, settings["tolerance_px"], settings["margin"]))
scores = pd.concat(parts, ignore_index=True).sort_values("image_id").reset_index(drop=True)
write_table(scores, snakemake.output[0])
log.info(
    "consistency of %d images (edge F, silhouette IoU, combined; per category medians):\n%s",
    len(scores),
    scores.groupby("category")[["edge_f", "silhouette_iou", "consistency"]].median().to_string(),
)
