"""Rules merge_prediction_shards, merge_caption_shards → medvqa.shards.merge_shards."""

from medvqa.io import setup_logging
from medvqa.shards import merge_shards

setup_logging(snakemake.log[0])
merge_shards(snakemake.input.shards, snakemake.input.data, snakemake.params.id_column, snakemake.output.merged)
