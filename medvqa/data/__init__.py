"""Data stages: dataset sources → unified parquet → filters, answer vocabulary, image cache,
pre-tokenised text and a per-dataset summary."""
