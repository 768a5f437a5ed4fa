from _bootstrap import start

log = start(snakemake, "dataset_table")


from dst3d import tables
from dst3d.io import atomic_write, read_tables, write_table
from dst3d.tables import read_csv

records = read_tables(snakemake.input.generated)
generated = {(backend, split): group for (backend, split), group in records.groupby(["backend", "split"], sort=False)}
kept = {
    backend: read_csv(path) for backend, path in zip(snakemake.params.kept_backends, snakemake.input.kept, strict=True)
}
table = tables.dataset_statistics(generated, kept, snakemake.params.hashes)
write_table(table, snakemake.output.csv)
caption = (
    "Dataset statistics: generated images per backend, split and category, those whose object left the frame "
    "(empty mask), KCF's kept and dropped training images, and the hash of the settings that made them."
)
for path, text in ((snakemake.output.markdown, tables.markdown), (snakemake.output.latex, tables.latex)):
    with atomic_write(path) as temporary:
        temporary.write_text(text(table, caption))
log.info("\n%s", table.to_string(index=False))
