"""Rule mcnemar_table → medvqa.report.mcnemar.mcnemar_table."""

from medvqa.io import setup_logging
from medvqa.report.mcnemar import mcnemar_table

setup_logging(snakemake.log[0])
mcnemar_table(snakemake.input[0], dict(snakemake.output.items()), snakemake.params.title)
