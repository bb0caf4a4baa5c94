"""Rules train, zero_shot → medvqa.training.train.run_training."""

from pathlib import Path

from medvqa.io import setup_logging
from medvqa.training.train import ModelConfig, TrainPaths, run_training

setup_logging(snakemake.log[0])
config = ModelConfig.from_mapping(snakemake.params.model, where=f"models.{snakemake.wildcards.model}")
paths = TrainPaths.from_inputs(dict(snakemake.input.items()), snakemake.params.image_size)
out_dir = Path(snakemake.output.state).parent
run_training(config, paths, out_dir, int(snakemake.params.seed), threads=snakemake.threads)
