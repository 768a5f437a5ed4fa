from _bootstrap import start

log = start(snakemake, "export_coco")

import pandas as pd

from dst3d.export import write_coco
from dst3d.io import read_tables

variant = snakemake.wildcards.variant
for split in ("train", "test"):
    records = read_tables(snakemake.input[split])
    if split == "train" and "kept" in snakemake.input.keys():  # the images the variant trains on
        records = records[records["image_id"].isin(pd.read_csv(snakemake.input.kept)["image_id"])]
    write_coco(records, snakemake.params.categories, snakemake.output[split], f"dst3d {variant}, {split} split")
    log.info("COCO %s: %d images", split, len(records))
