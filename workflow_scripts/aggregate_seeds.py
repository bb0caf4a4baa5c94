"""Rule aggregate_seeds → medvqa.report.seeds.aggregate_metrics."""

from medvqa.io import setup_logging
from medvqa.report.seeds import aggregate_metrics

setup_logging(snakemake.log[0])
aggregate_metrics(list(snakemake.input), snakemake.params.seeds, snakemake.output[0])
