"""Rule caption → medvqa.inference.caption.run_captioning (zero-shot, or from the run dir of input.state)."""

from pathlib import Path

from medvqa.inference.caption import CaptionSpec, run_captioning
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
params, inputs = snakemake.params, snakemake.input
spec = CaptionSpec.from_mapping(params.spec, where=f"models.{params.model_name}.caption")
run_dir = Path(inputs.state).parent if "state" in inputs.keys() else None
shard = tuple(params.shard) if hasattr(params, "shard") else None  # rule caption_shard
run_captioning(spec, inputs.data, inputs.images, inputs.image_ids, snakemake.output.captions, seed=int(params.seed),
               model_name=params.model_name, run_dir=run_dir, threads=snakemake.threads, shard=shard,
               image_size=params.image_size)
