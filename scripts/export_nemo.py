from _bootstrap import start

log = start(snakemake, "export_nemo")


from dst3d.export import variant_records, write_nemo
from dst3d.tables import read_csv

exported, _ = variant_records(snakemake.input.train, snakemake.input.test, snakemake.input.get("kept"))
counts = write_nemo(exported, read_csv(snakemake.input.models), snakemake.output[0])
log.info("NeMo layout of %s: %s images per split", snakemake.wildcards.variant, counts)
