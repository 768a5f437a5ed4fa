from _bootstrap import start

log = start(snakemake, "kcf_select")

import pandas as pd

from dst3d import consistency, kcf
from dst3d.io import write_table
from dst3d.tables import read_csv

policy = snakemake.params.policy
inputs = snakemake.input.keys()
fold_scores = (
    pd.concat([read_csv(path) for path in snakemake.input.folds], ignore_index=True).sort_values("image_id")
    if "folds" in inputs
    else None
)
image_scores = read_csv(snakemake.input.consistency) if "consistency" in inputs else None
if policy["scores"] == ["kcf"]:
    kept, summary = kcf.select(fold_scores, policy)
    scores = fold_scores
else:
    kept, summary = consistency.select_combined(fold_scores, image_scores, policy)
    tables = [table for table in (fold_scores, image_scores) if table is not None]
    scores = tables[0] if len(tables) == 1 else tables[0].merge(tables[1].drop(columns="category"), on="image_id")
write_table(scores.sort_values("image_id"), snakemake.output.scores)
write_table(kept, snakemake.output.kept)
write_table(summary, snakemake.output.summary)
log.info("kept %d of %d images by %s\n%s", len(kept), len(scores), policy["scores"], summary.to_string(index=False))
