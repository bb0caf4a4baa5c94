"""Rule image_cache → medvqa.data.images.build_image_cache."""

from medvqa.data.images import build_image_cache
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
size = int(snakemake.wildcards.size)
build_image_cache(snakemake.input[0], size, snakemake.output.cache, snakemake.output.ids, snakemake.threads)
