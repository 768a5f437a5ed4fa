# edges: Canny edge maps of the renders (the ControlNet condition).


rule detect_edges:
    input:
        annotations=rules.render_shard.output.annotations,
        images=rules.render_shard.output.images,
    output:
        directory(f"{RESULTS}/edges/{{split}}/{{category}}/{{shard}}"),
    log:
        "logs/detect_edges/{split}/{category}/{shard}.log",
    conda:
        "../envs/vision.yaml"
    threads: config["edges"]["threads"]
    resources:
        mem_mb=by_attempt(2000),
        runtime=by_attempt(30),
    params:
        settings=job_settings("edges"),
    script:
        "../scripts/detect_edges.py"
