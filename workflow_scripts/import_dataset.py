"""Rule import_dataset → medvqa.data.prepare.import_dataset (the demo source's loader from medvqa.demo)."""

from medvqa.data.prepare import ImportSpec, import_dataset
from medvqa.demo.dataset import load_demo
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
dataset = snakemake.wildcards.dataset
spec = ImportSpec.from_mapping(snakemake.params.spec, where=f"datasets.{dataset}")
splits = {split: snakemake.output[split] for split in ("train", "val", "test")}
import_dataset(spec, dataset, splits, snakemake.output.rejected, snakemake.output.meta, loaders={"demo": load_demo})
