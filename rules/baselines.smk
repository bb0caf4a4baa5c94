# Baselines (data stage, CPU only, no training): each is written as an ordinary run under
# seed 0, so score_vqa / score_captions score it like a model and the tables and comparison
# figures list it as a row with the same metrics and intervals.
#
#   results/predictions/{dataset}/baseline-{majority,question-only}/0/{split}.parquet
#   results/captions/{dataset}/baseline-{frequent,nearest}-caption/0/{split}.parquet
#
# Input functions: rules/common.smk (baseline_names, baseline_image_inputs).


rule vqa_baseline:
    """Majority-answer or question-only predictions of one VQA split, from the train split."""
    input:
        train="results/data/{dataset}/train.parquet",
        split="results/data/{dataset}/{split}.parquet",
    output:
        "results/predictions/{dataset}/{model}/0/{split}.parquet",
    log:
        "logs/predictions/{dataset}/{model}/0/{split}.log",
    benchmark:
        "benchmarks/predictions/{dataset}/{model}/0/{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("vqa"),
        model=baseline_names("vqa"),
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        name="{model}",
    script:
        "../workflow_scripts/baselines.py"


rule caption_baseline:
    """The most frequent train caption for every image of one caption split."""
    input:
        train="results/data/{dataset}/train.parquet",
        split="results/data/{dataset}/{split}.parquet",
    output:
        "results/captions/{dataset}/{model}/0/{split}.parquet",
    log:
        "logs/captions/{dataset}/{model}/0/{split}.log",
    benchmark:
        "benchmarks/captions/{dataset}/{model}/0/{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("caption"),
        model="baseline-frequent-caption",
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        name="{model}",
    script:
        "../workflow_scripts/baselines.py"


rule nearest_caption_baseline:
    """The caption of the most similar train image (grey 16x16 thumbnails) for every image of a split."""
    input:
        unpack(baseline_image_inputs),
        train="results/data/{dataset}/train.parquet",
        split="results/data/{dataset}/{split}.parquet",
    output:
        "results/captions/{dataset}/{model}/0/{split}.parquet",
    log:
        "logs/captions/{dataset}/{model}/0/{split}.log",
    benchmark:
        "benchmarks/captions/{dataset}/{model}/0/{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("caption"),
        model="baseline-nearest-caption",
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        name="{model}",
        image_size=image_size_param,
    script:
        "../workflow_scripts/baselines.py"
