"""Rule training_curves → medvqa.report.curves.plot_training_curves."""

from medvqa.io import setup_logging
from medvqa.report.curves import plot_training_curves
from medvqa.report.spec import FigureSpec

setup_logging(snakemake.log[0])
spec = FigureSpec.from_mapping(snakemake.params.spec, where="report.figures")
histories = {f"seed {seed}": path for seed, path in zip(snakemake.params.seeds, snakemake.input, strict=True)}
plot_training_curves(histories, snakemake.output.png, snakemake.output.pdf, spec, snakemake.params.title)
