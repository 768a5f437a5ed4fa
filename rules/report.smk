# figures and exports: named targets that can be rebuilt alone, e.g. `snakemake results/figures/samples.png`.

# Every synthetic variant's backend; composite (offline) when every variant trains on real data only.
SAMPLE_BACKENDS = synthetic_backends() or ["composite"]


rule plot_samples:
    input:
        generated=expand(
            rules.generate_shard.output.annotations,
            backend=SAMPLE_BACKENDS,
            split="train",
            category=CATEGORIES,
            shard="000",
        ),
        edges=expand(rules.detect_edges.output[0], split="train", category=CATEGORIES, shard="000"),
    output:
        png=report(f"{RESULTS}/figures/samples.png", caption="../report/samples.rst", category="Figures"),
        pdf=f"{RESULTS}/figures/samples.pdf",
    log:
        "logs/plot_samples/samples.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        samples_per_category=config["figures"]["samples_per_category"],
    script:
        "../scripts/plot_samples.py"


rule plot_viewpoints:
    input:
        shard_files(rules.render_shard.output.annotations, "train"),
    output:
        png=report(f"{RESULTS}/figures/viewpoints.png", caption="../report/viewpoints.rst", category="Figures"),
        pdf=f"{RESULTS}/figures/viewpoints.pdf",
    log:
        "logs/plot_viewpoints/viewpoints.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    script:
        "../scripts/plot_viewpoints.py"


rule plot_consistency:
    input:
        scores=rules.kcf_consistency.output[0],
        shards=generated_shards("train"),
    output:
        png=report(
            f"{RESULTS}/figures/consistency_{{backend}}.png",
            caption="../report/consistency.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/figures/consistency_{{backend}}.pdf",
    log:
        "logs/plot_consistency/{backend}.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    script:
        "../scripts/plot_consistency.py"


rule plot_kcf:
    input:
        scores=rules.kcf_select.output.scores,
        kept=rules.kcf_select.output.kept,
        shards=generated_shards("train"),
    output:
        png=report(f"{RESULTS}/figures/kcf_{{backend}}.png", caption="../report/kcf.rst", category="Figures"),
        pdf=f"{RESULTS}/figures/kcf_{{backend}}.pdf",
    log:
        "logs/plot_kcf/{backend}.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        scores=config["kcf"]["policy"]["scores"],
    script:
        "../scripts/plot_kcf.py"


rule plot_training:
    input:
        [rules.train_model.output.history.format(variant=variant, task="pose") for variant in VARIANTS],
    output:
        png=report(f"{RESULTS}/figures/training.png", caption="../report/training.rst", category="Figures"),
        pdf=f"{RESULTS}/figures/training.pdf",
    log:
        "logs/plot_training/training.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(1000),
        runtime=by_attempt(15),
    params:
        variants=list(VARIANTS),
    script:
        "../scripts/plot_training.py"


rule plot_accuracy:
    input:
        rules.pose_table.output.csv,
    output:
        png=report(f"{RESULTS}/figures/accuracy.png", caption="../report/accuracy.rst", category="Figures"),
        pdf=f"{RESULTS}/figures/accuracy.pdf",
    log:
        "logs/plot_accuracy/accuracy.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(1000),
        runtime=by_attempt(15),
    script:
        "../scripts/plot_accuracy.py"


rule table_html:
    input:
        f"{RESULTS}/tables/{{table}}.csv",
    output:
        report(
            f"{RESULTS}/report/{{table}}.html",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "{table}"},
        ),
    log:
        "logs/table_html/{table}.log",
    wildcard_constraints:
        table="|".join(TABLE_TITLES),
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(1000),
        runtime=by_attempt(15),
    params:
        title=lambda wildcards: TABLE_TITLES[wildcards.table],
    script:
        "../scripts/table_html.py"


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
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(30),
    params:
        categories=CATEGORIES,
    script:
        "../scripts/export_coco.py"


rule export_nemo:
    input:
        unpack(export_inputs),
        models=rules.index_assets.output.models,
    output:
        directory(f"{RESULTS}/export/{{variant}}/nemo"),
    log:
        "logs/export_nemo/{variant}.log",
    wildcard_constraints:
        variant="|".join(map(re.escape, exported_variants())) or "^$",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    script:
        "../scripts/export_nemo.py"


rule export_bop:
    input:
        unpack(export_inputs),
        models=rules.index_assets.output.models,
    output:
        directory(f"{RESULTS}/export/{{variant}}/bop"),
    log:
        "logs/export_bop/{variant}.log",
    wildcard_constraints:
        variant="|".join(map(re.escape, exported_variants())) or "^$",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(60),
    params:
        axes=config["render"]["axes"],
        categories=CATEGORIES,
    script:
        "../scripts/export_bop.py"


rule dataset_card:
    input:
        unpack(export_inputs),
    output:
        card=f"{RESULTS}/export/{{variant}}/DATASET.md",
        manifest=f"{RESULTS}/export/{{variant}}/MANIFEST.sha256",
    log:
        "logs/dataset_card/{variant}.log",
    wildcard_constraints:
        variant="|".join(map(re.escape, exported_variants())) or "^$",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(30),
    params:
        backend=lambda wildcards: VARIANTS[wildcards.variant].backend,
        settings_hash=lambda wildcards: dataset_settings_hash(VARIANTS[wildcards.variant].backend),
        config=lambda wildcards: dataset_card_settings(wildcards.variant),
        formats=config["export"]["formats"],
    script:
        "../scripts/write_dataset_card.py"
