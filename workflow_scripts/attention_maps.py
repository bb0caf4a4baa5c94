"""Rule attention_maps → medvqa.report.attention.plot_attention_maps."""

from medvqa.io import setup_logging
from medvqa.report.attention import AttentionInputs, plot_attention_maps
from medvqa.report.spec import FigureSpec

setup_logging(snakemake.log[0])
spec = FigureSpec.from_mapping(snakemake.params.spec, where="report.figures")
names = ("attention", "attention_ids", "data", "predictions", "images", "image_ids")
inputs = AttentionInputs(**{name: snakemake.input[name] for name in names}, image_size=snakemake.params.image_size)
plot_attention_maps(inputs, snakemake.output.png, snakemake.output.pdf, spec, snakemake.params.title)
