# Tiny stand-ins of pretrained hub checkpoints, built offline:
#   results/pretrained/{name}/  config.json, model.safetensors, tokenizer + processor files

rule tiny_clip:
    input:
        train=pretrained_train_split,
    output:
        directory("results/pretrained/{name}"),
    log:
        "logs/pretrained/{name}.log",
    wildcard_constraints:
        name="|".join(config.get("pretrained", {})) or "(?!x)x",
    params:
        model=pretrained_model_params,
        seed=pretrained_seed,
        image_size=pretrained_image_size,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/pretrained.py"
