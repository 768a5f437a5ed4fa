from _bootstrap import start

log = start(snakemake, "write_pseudo_real")

from pathlib import Path

import pandas as pd

from dst3d.inputs import pseudo_real
from dst3d.io import staged_directory

tables = {}
for path in snakemake.input.annotations:
    table = pd.read_parquet(path)
    split = table["split"].iloc[0]
    tables[split] = pd.concat([tables[split], table], ignore_index=True) if split in tables else table
with staged_directory(Path(snakemake.output[0])) as staging:
    pseudo_real.write_pascal3d(staging, tables, snakemake.params.coarse_fraction, snakemake.params.seed)
log.info("pseudo-real PASCAL3D+ release: %s", {split: len(table) for split, table in tables.items()})
