# Evaluation stages (CPU only): predictions / captions → metrics JSON, mean ± std over seeds,
# pairwise McNemar between models. Nothing here loads a model.
#
#   results/metrics/{dataset}/{model}/{seed}/{split}.json   one run scored (score_vqa | score_captions)
#   results/metrics/{dataset}/{model}/{split}.seeds.json    mean ± std of every metric over seeds
#   results/metrics/{dataset}/mcnemar.{split}.{json,csv}    every pair of models, same questions
#
# Input functions: rules/common.smk.


rule score_vqa:
    """Score one predictions file under every protocol into a metrics JSON."""
    input:
        unpack(llava_med_candidates_input),
        data="results/data/{dataset}/{split}.parquet",
        predictions="results/predictions/{dataset}/{model}/{seed}/{split}.parquet",
    output:
        "results/metrics/{dataset}/{model}/{seed}/{split}.json",
    log:
        "logs/metrics/{dataset}/{model}/{seed}/{split}.log",
    benchmark:
        "benchmarks/metrics/{dataset}/{model}/{seed}/{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("vqa"),
        model=model_names(),
        seed=SEED_PATTERN,
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=score_params,
        model_run=score_run,
    script:
        "../workflow_scripts/score_vqa.py"


rule score_captions:
    """Score one captions file under every caption protocol into a metrics JSON."""
    input:
        data="results/data/{dataset}/{split}.parquet",
        captions="results/captions/{dataset}/{model}/{seed}/{split}.parquet",
    output:
        "results/metrics/{dataset}/{model}/{seed}/{split}.json",
    log:
        "logs/metrics/{dataset}/{model}/{seed}/{split}.log",
    benchmark:
        "benchmarks/metrics/{dataset}/{model}/{seed}/{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("caption"),
        model=model_names(),
        seed=SEED_PATTERN,
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        spec=score_params,
        model_run=score_run,
    script:
        "../workflow_scripts/score_captions.py"


rule aggregate_seeds:
    """Mean, std and interval over the seeds of one model."""
    input:
        seed_metrics,
    output:
        "results/metrics/{dataset}/{model}/{split}.seeds.json",
    log:
        "logs/metrics/{dataset}/{model}/{split}.seeds.log",
    benchmark:
        "benchmarks/metrics/{dataset}/{model}/{split}.seeds.tsv"
    wildcard_constraints:
        model=model_names(),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        seeds=run_seeds,
    script:
        "../workflow_scripts/aggregate_seeds.py"


rule compare_models:
    """Exact McNemar tests between the models scored on the same questions (Holm-adjusted)."""
    input:
        data="results/data/{dataset}/{split}.parquet",
        predictions=dataset_predictions,
    output:
        json="results/metrics/{dataset}/mcnemar.{split}.json",
        csv=report(
            "results/metrics/{dataset}/mcnemar.{split}.csv",
            caption="../report/mcnemar.rst",
            category="{dataset}",
            subcategory="statistical tests",
            labels={"table": "McNemar", "split": "{split}"},
        ),
    log:
        "logs/metrics/{dataset}/mcnemar.{split}.log",
    benchmark:
        "benchmarks/metrics/{dataset}/mcnemar.{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("vqa"),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        runs=dataset_runs,
    script:
        "../workflow_scripts/compare_models.py"
