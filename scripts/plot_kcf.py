from _bootstrap import start

log = start(snakemake, "plot_kcf")

import pandas as pd

from dst3d.figures import kcf_figure, plot_both
from dst3d.io import read_tables

scores = pd.read_csv(snakemake.input.scores)
kept = set(pd.read_csv(snakemake.input.kept)["image_id"])
figure = kcf_figure(scores, kept, read_tables(snakemake.input.shards), snakemake.params.scores)
plot_both(figure, snakemake.output.png, snakemake.output.pdf)
log.info("KCF figure of %d images, %d kept", len(scores), len(kept))
