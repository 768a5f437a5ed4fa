# figures and exports: named targets that can be rebuilt alone, e.g. `snakemake results/figures/samples.png`.

# The first synthetic variant's backend; composite (offline) when every variant trains on real data only.
SAMPLE_BACKEND = (synthetic_backends() or ["composite"])[0]


rule plot_samples:
    input:
        generated=[f"{RESULTS}/generate/{SAMPLE_BACKEND}/train/{category}/000.parquet" for category in CATEGORIES],
        edges=[f"{RESULTS}/edges/train/{category}/000" for category in CATEGORIES],
    output:
        report(f"{RESULTS}/figures/samples.png", caption="../report/samples.rst", category="Figures"),
    log:
        "logs/plot_samples/samples.log",
    conda:
        "../envs/vision.yaml"
    params:
        samples_per_category=config["figures"]["samples_per_category"],
    script:
        "../scripts/plot_samples.py"


rule plot_viewpoints:
    input:
        shard_files(rules.render_shard.output.annotations, "train"),
    output:
        report(f"{RESULTS}/figures/viewpoints.png", caption="../report/viewpoints.rst", category="Figures"),
    log:
        "logs/plot_viewpoints/viewpoints.log",
    conda:
        "../envs/vision.yaml"
    script:
        "../scripts/plot_viewpoints.py"


rule plot_consistency:
    input:
        scores=rules.kcf_consistency.output[0],
        shards=generated_shards("train"),
    output:
        report(
            f"{RESULTS}/figures/consistency_{{backend}}.png",
            caption="../report/consistency.rst",
            category="Figures",
        ),
    log:
        "logs/plot_consistency/{backend}.log",
    conda:
        "../envs/vision.yaml"
    script:
        "../scripts/plot_consistency.py"


rule export_coco:
    input:
        unpack(export_inputs),
    output:
        train=f"{RESULTS}/export/{{variant}}/coco/instances_train.json",
        test=f"{RESULTS}/export/{{variant}}/coco/instances_test.json",
    log:
        "logs/export_coco/{variant}.log",
    wildcard_constraints:
        variant="|".join(map(re.escape, exported_variants())) or "^$",
    conda:
        "../envs/vision.yaml"
    params:
        categories=CATEGORIES,
    script:
        "../scripts/export_coco.py"
