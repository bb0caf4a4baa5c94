"""Rule leakage_table → medvqa.report.leakage.leakage_table."""

from medvqa.io import setup_logging
from medvqa.report.leakage import leakage_table

setup_logging(snakemake.log[0])
leakage_table(snakemake.input[0], dict(snakemake.output.items()))
