# prompts: one prompt per image, from templates (offline) or an OpenAI-compatible LLM (cached).


rule write_prompts:
    input:
        unpack(prompt_inputs),
    output:
        f"{RESULTS}/prompts/{{split}}/{{category}}.json",
    log:
        "logs/write_prompts/{split}/{category}.log",
    conda:
        "../envs/llm.yaml"
    resources:
        mem_mb=by_attempt(1000),
        runtime=by_attempt(60),
    params:
        settings=prompt_job_settings(config["prompts"]),
        images_per_category=lambda wildcards: config["splits"][wildcards.split]["images_per_category"],
        seed=config["seed"],
        cache_dir=f"{RESULTS}/cache/llm",
    script:
        "../scripts/write_prompts.py"
