from _bootstrap import start

log = start(snakemake, "plot_samples")

from dst3d.figures import sample_grid
from dst3d.io import read_tables

generated = read_tables(snakemake.input.generated)
edge_dirs = {path.split("/")[-2]: path for path in snakemake.input.edges}
sample_grid(generated, edge_dirs, snakemake.params.samples_per_category, snakemake.output.png, snakemake.output.pdf)
