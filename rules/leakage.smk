# Leakage section of the report (CPU only): the data stage's duplicate-image audit, and clean
# views beside their originals. Input functions: rules/common.smk.
#   results/figures/{dataset}/leakage.{png,pdf}                         example duplicate pairs
#   results/tables/{dataset}/leakage.{csv,md,tex,html}                  pairs per split pair
#   results/tables/{clean}/clean_vs_original.{split}.{csv,md,tex,html}  clean vs original scores


rule leakage_figure:
    """Example duplicate and near-duplicate image pairs of a dataset, side by side."""
    input:
        unpack(source_splits("")),
        audit="results/data/{dataset}/leakage.json",
        pairs="results/data/{dataset}/leakage_pairs.csv",
    output:
        png=report(
            "results/figures/{dataset}/leakage.png",
            caption="../report/leakage.rst",
            category="{dataset}",
            subcategory="leakage",
            labels={"figure": "duplicate images"},
        ),
        pdf="results/figures/{dataset}/leakage.pdf",
    log:
        "logs/figures/{dataset}/leakage.log",
    benchmark:
        "benchmarks/figures/{dataset}/leakage.tsv"
    wildcard_constraints:
        dataset=audited_datasets(),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        spec=figure_params,
        title="{dataset}: duplicate images (examples)",
    script:
        "../workflow_scripts/leakage_figure.py"


rule leakage_table:
    """Duplicate pairs per split pair and the val/test rows on duplicated images."""
    input:
        "results/data/{dataset}/leakage.json",
    output:
        csv="results/tables/{dataset}/leakage.csv",
        md="results/tables/{dataset}/leakage.md",
        tex="results/tables/{dataset}/leakage.tex",
        html=report(
            "results/tables/{dataset}/leakage.html",
            caption="../report/leakage_table.rst",
            category="{dataset}",
            subcategory="leakage",
            labels={"table": "duplicate images"},
        ),
    log:
        "logs/tables/{dataset}/leakage.log",
    benchmark:
        "benchmarks/tables/{dataset}/leakage.tsv"
    wildcard_constraints:
        dataset=audited_datasets(),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow_scripts/leakage_table.py"


rule clean_table:
    """Every model's scores on a clean view beside its original view."""
    input:
        original=original_metrics,
        clean=dataset_metrics,
        summary="results/data/{dataset}/summary.json",
    output:
        csv="results/tables/{dataset}/clean_vs_original.{split}.csv",
        md="results/tables/{dataset}/clean_vs_original.{split}.md",
        tex="results/tables/{dataset}/clean_vs_original.{split}.tex",
        html=report(
            "results/tables/{dataset}/clean_vs_original.{split}.html",
            caption="../report/clean_table.rst",
            category="{dataset}",
            subcategory="tables",
            labels={"table": "clean vs original", "split": "{split}"},
        ),
    log:
        "logs/tables/{dataset}/clean_vs_original.{split}.log",
    benchmark:
        "benchmarks/tables/{dataset}/clean_vs_original.{split}.tsv"
    wildcard_constraints:
        dataset=clean_view_names(),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        original=clean_original,
        original_runs=original_runs,
        clean_runs=dataset_runs,
    script:
        "../workflow_scripts/clean_table.py"
