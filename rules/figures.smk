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
#   results/tables/{dataset}/mcnemar.{split}.{md,tex,html}                  pairwise McNemar tests (VQA)
#
# The comparison bars and the results table hold the baselines (rules/baselines.smk) as rows too.
#
# Input functions: rules/common.smk.


rule training_curves:
    """Training and validation curves of one run."""
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
    benchmark:
        "benchmarks/figures/{dataset}/{model}/curves.tsv"
    wildcard_constraints:
        model=model_names(),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        seeds=run_seeds,
        spec=figure_params,
        title="{model} on {dataset}: training curves",
    script:
        "../workflow_scripts/training_curves.py"


rule reliability_diagram:
    """Reliability diagram of each confidence source of one run."""
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
    benchmark:
        "benchmarks/figures/{dataset}/{model}/{seed}/reliability.{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("vqa"),
        model=model_names(),
        seed=SEED_PATTERN,
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=figure_params,
        title="{model} on {dataset}/{split}, seed {seed}: reliability",
    script:
        "../workflow_scripts/reliability_diagram.py"


rule comparison_bars:
    """Models and baselines side by side under the figure metric, with intervals."""
    input:
        table_metrics,
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
    benchmark:
        "benchmarks/figures/{dataset}/comparison.{split}.tsv"
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        runs=table_runs,
        spec=figure_params,
        title="{dataset}/{split}: model comparison",
    script:
        "../workflow_scripts/comparison_bars.py"


rule caption_gallery:
    """A fixed sample of images with their reference and generated captions."""
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
    benchmark:
        "benchmarks/figures/{dataset}/{model}/{seed}/gallery.{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("caption"),
        model=model_names(),
        seed=SEED_PATTERN,
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=figure_params,
        title="{model} on {dataset}/{split}, seed {seed}: generated captions",
    script:
        "../workflow_scripts/caption_gallery.py"


rule attention_maps:
    """Question-guided attention maps over a fixed sample of questions."""
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
    benchmark:
        "benchmarks/figures/{dataset}/{model}/{seed}/attention.{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("vqa"),
        model=model_names(),
        seed=SEED_PATTERN,
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=figure_params,
        title="{model} on {dataset}/{split}, seed {seed}: question-guided attention",
        image_size=image_size_param,
    script:
        "../workflow_scripts/attention_maps.py"


rule results_table:
    """The results table of a dataset and split (CSV, Markdown, LaTeX, HTML)."""
    input:
        table_metrics,
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
    benchmark:
        "benchmarks/tables/{dataset}/results.{split}.tsv"
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        runs=table_runs,
    script:
        "../workflow_scripts/results_table.py"


rule published_table:
    """Published numbers beside this project's, under the same protocol and split."""
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
    benchmark:
        "benchmarks/tables/{dataset}/published.{split}.tsv"
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        runs=dataset_runs,
        entries=published_entries,
    script:
        "../workflow_scripts/published_table.py"


rule mcnemar_table:
    """The pairwise McNemar tests of one VQA split as a report table (and Markdown / LaTeX)."""
    input:
        "results/metrics/{dataset}/mcnemar.{split}.json",
    output:
        md="results/tables/{dataset}/mcnemar.{split}.md",
        tex="results/tables/{dataset}/mcnemar.{split}.tex",
        html=report(
            "results/tables/{dataset}/mcnemar.{split}.html",
            caption="../report/mcnemar.rst",
            category="{dataset}",
            subcategory="statistical tests",
            labels={"table": "McNemar (table)", "split": "{split}"},
        ),
    log:
        "logs/tables/{dataset}/mcnemar.{split}.log",
    benchmark:
        "benchmarks/tables/{dataset}/mcnemar.{split}.tsv"
    wildcard_constraints:
        dataset=task_datasets("vqa"),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        title="{dataset}: pairwise McNemar tests on the {split} split",
    script:
        "../workflow_scripts/mcnemar_table.py"
