"""Rule clean_table → medvqa.report.leakage.clean_table."""

from medvqa.io import read_json, setup_logging
from medvqa.report.collect import load_runs
from medvqa.report.leakage import clean_table

setup_logging(snakemake.log[0])
original = load_runs(snakemake.params.original_runs, list(snakemake.input.original))
clean = load_runs(snakemake.params.clean_runs, list(snakemake.input.clean))
names = (snakemake.params.original, snakemake.wildcards.dataset)
removed = read_json(snakemake.input.summary)["leakage"]["removed"]
clean_table(original, clean, names, snakemake.wildcards.split, dict(snakemake.output.items()), removed)
