# evaluate: pose metrics of each trained estimator on the held-out test split.


rule evaluate_pose:
    input:
        model=rules.train_pose_estimator.output.model,
        shards=generated_shards("test"),
    output:
        predictions=f"{RESULTS}/evaluate/{{backend}}-{{selection}}/predictions.csv",
        metrics=f"{RESULTS}/evaluate/{{backend}}-{{selection}}/metrics.csv",
    params:
        settings=config["evaluate"],
        train_settings=config["train"],
    threads: config["train"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    log:
        "logs/evaluate_pose/{backend}-{selection}.log",
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/evaluate_pose.py"


rule pose_table:
    input:
        expand(f"{RESULTS}/evaluate/{{variant}}/metrics.csv", variant=config["train"]["variants"]),
    output:
        f"{RESULTS}/tables/pose_metrics.csv",
    params:
        variants=config["train"]["variants"],
    log:
        "logs/pose_table/pose_metrics.log",
    conda:
        "../envs/vision.yaml"
    script:
        "../scripts/pose_table.py"
