from _bootstrap import start

log = start(snakemake, "kcf_fold")

from dst3d import kcf
from dst3d.identity import derive_seed
from dst3d.io import read_tables, write_table
from dst3d.workflow_config import kcf_settings

group, fold = snakemake.wildcards.group, int(snakemake.wildcards.fold)
frame = read_tables(snakemake.input)
frame["kcf_fold"] = kcf.assign_folds(frame, snakemake.params.folds, snakemake.params.seed)
scores = kcf.score_fold(
    frame,
    fold,
    group,
    {**snakemake.params.train_settings, "device": kcf_settings(snakemake.config)["device"]},
    seed=derive_seed(snakemake.params.seed, "kcf-train", snakemake.wildcards.backend, group, fold),
    threads=snakemake.threads,
    log=log,
)
write_table(scores, snakemake.output[0])
