from _bootstrap import start

log = start(snakemake, "plot_viewpoints")

from dst3d.figures import viewpoint_plot
from dst3d.io import read_tables

viewpoint_plot(read_tables(snakemake.input), snakemake.output.png, snakemake.output.pdf)
