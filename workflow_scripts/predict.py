"""Rules predict, predict_with_attention → medvqa.predict.run_prediction."""

from pathlib import Path

from medvqa.io import setup_logging
from medvqa.predict import PredictSpec, run_prediction
from medvqa.training.data import SplitPaths

setup_logging(snakemake.log[0])
out = snakemake.output
spec = PredictSpec.from_mapping(snakemake.params.spec, where="predict")
split = SplitPaths.from_inputs(dict(snakemake.input.items()), snakemake.wildcards.split)
attention = (out.attention, out.attention_ids) if "attention" in out.keys() else None
run_prediction(Path(snakemake.input.state).parent, split, out.predictions, spec, attention, snakemake.threads)
