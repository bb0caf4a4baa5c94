"""Rules predict, predict_with_attention, generate_answers → medvqa.inference.predict.run_prediction."""

from pathlib import Path

from medvqa.inference.predict import PredictSpec, run_prediction
from medvqa.io import setup_logging
from medvqa.models.batch import SplitPaths
from medvqa.models.specs import GenerationSpec

setup_logging(snakemake.log[0])
out, params = snakemake.output, snakemake.params
split = SplitPaths.from_inputs(dict(snakemake.input.items()), snakemake.wildcards.split, params.image_size)
attention = (out.attention, out.attention_ids) if "attention" in out.keys() else None
generation = GenerationSpec.from_mapping(params.generate, where=f"models.{snakemake.wildcards.model}.generate")
spec = PredictSpec.from_mapping(params.spec, where="predict")
shard = tuple(params.shard) if hasattr(params, "shard") else None  # rule generate_answers_shard
run_prediction(
    Path(snakemake.input.state).parent, split, out.predictions, spec, attention, snakemake.threads, generation, shard
)
