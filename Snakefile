# dst3d: synthetic training images with exact 3D annotations (3D-DST / P3D-Diffusion), end to end.
# Stages: assets -> render -> edges -> prompts -> generate -> kcf -> (real data) -> train -> evaluate ->
# (NeMo, ImageNet3D tasks) -> tables / figures.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/assets.smk"
include: "rules/render.smk"
include: "rules/edges.smk"
include: "rules/prompts.smk"
include: "rules/generate.smk"
include: "rules/kcf.smk"
include: "rules/real.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/nemo.smk"
include: "rules/imagenet3d.smk"
include: "rules/classification.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
