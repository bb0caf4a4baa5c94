# Training of the classifier families:
#   results/models/{dataset}/{model}/{seed}/  best.safetensors, state.json, history.csv
#   (+ resume/, deliberately not an output: it survives a killed job so the re-run resumes)

rule train:
    input:
        unpack(train_inputs),
    output:
        weights="results/models/{dataset}/{model}/{seed}/best.safetensors",
        state="results/models/{dataset}/{model}/{seed}/state.json",
        history="results/models/{dataset}/{model}/{seed}/history.csv",
    log:
        "logs/models/{dataset}/{model}/{seed}/train.log",
    wildcard_constraints:
        model=models_of(CLASSIFIER_FAMILIES),
        seed=SEED_PATTERN,
    params:
        model=model_entry,
        seed="{seed}",
    threads: 2
    resources:
        gpu=1,
        mem_mb=16000,
        runtime=480,
    conda:
        "../envs/train.yaml"
    script:
        "../workflow_scripts/train.py"
