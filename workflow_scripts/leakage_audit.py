"""Rule leakage_audit → medvqa.data.leakage.audit."""

from medvqa.data.leakage import LeakageSpec, audit
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
dataset = snakemake.wildcards.dataset
spec = LeakageSpec.from_mapping(snakemake.params.spec, where=f"datasets.{dataset}.leakage")
splits = {split: snakemake.input[split] for split in ("train", "val", "test")}
audit(spec, dataset, splits, snakemake.output.report, snakemake.output.pairs)
