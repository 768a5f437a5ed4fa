from _bootstrap import start

log = start(snakemake, "plot_consistency")

import pandas as pd

from dst3d.figures import consistency_plot
from dst3d.io import read_tables

consistency_plot(
    pd.read_csv(snakemake.input.scores),
    read_tables(snakemake.input.shards),
    snakemake.output.png,
    snakemake.output.pdf,
)
