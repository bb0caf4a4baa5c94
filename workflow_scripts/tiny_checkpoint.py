"""Rule tiny_checkpoint → medvqa.demo.tiny_checkpoints.write_tiny_checkpoint."""

from medvqa.io import setup_logging
from medvqa.demo.tiny_checkpoints import write_tiny_checkpoint

setup_logging(snakemake.log[0])
params = snakemake.params
write_tiny_checkpoint(
    params.kind, list(snakemake.input), snakemake.output[0], params.image_size, params.seed, params.model
)
