"""Rule answers → medvqa.data.answers.write_answers."""

from medvqa.data.answers import write_answers
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
write_answers(snakemake.input.train, [snakemake.input.val, snakemake.input.test], snakemake.output[0])
