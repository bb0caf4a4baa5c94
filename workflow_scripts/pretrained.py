"""Rule tiny_clip → medvqa.pretrained.write_tiny_clip_from_parquet."""

from medvqa.io import setup_logging
from medvqa.pretrained import TinyClipSpec, write_tiny_clip_from_parquet

setup_logging(snakemake.log[0])
spec = TinyClipSpec.from_mapping(snakemake.params.model, where=f"pretrained.{snakemake.wildcards.name}.model")
write_tiny_clip_from_parquet(
    snakemake.input.train, snakemake.output[0], snakemake.params.image_size, snakemake.params.seed, spec
)
