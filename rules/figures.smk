# Figures and tables (CPU only), drawn from results/ alone: metrics JSONs, history.csv,
# predictions / captions parquets, attention maps written at prediction time. No rule here
# reads a checkpoint, so `snakemake figures` never retrains or re-runs a model.
#
#   results/figures/{dataset}/{model}/curves.{png,pdf}                     all seeds' training curves
#   results/figures/{dataset}/{model}/{seed}/reliability.{split}.{png,pdf}  reliability diagram (VQA)
#   results/figures/{dataset}/{model}/{seed}/gallery.{split}.{png,pdf}      caption gallery (captions)
#   results/figures/{dataset}/{model}/{seed}/attention.{split}.{png,pdf}    attention maps (cnn_lstm)
#   results/figures/{dataset}/comparison.{split}.{png,pdf}                  model comparison bars
#   results/tables/{dataset}/results.{split}.{csv,md,tex,html}              models x metrics
#   results/tables/{dataset}/published.{split}.{csv,md,tex,html}            beside published numbers
#
# Input functions: rules/report_common.smk.


rule training_curves:
    input:
        run_histories,
    output:
        png=report(
            "results/figures/{dataset}/{model}/curves.png",
            caption="../report/curves.rst",
            category="{dataset}",
            subcategory="training curves",
            labels={"model": "{model}", "figure": "training curves"},
        ),
        pdf="results/figures/{dataset}/{model}/curves.pdf",
    log:
        "logs/figures/{dataset}/{model}/curves.log",
    wildcard_constraints:
        model=model_names(),
    params:
        seeds=run_seeds,
        spec=figure_params(),
        title="{model} on {dataset}: training curves",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/figure_curves.py"


rule reliability_diagram:
    input:
        "results/metrics/{dataset}/{model}/{seed}/{split}.json",
    output:
        png=report(
            "results/figures/{dataset}/{model}/{seed}/reliability.{split}.png",
            caption="../report/reliability.rst",
            category="{dataset}",
            subcategory="calibration",
            labels={"model": "{model}", "seed": "{seed}", "split": "{split}"},
        ),
        pdf="results/figures/{dataset}/{model}/{seed}/reliability.{split}.pdf",
    log:
        "logs/figures/{dataset}/{model}/{seed}/reliability.{split}.log",
    wildcard_constraints:
        dataset=task_datasets("vqa"),
        model=model_names(),
        seed=SEED_PATTERN,
    params:
        spec=figure_params(),
        title="{model} on {dataset}/{split}, seed {seed}: reliability",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/figure_reliability.py"


rule comparison_bars:
    input:
        dataset_metrics,
    output:
        png=report(
            "results/figures/{dataset}/comparison.{split}.png",
            caption="../report/comparison.rst",
            category="{dataset}",
            subcategory="model comparison",
            labels={"figure": "comparison bars", "split": "{split}"},
        ),
        pdf="results/figures/{dataset}/comparison.{split}.pdf",
    log:
        "logs/figures/{dataset}/comparison.{split}.log",
    params:
        runs=dataset_runs,
        spec=figure_params(),
        title="{dataset}/{split}: model comparison",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/figure_comparison.py"


rule caption_gallery:
    input:
        data="results/data/{dataset}/{split}.parquet",
        captions="results/captions/{dataset}/{model}/{seed}/{split}.parquet",
    output:
        png=report(
            "results/figures/{dataset}/{model}/{seed}/gallery.{split}.png",
            caption="../report/gallery.rst",
            category="{dataset}",
            subcategory="captions",
            labels={"model": "{model}", "seed": "{seed}", "split": "{split}"},
        ),
        pdf="results/figures/{dataset}/{model}/{seed}/gallery.{split}.pdf",
    log:
        "logs/figures/{dataset}/{model}/{seed}/gallery.{split}.log",
    wildcard_constraints:
        dataset=task_datasets("caption"),
        model=model_names(),
        seed=SEED_PATTERN,
    params:
        spec=figure_params(),
        title="{model} on {dataset}/{split}, seed {seed}: generated captions",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/figure_gallery.py"


rule attention_maps:
    input:
        unpack(image_cache_files),
        attention="results/predictions/{dataset}/{model}/{seed}/{split}.attention.npy",
        attention_ids="results/predictions/{dataset}/{model}/{seed}/{split}.attention.ids.json",
        data="results/data/{dataset}/{split}.parquet",
        predictions="results/predictions/{dataset}/{model}/{seed}/{split}.parquet",
    output:
        png=report(
            "results/figures/{dataset}/{model}/{seed}/attention.{split}.png",
            caption="../report/attention.rst",
            category="{dataset}",
            subcategory="attention",
            labels={"model": "{model}", "seed": "{seed}", "split": "{split}"},
        ),
        pdf="results/figures/{dataset}/{model}/{seed}/attention.{split}.pdf",
    log:
        "logs/figures/{dataset}/{model}/{seed}/attention.{split}.log",
    wildcard_constraints:
        dataset=task_datasets("vqa"),
        model=model_names(),
        seed=SEED_PATTERN,
    params:
        spec=figure_params(),
        title="{model} on {dataset}/{split}, seed {seed}: question-guided attention",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/figure_attention.py"


rule results_table:
    input:
        dataset_metrics,
    output:
        csv="results/tables/{dataset}/results.{split}.csv",
        md="results/tables/{dataset}/results.{split}.md",
        tex="results/tables/{dataset}/results.{split}.tex",
        html=report(
            "results/tables/{dataset}/results.{split}.html",
            caption="../report/results_table.rst",
            category="{dataset}",
            subcategory="tables",
            labels={"table": "results", "split": "{split}"},
        ),
    log:
        "logs/tables/{dataset}/results.{split}.log",
    params:
        runs=dataset_runs,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/table.py"


rule published_table:
    input:
        dataset_metrics,
    output:
        csv="results/tables/{dataset}/published.{split}.csv",
        md="results/tables/{dataset}/published.{split}.md",
        tex="results/tables/{dataset}/published.{split}.tex",
        html=report(
            "results/tables/{dataset}/published.{split}.html",
            caption="../report/published_table.rst",
            category="{dataset}",
            subcategory="tables",
            labels={"table": "published", "split": "{split}"},
        ),
    log:
        "logs/tables/{dataset}/published.{split}.log",
    params:
        runs=dataset_runs,
        entries=published_entries,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/evaluate.yaml"
    script:
        "../workflow_scripts/table_published.py"
