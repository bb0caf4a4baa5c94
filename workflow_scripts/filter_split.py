"""Rule filter_split → medvqa.data.prepare.filter_split."""

from medvqa.data.prepare import FilterSpec, filter_split
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
dataset, split = snakemake.wildcards.dataset, snakemake.wildcards.split
spec = FilterSpec.from_mapping(snakemake.params.spec, where=f"datasets.{dataset}.filters")
leakage = snakemake.input.get("leakage")  # only when filters.leakage is drop
filter_split(spec, dataset, split, snakemake.input.source, snakemake.output[0], leakage)
