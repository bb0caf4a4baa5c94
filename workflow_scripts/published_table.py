"""Rule published_table → medvqa.report.published.published_table."""

from medvqa.io import setup_logging
from medvqa.report.collect import load_runs
from medvqa.report.published import published_table

setup_logging(snakemake.log[0])
runs = load_runs(snakemake.params.runs, list(snakemake.input))
wc, out = snakemake.wildcards, dict(snakemake.output.items())
published_table(snakemake.params.entries, runs, wc.dataset, wc.split, out)
