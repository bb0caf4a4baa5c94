"""Rule leakage_figure → medvqa.report.leakage.leakage_figure."""

from medvqa.io import setup_logging
from medvqa.report.leakage import leakage_figure
from medvqa.report.spec import FigureSpec

setup_logging(snakemake.log[0])
spec = FigureSpec.from_mapping(snakemake.params.spec, where="report.figures")
splits = {split: snakemake.input[split] for split in ("train", "val", "test")}
out = snakemake.output
leakage_figure(snakemake.input.audit, snakemake.input.pairs, splits, out.png, out.pdf, spec, snakemake.params.title)
