from _bootstrap import start

log = start(snakemake, "export_coco")

from dst3d.export import variant_records, write_coco

variant = snakemake.wildcards.variant
exported, _ = variant_records(snakemake.input.train, snakemake.input.test, snakemake.input.get("kept"))
for split, records in exported.items():
    write_coco(records, snakemake.params.categories, snakemake.output[split], f"dst3d {variant}, {split} split")
    log.info("COCO %s: %d images", split, len(records))
