# train: a pose estimator per training variant (<backend>-<all|kcf>).


rule train_pose_estimator:
    input:
        unpack(training_inputs),
    output:
        model=f"{RESULTS}/train/{{backend}}-{{selection}}/model.pt",
        history=f"{RESULTS}/train/{{backend}}-{{selection}}/history.csv",
    params:
        settings=config["train"],
        seed=config["seed"],
        resume=lambda wildcards: f"{RESULTS}/train/{wildcards.backend}-{wildcards.selection}/resume.pt",
    threads: config["train"]["threads"]
    resources:
        mem_mb=8000,
        runtime=720,
    log:
        "logs/train_pose_estimator/{backend}-{selection}.log",
    benchmark:
        "benchmarks/train_pose_estimator/{backend}-{selection}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/train_pose_estimator.py"
