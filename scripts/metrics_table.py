from _bootstrap import start

log = start(snakemake, "metrics_table")

from pathlib import Path

import pandas as pd

from dst3d import tables
from dst3d.io import atomic_write, write_table

table = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
write_table(table, snakemake.output.csv)
name = "Pose" if Path(snakemake.output.csv).name.startswith("pose") else "Category classification"
caption = (
    f"{name} metrics per training variant, evaluation set and category (accuracies in %; the CSV has the "
    "checkpoint and data manifest hashes of every row)."
)
for path, text in ((snakemake.output.markdown, tables.markdown), (snakemake.output.latex, tables.latex)):
    with atomic_write(path) as temporary:
        temporary.write_text(text(table, caption))
log.info("\n%s", table.to_string(index=False))
