"""Rule tokenize → medvqa.data.tokens.tokenize_split."""

from medvqa.data.tokens import TokenizerSpec, tokenize_split
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
spec = TokenizerSpec.from_mapping(snakemake.params.spec, where=f"tokenizers.{snakemake.wildcards.tokenizer}")
tokenize_split(spec, snakemake.input.split, snakemake.output[0], snakemake.input.get("vocab"))
