"""Rule summary → medvqa.data.summary.summarise."""

from medvqa.data.prepare import FilterSpec
from medvqa.data.summary import summarise
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
dataset, splits = snakemake.wildcards.dataset, ("train", "val", "test")
filters = FilterSpec.from_mapping(snakemake.params.filters, where=f"datasets.{dataset}.filters")
sources = {split: snakemake.input[f"source_{split}"] for split in splits}
caches = {s: {k: snakemake.input[f"{s}_{k}"] for k in ("images", "image_ids")} for s in splits
          if f"{s}_images" in snakemake.input.keys()}
summarise(dataset, {s: snakemake.input[s] for s in splits}, snakemake.input.rejected, snakemake.input.meta,
          snakemake.output[0], snakemake.input.leakage, filters, sources, snakemake.params.image_size,
          snakemake.params.image_cache, caches)
