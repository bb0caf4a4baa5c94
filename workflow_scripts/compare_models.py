"""Rule compare_models → medvqa.evaluate.compare.compare_models."""

from medvqa.evaluate.compare import compare_models
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
out = snakemake.output
compare_models(snakemake.input.data, snakemake.params.runs, list(snakemake.input.predictions), out.json, out.csv)
