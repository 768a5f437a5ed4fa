from _bootstrap import start

log = start(snakemake, "protocol_table")

import pandas as pd

from dst3d import protocols, tables
from dst3d.io import atomic_write, write_table
from dst3d.tables import with_estimator

name, table_config = snakemake.wildcards.table, snakemake.params.table
metrics = pd.concat([tables.read_csv(path).assign(metrics_file=path) for path in snakemake.input], ignore_index=True)
metrics = with_estimator(metrics)  # the ResNet's files have no estimator column; NeMo's (rules/nemo.smk) do
build = {"pose_protocol": protocols.pose_protocol_table, "few_shot": protocols.few_shot_table}[name]
table, provenance = build(metrics, table_config, snakemake.params.nemo_models)
write_table(table, snakemake.output.csv)
write_table(provenance, snakemake.output.provenance)
for path, text in (
    (snakemake.output.markdown, tables.markdown(table, protocols.CAPTIONS[name])),
    (snakemake.output.latex, tables.latex(table, protocols.CAPTIONS[name])),
):
    with atomic_write(path) as temporary:
        temporary.write_text(text)
log.info("\n%s", tables.markdown(table, protocols.CAPTIONS[name]))
