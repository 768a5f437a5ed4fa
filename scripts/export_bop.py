from _bootstrap import start

log = start(snakemake, "export_bop")


from dst3d.export import variant_records, write_bop
from dst3d.tables import read_csv

exported, _ = variant_records(snakemake.input.train, snakemake.input.test, snakemake.input.get("kept"))
models = read_csv(snakemake.input.models)
counts = write_bop(exported, models, snakemake.params.axes, snakemake.params.categories, snakemake.output[0])
log.info("BOP layout of %s: %s images per split", snakemake.wildcards.variant, counts)
