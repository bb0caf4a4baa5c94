"""Rule comparison_bars → medvqa.report.bars.plot_model_comparison."""

from medvqa.io import setup_logging
from medvqa.report.bars import plot_model_comparison
from medvqa.report.collect import load_runs
from medvqa.report.spec import FigureSpec

setup_logging(snakemake.log[0])
spec = FigureSpec.from_mapping(snakemake.params.spec, where="report.figures")
runs = load_runs(snakemake.params.runs, list(snakemake.input))
plot_model_comparison(runs, snakemake.output.png, snakemake.output.pdf, spec, snakemake.params.title)
