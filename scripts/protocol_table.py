from _bootstrap import start

log = start(snakemake, "protocol_table")

import pandas as pd

from dst3d import protocols, tables
from dst3d.io import atomic_write, write_table

name, table_config = snakemake.wildcards.table, snakemake.params.table
metrics = pd.concat([pd.read_csv(path).assign(metrics_file=path) for path in snakemake.input], ignore_index=True)
build = {"pose_protocol": protocols.pose_protocol_table, "few_shot": protocols.few_shot_table}[name]
table, provenance = build(metrics, table_config)
write_table(table, snakemake.output.csv)
write_table(provenance, snakemake.output.provenance)
for path, text in (
    (snakemake.output.markdown, tables.markdown(table, protocols.CAPTIONS[name])),
    (snakemake.output.latex, tables.latex(table, protocols.CAPTIONS[name])),
):
    with atomic_write(path) as temporary:
        temporary.write_text(text)
log.info("\n%s", tables.markdown(table, protocols.CAPTIONS[name]))
