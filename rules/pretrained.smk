# Tiny stand-ins of pretrained hub checkpoints, built offline (medvqa.demo.tiny_checkpoints):
#   results/pretrained/{name}/  config.json, model.safetensors, tokenizer + processor files
#   (kind clip_gpt2: clip/ and gpt2/ subdirectories, one checkpoint each)

from medvqa.demo.tiny_checkpoints import check_pretrained

# Each entry's kind and sizes, at start-up (workflow_config.check_config has checked its names).
check_pretrained(config)


rule tiny_checkpoint:
    """A tiny random stand-in of a hub checkpoint, written with save_pretrained."""
    input:
        pretrained_train_splits,
    output:
        directory("results/pretrained/{name}"),
    log:
        "logs/pretrained/{name}.log",
    benchmark:
        "benchmarks/pretrained/{name}.tsv"
    wildcard_constraints:
        name="|".join(config.get("pretrained", {})) or "(?!x)x",
    priority: PRIORITY_PRETRAINED
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        kind=pretrained_kind,
        model=pretrained_model_params,
        seed=pretrained_seed,
        image_size=pretrained_image_size,
    script:
        "../workflow_scripts/tiny_checkpoint.py"
