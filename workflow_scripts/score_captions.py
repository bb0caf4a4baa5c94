"""Rule score_captions → medvqa.evaluate.score.score_captions."""

from medvqa.evaluate.score import score_captions
from medvqa.evaluate.spec import ScoreSpec
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
spec = ScoreSpec.from_mapping(snakemake.params.spec, where="evaluate")
score_captions(
    snakemake.input.data, snakemake.input.captions, snakemake.output[0], spec, snakemake.params.model_run
)
