"""Rule results_table → medvqa.report.tables.results_table."""

from medvqa.io import setup_logging
from medvqa.report.collect import load_runs
from medvqa.report.tables import results_table

setup_logging(snakemake.log[0])
runs = load_runs(snakemake.params.runs, list(snakemake.input))
results_table(runs, snakemake.wildcards.dataset, snakemake.wildcards.split, dict(snakemake.output.items()))
