"""Rule caption_gallery → medvqa.report.gallery.plot_caption_gallery."""

from medvqa.io import setup_logging
from medvqa.report.gallery import plot_caption_gallery
from medvqa.report.spec import FigureSpec

setup_logging(snakemake.log[0])
spec = FigureSpec.from_mapping(snakemake.params.spec, where="report.figures")
out = snakemake.output
plot_caption_gallery(snakemake.input.data, snakemake.input.captions, out.png, out.pdf, spec, snakemake.params.title)
