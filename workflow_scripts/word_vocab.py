"""Rule word_vocab → medvqa.data.tokens.build_word_vocab."""

from medvqa.data.tokens import TokenizerSpec, build_word_vocab
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
spec = TokenizerSpec.from_mapping(snakemake.params.spec, where=f"tokenizers.{snakemake.wildcards.tokenizer}")
build_word_vocab(snakemake.input[0], spec, snakemake.output[0])
