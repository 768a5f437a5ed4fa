# generate: realistic images from the renders; `composite` (render over background) needs no model.


rule generate_shard:
    input:
        unpack(generate_inputs),
    output:
        annotations=f"{RESULTS}/generate/{{backend}}/{{split}}/{{category}}/{{shard}}.parquet",
        images=directory(f"{RESULTS}/generate/{{backend}}/{{split}}/{{category}}/{{shard}}"),
    log:
        "logs/generate_shard/{backend}/{split}/{category}/{shard}.log",
    benchmark:
        "benchmarks/generate_shard/{backend}/{split}/{category}/{shard}.tsv"
    conda:
        "../envs/diffusion.yaml"
    threads: 2
    resources:
        mem_mb=by_attempt(lambda wildcards: 24000 if wildcards.backend in DIFFUSION_BACKENDS else 2000),
        runtime=by_attempt(lambda wildcards: 240 if wildcards.backend in DIFFUSION_BACKENDS else 30),
        gpu=lambda wildcards: 1 if wildcards.backend in DIFFUSION_BACKENDS else 0,
    params:
        settings=lambda wildcards: output_settings(config["generate"].get(wildcards.backend) or {}, "generate"),
        seed=config["seed"],
    script:
        "../scripts/generate_shard.py"
