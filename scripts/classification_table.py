from _bootstrap import start

log = start(snakemake, "classification_table")

import pandas as pd

from dst3d import classification, tables
from dst3d.io import atomic_write, write_table

settings = snakemake.params.table
metrics = pd.concat([tables.read_csv(path) for path in snakemake.input], ignore_index=True)
table = classification.table(metrics, settings["pretraining"], settings["backbones"], snakemake.params.sets)
write_table(metrics, snakemake.output.metrics)
write_table(table, snakemake.output.csv)
caption = (
    "Classification (3D-DST Table 1 layout): top-1 accuracy (%) per pre-training data (rows) and backbone x "
    f"evaluation set (columns; {classification.ID_SET} = in distribution). Per-class rows and checkpoint hashes: "
    "classification_metrics.csv."
)
for path, text in ((snakemake.output.markdown, tables.markdown), (snakemake.output.latex, tables.latex)):
    with atomic_write(path) as temporary:
        temporary.write_text(text(table, caption))
log.info("\n%s", table.to_string(index=False))
