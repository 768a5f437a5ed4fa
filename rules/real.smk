# real: the real training sources and their few-shot subsets, and the pseudo-real set of the embedded
# default (pseudo_real.enabled), written in the PASCAL3D+ layout from render splits with a domain of their own.


rule build_pseudo_real_assets:
    output:
        textures=f"{RESULTS}/pseudo_real/textures.csv",
        backgrounds=f"{RESULTS}/pseudo_real/backgrounds.csv",
        images=directory(f"{RESULTS}/pseudo_real/assets"),
    log:
        "logs/build_pseudo_real_assets/assets.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        settings={key: config["pseudo_real"][key] for key in ("textures", "backgrounds")},
        texture_size=config["assets"]["embedded"]["texture_size"],
        background_size=config["assets"]["embedded"]["background_size"],
        seed=config["seed"],
    script:
        "../scripts/build_pseudo_real_assets.py"


rule write_pseudo_real:
    input:
        annotations=[
            table for split in PSEUDO_SPLITS for table in shard_files(rules.render_shard.output.annotations, split)
        ],
        renders=[folder for split in PSEUDO_SPLITS for folder in shard_files(rules.render_shard.output.images, split)],
    output:
        directory(PSEUDO_REAL_ROOT),
    log:
        "logs/write_pseudo_real/pseudo_real.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(30),
    params:
        coarse_fraction=config["pseudo_real"]["coarse_fraction"],
        seed=config["seed"],
    script:
        "../scripts/write_pseudo_real.py"


rule select_real:
    input:
        root=real_source_root,
    output:
        f"{RESULTS}/real/{{source}}/{{subset}}.parquet",
    log:
        "logs/select_real/{source}/{subset}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(60),
    params:
        entry=lambda wildcards: REAL_SOURCES[wildcards.source],
        categories=CATEGORIES,
        seed=config["seed"],
    script:
        "../scripts/select_real.py"
