from _bootstrap import start

log = start(snakemake, "table_html")

from dst3d import tables
from dst3d.io import atomic_write
from dst3d.tables import html_page

table = tables.read_csv(snakemake.input[0])
with atomic_write(snakemake.output[0]) as temporary:
    temporary.write_text(html_page(table, snakemake.params.title))
log.info("%s: %d rows as HTML", snakemake.input[0], len(table))
