# nemo: NeMo (P3D-Diffusion's neural-mesh render-and-compare pose estimator) per variant of nemo.variants, CC3D's
# adaptation of some to a real source's unlabelled images, and their evaluation on every evaluation set; rows with
# estimator nemo in pose_metrics.csv and the protocol tables. Training, CC3D and evaluation run
# `python -m dst3d.nemo.cli` in the NeMo interpreter (torch 2.2.2 + PyTorch3D: nemo.python, or envs/nemo.yaml under
# conda), the meshes in the main environment. No job exists while nemo.variants is empty.
NEMO_TRAINED = "|".join(map(re.escape, NEMO_VARIANTS)) or "^$"
NEMO_EVALUATED = "|".join(map(re.escape, NEMO_MODELS)) or "^$"
NEMO_GPU = 1 if config["nemo"]["device"] == "cuda" else 0


rule nemo_mesh:
    input:
        models=rules.index_assets.output.models,
    output:
        f"{RESULTS}/nemo/meshes/{{category}}.npz",
    log:
        "logs/nemo_mesh/{category}.log",
    conda:
        "../envs/vision.yaml"
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(15),
    params:
        settings={
            "vertices": config["nemo"]["vertices"],
            "coverage": config["nemo"]["coverage"],
            "stretch": config["render"]["stretch"],
        },
        axes=config["render"]["axes"],
    script:
        "../scripts/nemo_mesh.py"


rule train_nemo:
    input:
        unpack(nemo_training_inputs),
    output:
        model=f"{RESULTS}/nemo/train/{{variant}}.pt",
        history=f"{RESULTS}/nemo/train/{{variant}}_history.csv",
    log:
        "logs/train_nemo/{variant}.log",
    benchmark:
        "benchmarks/train_nemo/{variant}.tsv"
    wildcard_constraints:
        variant=NEMO_TRAINED,
    conda:
        "../envs/nemo.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(32000),
        runtime=by_attempt(2880),
        gpu=NEMO_GPU,
    params:
        settings=NEMO_TRAIN_PARAMS,
        categories=CATEGORIES,
        seed=config["seed"],
        python=nemo_python,
        root=nemo_root,
        job=nemo_train_job,
    shell:
        "PYTHONPATH={params.root:q}${{PYTHONPATH:+:$PYTHONPATH}} {params.python:q} -m dst3d.nemo.cli train "
        "--job {params.job:q} > {log:q} 2>&1"


rule cc3d_nemo:
    input:
        unpack(nemo_cc3d_inputs),
    output:
        model=f"{RESULTS}/nemo/train/{{variant}}+cc3d.pt",
        history=f"{RESULTS}/nemo/train/{{variant}}+cc3d_history.csv",
        pseudo_labels=f"{RESULTS}/nemo/train/{{variant}}+cc3d_pseudo_labels.csv",
    log:
        "logs/cc3d_nemo/{variant}.log",
    benchmark:
        "benchmarks/cc3d_nemo/{variant}.tsv"
    wildcard_constraints:
        variant="|".join(map(re.escape, NEMO_CC3D)) or "^$",
    conda:
        "../envs/nemo.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(32000),
        runtime=by_attempt(2880),
        gpu=NEMO_GPU,
    params:
        settings=NEMO_PARAMS,
        categories=CATEGORIES,
        seed=config["seed"],
        python=nemo_python,
        root=nemo_root,
        job=nemo_cc3d_job,
    shell:
        "PYTHONPATH={params.root:q}${{PYTHONPATH:+:$PYTHONPATH}} {params.python:q} -m dst3d.nemo.cli cc3d "
        "--job {params.job:q} > {log:q} 2>&1"


rule evaluate_nemo:
    input:
        model=lambda wildcards: nemo_model(wildcards.model),
        shards=nemo_test_shards,
    output:
        predictions=f"{RESULTS}/evaluate/nemo/{{model}}/predictions.csv",
        metrics=f"{RESULTS}/evaluate/nemo/{{model}}/metrics.csv",
    log:
        "logs/evaluate_nemo/{model}.log",
    benchmark:
        "benchmarks/evaluate_nemo/{model}.tsv"
    wildcard_constraints:
        model=NEMO_EVALUATED,
    conda:
        "../envs/nemo.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
        gpu=NEMO_GPU,
    params:
        batch_size=config["evaluate"]["batch_size"],
        search=config["nemo"]["search"],
        python=nemo_python,
        root=nemo_root,
        job=nemo_evaluate_job,
    shell:
        "PYTHONPATH={params.root:q}${{PYTHONPATH:+:$PYTHONPATH}} {params.python:q} -m dst3d.nemo.cli evaluate "
        "--job {params.job:q} > {log:q} 2>&1"


rule evaluate_nemo_real:
    input:
        model=lambda wildcards: nemo_model(wildcards.model),
        root=lambda wildcards: REAL_SETS[wildcards.real_set]["root"],
    output:
        predictions=f"{RESULTS}/evaluate/nemo/{{model}}/real/{{real_set}}/predictions.csv",
        metrics=f"{RESULTS}/evaluate/nemo/{{model}}/real/{{real_set}}/metrics.csv",
    log:
        "logs/evaluate_nemo_real/{model}/{real_set}.log",
    benchmark:
        "benchmarks/evaluate_nemo_real/{model}/{real_set}.tsv"
    wildcard_constraints:
        model=NEMO_EVALUATED,
        real_set="|".join(map(re.escape, REAL_SETS)) or "^$",
    conda:
        "../envs/nemo.yaml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=by_attempt(8000),
        runtime=by_attempt(240),
        gpu=NEMO_GPU,
    params:
        real_set=lambda wildcards: REAL_SETS[wildcards.real_set],
        batch_size=config["evaluate"]["batch_size"],
        search=config["nemo"]["search"],
        categories=CATEGORIES,
        python=nemo_python,
        root=nemo_root,
        job=nemo_evaluate_job,
    shell:
        "PYTHONPATH={params.root:q}${{PYTHONPATH:+:$PYTHONPATH}} {params.python:q} -m dst3d.nemo.cli evaluate "
        "--job {params.job:q} > {log:q} 2>&1"
