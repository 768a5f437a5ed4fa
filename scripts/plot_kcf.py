from _bootstrap import start

log = start(snakemake, "plot_kcf")


from dst3d.figures import kcf_figure, plot_both
from dst3d.io import read_tables
from dst3d.tables import read_csv

scores = read_csv(snakemake.input.scores)
kept = set(read_csv(snakemake.input.kept)["image_id"])
figure = kcf_figure(scores, kept, read_tables(snakemake.input.shards), snakemake.params.scores)
plot_both(figure, snakemake.output.png, snakemake.output.pdf)
log.info("KCF figure of %d images, %d kept", len(scores), len(kept))
