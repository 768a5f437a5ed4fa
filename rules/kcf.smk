# kcf: K-fold consistency scores for every generated training image (fold models of kcf.estimator's family), the model-free consistency of each image with
# its render, then the kept list by policy.


rule kcf_fold:
    input:
        kcf_fold_shards,
    output:
        f"{RESULTS}/kcf/{{backend}}/folds/{{group}}-{{fold}}.csv",
    log:
        "logs/kcf_fold/{backend}/{group}-{fold}.log",
    benchmark:
        "benchmarks/kcf_fold/{backend}/{group}-{fold}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(lambda wildcards: 32000 if wildcards.group == "all" else 8000),
        runtime=by_attempt(1440),
        gpu=1 if KCF_SETTINGS["device"] == "cuda" else 0,
    params:
        folds=config["kcf"]["folds"],
        train_settings=output_settings(KCF_SETTINGS, "train"),
        seed=config["seed"],
    script:
        "../scripts/kcf_fold.py"


# KCF with NeMo fold models (kcf.estimator: nemo; kcf_select then reads these instead of kcf_fold's): each trained in
# the NeMo interpreter (rules/nemo.smk) with the nemo block's settings, scoring by the reconstruction loss at the
# annotated pose.
rule kcf_fold_nemo:
    input:
        shards=kcf_fold_shards,
        meshes=lambda wildcards: expand(rules.nemo_mesh.output[0], category=CATEGORIES),
    output:
        f"{RESULTS}/kcf/{{backend}}/folds_nemo/{{group}}-{{fold}}.csv",
    log:
        "logs/kcf_fold_nemo/{backend}/{group}-{fold}.log",
    benchmark:
        "benchmarks/kcf_fold_nemo/{backend}/{group}-{fold}.tsv"
    conda:
        "../envs/nemo.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(lambda wildcards: 32000 if wildcards.group == "all" else 8000),
        runtime=by_attempt(2880),
        gpu=1 if config["nemo"]["device"] == "cuda" else 0,
    params:
        folds=config["kcf"]["folds"],
        settings=NEMO_TRAIN_PARAMS,
        seed=config["seed"],
        python=nemo_python,
        root=nemo_root,
        job=nemo_kcf_job,
    shell:
        "PYTHONPATH={params.root:q}${{PYTHONPATH:+:$PYTHONPATH}} {params.python:q} -m dst3d.nemo.cli kcf_fold "
        "--job {params.job:q} > {log:q} 2>&1"


rule kcf_consistency:
    input:
        shards=generated_shards("train"),
        edges=shard_files(rules.detect_edges.output[0], "train"),
    output:
        f"{RESULTS}/kcf/{{backend}}/consistency.csv",
    log:
        "logs/kcf_consistency/{backend}.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(30),
    params:
        edges=job_settings("edges"),
        settings=config["kcf"]["consistency"],
    script:
        "../scripts/kcf_consistency.py"


rule kcf_select:
    input:
        unpack(kcf_select_inputs),
    output:
        scores=f"{RESULTS}/kcf/{{backend}}/scores.csv",
        kept=f"{RESULTS}/kcf/{{backend}}/kept.csv",
        summary=f"{RESULTS}/kcf/{{backend}}/summary.csv",
    log:
        "logs/kcf_select/{backend}.log",
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=by_attempt(4000),
        runtime=by_attempt(30),
    params:
        policy=config["kcf"]["policy"],
    script:
        "../scripts/kcf_select.py"
