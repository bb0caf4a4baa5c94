"""Rule score_vqa → medvqa.evaluate.score.score_vqa."""

from medvqa.evaluate.score import score_vqa
from medvqa.evaluate.spec import ScoreSpec
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
spec = ScoreSpec.from_mapping(snakemake.params.spec, where="evaluate")
score_vqa(
    snakemake.input.data, snakemake.input.predictions, snakemake.output[0], spec, snakemake.params.model_run,
    candidates_path=snakemake.input.get("candidates"),
)
