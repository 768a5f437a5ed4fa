from _bootstrap import start

log = start(snakemake, "plot_accuracy")

from dst3d import tables
from dst3d.figures import accuracy_figure, plot_both

metrics = tables.read_csv(snakemake.input[0])
plot_both(accuracy_figure(metrics), snakemake.output.png, snakemake.output.pdf)
log.info("accuracy bars of %d variants", metrics["variant"].nunique())
