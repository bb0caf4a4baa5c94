"""Rule aggregate_seeds → medvqa.evaluate.seeds.aggregate_metrics."""

from medvqa.evaluate.seeds import aggregate_metrics
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
aggregate_metrics(list(snakemake.input), snakemake.params.seeds, snakemake.output[0])
