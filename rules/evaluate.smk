# evaluate: each trained network on the held-out synthetic split (and the pose estimators on the configured real
# sets), then one table per task with a row per variant, evaluation set and category, and the protocol
# tables (tables.pose_protocol, tables.few_shot) as CSV, Markdown and LaTeX.
import re

REAL_SETS = {entry["name"]: entry for entry in config["evaluate"]["real_sets"]}


rule evaluate_pose:
    input:
        model=lambda wildcards: trained_model(wildcards.variant, "pose"),
        shards=synthetic_test_shards,
    output:
        predictions=f"{RESULTS}/evaluate/{{variant}}/predictions.csv",
        metrics=f"{RESULTS}/evaluate/{{variant}}/metrics.csv",
    log:
        "logs/evaluate_pose/{variant}.log",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(120),
    params:
        settings={key: config["evaluate"][key] for key in ("batch_size", "flip")},
    script:
        "../scripts/evaluate_pose.py"


rule evaluate_pose_real:
    input:
        model=lambda wildcards: trained_model(wildcards.variant, "pose"),
        root=lambda wildcards: REAL_SETS[wildcards.real_set]["root"],
    output:
        predictions=f"{RESULTS}/evaluate/{{variant}}/real/{{real_set}}/predictions.csv",
        metrics=f"{RESULTS}/evaluate/{{variant}}/real/{{real_set}}/metrics.csv",
    log:
        "logs/evaluate_pose_real/{variant}/{real_set}.log",
    wildcard_constraints:
        real_set="|".join(map(re.escape, REAL_SETS)) or "^$",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(120),
    params:
        real_set=lambda wildcards: REAL_SETS[wildcards.real_set],
        settings={key: config["evaluate"][key] for key in ("batch_size", "flip")},
        categories=CATEGORIES,
    script:
        "../scripts/evaluate_pose.py"


rule pose_table:
    input:
        expand(rules.evaluate_pose.output.metrics, variant=list(VARIANTS)),
        expand(rules.evaluate_pose_real.output.metrics, variant=list(VARIANTS), real_set=list(REAL_SETS)),
        lambda wildcards: nemo_metrics(),  # NeMo's (rules/nemo.smk), none without nemo.variants
    output:
        csv=f"{RESULTS}/tables/pose_metrics.csv",
        markdown=f"{RESULTS}/tables/pose_metrics.md",
        latex=f"{RESULTS}/tables/pose_metrics.tex",
    log:
        "logs/pose_table/pose_metrics.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    script:
        "../scripts/metrics_table.py"


rule evaluate_category_classifier:
    input:
        model=lambda wildcards: trained_model(wildcards.variant, "category"),
        shards=synthetic_test_shards,
    output:
        predictions=f"{RESULTS}/evaluate/{{variant}}/category_predictions.csv",
        metrics=f"{RESULTS}/evaluate/{{variant}}/category_metrics.csv",
    log:
        "logs/evaluate_category_classifier/{variant}.log",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(120),
    params:
        settings={"batch_size": config["evaluate"]["batch_size"]},
    script:
        "../scripts/evaluate_category_classifier.py"


rule category_table:
    input:
        expand(rules.evaluate_category_classifier.output.metrics, variant=list(VARIANTS)),
    output:
        csv=f"{RESULTS}/tables/category_metrics.csv",
        markdown=f"{RESULTS}/tables/category_metrics.md",
        latex=f"{RESULTS}/tables/category_metrics.tex",
    log:
        "logs/category_table/category_metrics.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    script:
        "../scripts/metrics_table.py"


rule evaluate_joint:
    input:
        model=lambda wildcards: trained_model(wildcards.variant, "joint"),
        shards=synthetic_test_shards,
    output:
        predictions=f"{RESULTS}/evaluate/{{variant}}/joint_predictions.csv",
        metrics=f"{RESULTS}/evaluate/{{variant}}/joint_metrics.csv",
    log:
        "logs/evaluate_joint/{variant}.log",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(120),
    params:
        settings={key: config["evaluate"][key] for key in ("batch_size", "flip")},
    script:
        "../scripts/evaluate_joint.py"


rule evaluate_joint_real:
    input:
        model=lambda wildcards: trained_model(wildcards.variant, "joint"),
        root=lambda wildcards: REAL_SETS[wildcards.real_set]["root"],
    output:
        predictions=f"{RESULTS}/evaluate/{{variant}}/real/{{real_set}}/joint_predictions.csv",
        metrics=f"{RESULTS}/evaluate/{{variant}}/real/{{real_set}}/joint_metrics.csv",
    log:
        "logs/evaluate_joint_real/{variant}/{real_set}.log",
    wildcard_constraints:
        real_set="|".join(map(re.escape, REAL_SETS)) or "^$",
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(120),
    params:
        real_set=lambda wildcards: REAL_SETS[wildcards.real_set],
        settings={key: config["evaluate"][key] for key in ("batch_size", "flip")},
        categories=CATEGORIES,
    script:
        "../scripts/evaluate_joint.py"


rule joint_table:
    input:
        expand(rules.evaluate_joint.output.metrics, variant=list(VARIANTS)),
        expand(rules.evaluate_joint_real.output.metrics, variant=list(VARIANTS), real_set=list(REAL_SETS)),
    output:
        csv=f"{RESULTS}/tables/joint.csv",
        markdown=f"{RESULTS}/tables/joint.md",
        latex=f"{RESULTS}/tables/joint.tex",
    log:
        "logs/joint_table/joint.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    script:
        "../scripts/metrics_table.py"


rule protocol_table:
    input:
        lambda wildcards: table_metrics(wildcards.table),
    output:
        csv=f"{RESULTS}/tables/{{table}}.csv",
        markdown=f"{RESULTS}/tables/{{table}}.md",
        latex=f"{RESULTS}/tables/{{table}}.tex",
        provenance=f"{RESULTS}/tables/{{table}}.provenance.csv",
    log:
        "logs/protocol_table/{table}.log",
    wildcard_constraints:
        table="|".join(name for name in protocols.TABLES if config["tables"][name] is not None) or "^$",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        table=lambda wildcards: protocols.table_settings(config, wildcards.table),
        nemo_models=lambda wildcards: protocols.table_nemo_models(config, wildcards.table),
    script:
        "../scripts/protocol_table.py"


rule dataset_table:
    input:
        generated=[
            table
            for backend in synthetic_backends()
            for split in SPLITS
            for table in shard_files(rules.generate_shard.output.annotations, split, backend=backend)
        ],
        kept=[rules.kcf_select.output.kept.format(backend=backend) for backend in kcf_backends()],
    output:
        csv=f"{RESULTS}/tables/dataset.csv",
        markdown=f"{RESULTS}/tables/dataset.md",
        latex=f"{RESULTS}/tables/dataset.tex",
    log:
        "logs/dataset_table/dataset.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(15),
    params:
        kept_backends=kcf_backends(),
        hashes={backend: dataset_settings_hash(backend) for backend in synthetic_backends()},
    script:
        "../scripts/dataset_table.py"
