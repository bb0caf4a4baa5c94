# Training, one engine for every family (medvqa.training.engine):
#   results/models/{dataset}/{model}/{seed}/  best.safetensors, state.json, history.csv
#   (+ resume/, deliberately not an output: it survives a killed job so the re-run resumes;
#    + hf_model/ for blip: the best model as a save_pretrained directory with its processor;
#    + adapter/ for vlm_sft LoRA runs: the best adapter in PEFT's own format with the processor.
#    Those two families train in rules train_blip / train_vlm, which declare that directory too.)
# Zero-shot entries (no train: block; blip and vlm_sft) train nothing: state.json + an empty history.csv.
# train.method: grpo trains vlm_sft LoRA entries with GRPO (medvqa.training.grpo) in the same rule (train_vlm);
# train.init_from adds that entry's best.safetensors (same dataset, seed) as an input.
# Model jobs (train, predict, caption) take one thread: the demo's tiny models ran faster on one
# than on two, and two jobs then run side by side on two cores. Give a big CPU-only model more
# with --set-threads train=N (a GPU job needs few CPU threads).


rule train:
    """Train one model on one dataset with one seed (resumable)."""
    input:
        unpack(train_inputs),
    output:
        weights="results/models/{dataset}/{model}/{seed}/best.safetensors",
        state="results/models/{dataset}/{model}/{seed}/state.json",
        history="results/models/{dataset}/{model}/{seed}/history.csv",
    log:
        "logs/models/{dataset}/{model}/{seed}/train.log",
    benchmark:
        "benchmarks/models/{dataset}/{model}/{seed}/train.tsv"
    wildcard_constraints:
        model=models_of(PLAIN_FAMILIES, zero_shot=False, multi_gpu=False),
        seed=SEED_PATTERN,
    priority: training_priority
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=family_mem_mb,
        runtime=480,
    params:
        model=model_entry,
        seed="{seed}",
        image_size=image_size_param,
    script:
        "../workflow_scripts/train.py"


rule zero_shot:
    """The run directory of a model used as pretrained (no training)."""
    input:
        unpack(train_inputs),
    output:
        state="results/models/{dataset}/{model}/{seed}/state.json",
        history="results/models/{dataset}/{model}/{seed}/history.csv",
    log:
        "logs/models/{dataset}/{model}/{seed}/train.log",
    benchmark:
        "benchmarks/models/{dataset}/{model}/{seed}/train.tsv"
    wildcard_constraints:
        model=models_of(ZERO_SHOT_FAMILIES, zero_shot=True),
        seed=SEED_PATTERN,
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        model=model_entry,
        seed="{seed}",
        image_size=image_size_param,
    script:
        "../workflow_scripts/train.py"


# Entries with train.gpus > 1: data-parallel under torchrun, one process per GPU
# (medvqa.training.distributed; train.batch_size is the global batch). Rank 0 writes the
# outputs; every rank's stderr (rank 0's progress, any rank's errors) goes to the log.
rule train_ddp:
    """Train one model on several GPUs of one node under torchrun."""
    input:
        unpack(train_inputs),
    output:
        weights="results/models/{dataset}/{model}/{seed}/best.safetensors",
        state="results/models/{dataset}/{model}/{seed}/state.json",
        history="results/models/{dataset}/{model}/{seed}/history.csv",
    log:
        "logs/models/{dataset}/{model}/{seed}/train.log",
    benchmark:
        "benchmarks/models/{dataset}/{model}/{seed}/train.tsv"
    wildcard_constraints:
        model=models_of(PLAIN_FAMILIES, zero_shot=False, multi_gpu=True),
        seed=SEED_PATTERN,
    priority: training_priority
    conda:
        "../envs/train.yaml"
    threads: 8
    resources:
        gpu=train_gpus,
        mem_mb=family_mem_mb,
        runtime=480,
    params:
        entry=train_entry_json,
        inputs=train_inputs_json,
        image_size=image_size_param,
        out="results/models/{dataset}/{model}/{seed}",
        checkout=CHECKOUT,
    # A conda environment blocks an inherited PYTHONPATH, so the shell names the checkout.
    shell:
        "PYTHONPATH={params.checkout:q}${{PYTHONPATH:+:$PYTHONPATH}}"
        " torchrun --standalone --nproc_per_node={resources.gpu} -m medvqa.training.train"
        " --entry {params.entry:q} --inputs {params.inputs:q} --image-size {params.image_size}"
        " --out {params.out:q}"
        " --seed {wildcards.seed} --threads {threads} 2>> {log:q}"


# blip and vlm_sft runs also write their Hugging Face export (medvqa.families: export_dir).


use rule train as train_blip with:
    """Train one BLIP model (resumable); also writes hf_model/ (save_pretrained)."""
    output:
        weights="results/models/{dataset}/{model}/{seed}/best.safetensors",
        state="results/models/{dataset}/{model}/{seed}/state.json",
        history="results/models/{dataset}/{model}/{seed}/history.csv",
        hf_model=directory("results/models/{dataset}/{model}/{seed}/hf_model"),
    wildcard_constraints:
        model=models_of(["blip"], zero_shot=False, multi_gpu=False),
        seed=SEED_PATTERN,


use rule train as train_vlm with:
    """Train one vlm_sft LoRA model (resumable); also writes adapter/ (PEFT)."""
    output:
        weights="results/models/{dataset}/{model}/{seed}/best.safetensors",
        state="results/models/{dataset}/{model}/{seed}/state.json",
        history="results/models/{dataset}/{model}/{seed}/history.csv",
        adapter=directory("results/models/{dataset}/{model}/{seed}/adapter"),
    wildcard_constraints:
        model=models_of(["vlm_sft"], zero_shot=False, multi_gpu=False),
        seed=SEED_PATTERN,


use rule train_ddp as train_blip_ddp with:
    """Train one BLIP model on several GPUs under torchrun; also writes hf_model/."""
    output:
        weights="results/models/{dataset}/{model}/{seed}/best.safetensors",
        state="results/models/{dataset}/{model}/{seed}/state.json",
        history="results/models/{dataset}/{model}/{seed}/history.csv",
        hf_model=directory("results/models/{dataset}/{model}/{seed}/hf_model"),
    wildcard_constraints:
        model=models_of(["blip"], zero_shot=False, multi_gpu=True),
        seed=SEED_PATTERN,


use rule train_ddp as train_vlm_ddp with:
    """Train one vlm_sft LoRA model on several GPUs under torchrun; also writes adapter/."""
    output:
        weights="results/models/{dataset}/{model}/{seed}/best.safetensors",
        state="results/models/{dataset}/{model}/{seed}/state.json",
        history="results/models/{dataset}/{model}/{seed}/history.csv",
        adapter=directory("results/models/{dataset}/{model}/{seed}/adapter"),
    wildcard_constraints:
        model=models_of(["vlm_sft"], zero_shot=False, multi_gpu=True),
        seed=SEED_PATTERN,
