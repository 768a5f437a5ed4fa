from _bootstrap import start

log = start(snakemake, "metrics_table")

import pandas as pd

from dst3d.io import write_table

table = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
write_table(table, snakemake.output[0])
log.info("\n%s", table.to_string(index=False))
