# render: one Blender session per shard renders RGBA images, masks (and depth maps) and writes the annotation records.


rule render_shard:
    input:
        unpack(render_inputs),
    output:
        annotations=f"{RESULTS}/render/{{split}}/{{category}}/{{shard}}.parquet",
        images=directory(f"{RESULTS}/render/{{split}}/{{category}}/{{shard}}"),
    log:
        "logs/render_shard/{split}/{category}/{shard}.log",
    benchmark:
        "benchmarks/render_shard/{split}/{category}/{shard}.tsv"
    conda:
        "../envs/blender.yaml"
    threads: config["render"]["threads"]
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
        gpu=1 if config["render"]["device"] == "gpu" else 0,
    params:
        settings=render_settings,
        split_settings=lambda wildcards: split_settings(wildcards.split),
        seed=config["seed"],
    script:
        "../scripts/render_shard.py"
