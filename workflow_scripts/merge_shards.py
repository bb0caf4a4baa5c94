"""Rules merge_prediction_shards, merge_caption_shards → medvqa.inference.shards.merge_shards."""

from medvqa.inference.shards import merge_shards
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
merge_shards(snakemake.input.shards, snakemake.input.data, snakemake.params.id_column, snakemake.output.merged)
