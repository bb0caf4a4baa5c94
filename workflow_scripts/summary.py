"""Rule summary → medvqa.data.summary.summarise."""

from medvqa.data.summary import summarise
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
splits = {split: snakemake.input[split] for split in ("train", "val", "test")}
summarise(snakemake.wildcards.dataset, splits, snakemake.input.rejected, snakemake.input.meta, snakemake.output[0])
