from _bootstrap import start

log = start(snakemake, "plot_consistency")


from dst3d.figures import consistency_plot
from dst3d.io import read_tables
from dst3d.tables import read_csv

consistency_plot(
    read_csv(snakemake.input.scores),
    read_tables(snakemake.input.shards),
    snakemake.output.png,
    snakemake.output.pdf,
)
