"""The ``report:`` section of the config and the figure stage's parameters (``report.figures``).

Kept apart from the plotting modules so that checking a config does not import matplotlib.
"""

from __future__ import annotations

import dataclasses

from medvqa.data.schema import SPLITS
from medvqa.evaluate.protocols import PROTOCOLS
from medvqa.spec import Spec, check_choice, check_range

ACCURACY_PROTOCOLS = tuple(PROTOCOLS)  # the registry of medvqa.evaluate.protocols


@dataclasses.dataclass(frozen=True)
class FigureSpec(Spec):
    """Parameters of the figure stage (config key ``report.figures``)."""

    metric: str = "exact_match"  # accuracy protocol of the model comparison bars
    gallery_size: int = 6  # images in the caption gallery
    attention_size: int = 8  # questions in the attention-map figure
    sample_seed: int = 0  # seed of the fixed gallery / attention sample
    dpi: int = 150  # PNG resolution (the PDF is vector)

    def validate(self, where: str) -> None:
        check_choice(where, "metric", self.metric, ACCURACY_PROTOCOLS)
        check_range(where, "gallery_size", self.gallery_size, 1, 24)
        check_range(where, "attention_size", self.attention_size, 1, 24)
        check_range(where, "dpi", self.dpi, 50, 600)


@dataclasses.dataclass(frozen=True)
class ReportSpec(Spec):
    """The ``report:`` section: which splits are reported, figure settings, published numbers."""

    splits: tuple[str, ...] = ("test",)  # splits scored, compared, plotted and tabulated
    figures: dict = dataclasses.field(default_factory=dict)  # FigureSpec
    published: list = dataclasses.field(default_factory=list)  # medvqa.report.published entries

    def validate(self, where: str) -> None:
        for split in self.splits:
            check_choice(where, "splits", split, SPLITS)
        FigureSpec.from_mapping(self.figures, f"{where}.figures")
