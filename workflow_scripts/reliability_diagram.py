"""Rule reliability_diagram → medvqa.report.reliability.plot_reliability."""

from medvqa.io import setup_logging
from medvqa.report.reliability import plot_reliability
from medvqa.report.spec import FigureSpec

setup_logging(snakemake.log[0])
spec = FigureSpec.from_mapping(snakemake.params.spec, where="report.figures")
plot_reliability(snakemake.input[0], snakemake.output.png, snakemake.output.pdf, spec, snakemake.params.title)
