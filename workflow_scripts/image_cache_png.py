"""Rule image_cache_png → medvqa.data.images.build_png_cache."""

from medvqa.data.images import build_png_cache
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
build_png_cache(snakemake.input[0], int(snakemake.wildcards.size), snakemake.output.cache, snakemake.threads)
