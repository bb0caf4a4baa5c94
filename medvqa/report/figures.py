"""Shared pieces of the figure stage: PNG + PDF saving, colours, hatches and markers, fixed samples.

Figures are drawn on ``matplotlib.figure.Figure`` objects directly (the Agg canvas, no
pyplot): pyplot keeps a global registry of open figures, which the house style forbids
and which leaks memory when many figures are drawn in one process. Every figure is written
twice by one call, as PNG (for the Snakemake report) and PDF (vector, for papers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medvqa.data.baselines import is_baseline
from medvqa.io import atomic_path

# 20 colours, any two more than 55 apart in RGB (0-255 Euclidean): Tableau 10 without its grey, then the most
# distinct of Trubetskoy's 20. Greys are kept for the baselines, so a model is never grey.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#000075", "#808000", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#800000", "#aaffc3", "#ffd8b1",
    "#dcbeff", "#006d2c",
)
# Past 20 runs the colours repeat with a new hatch (bars) and marker (curves), so the
# (colour, hatch) and (colour, marker) pairs stay unique however many runs a figure has.
HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "++", "--")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
# Baselines: grey, hatched, in the order of medvqa.data.baselines.BASELINES.
BASELINE_STYLES = ({"color": "#4d4d4d", "hatch": "//"}, {"color": "#bdbdbd", "hatch": "\\\\"})


def new_figure(width: float, height: float) -> Figure:
    """A figure of (width, height) inches on its own Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, png: str | os.PathLike, pdf: str | os.PathLike, dpi: int = 150) -> None:
    """Write ``fig`` as PNG (``dpi``) and PDF, each atomically."""
    for path, fmt in ((png, "png"), (pdf, "pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def hatch(index: int) -> str:
    return HATCHES[(index // len(PALETTE)) % len(HATCHES)]


def marker(index: int) -> str:
    return MARKERS[(index // len(PALETTE)) % len(MARKERS)]


def run_styles(names: Sequence[str]) -> dict[str, dict[str, str]]:
    """{name: {"color", "hatch"}}: models by their position among the models, baselines grey."""
    styles, models = {}, [n for n in names if not is_baseline(n)]
    for i, name in enumerate(models):
        styles[name] = {"color": colour(i), "hatch": hatch(i)}
    for i, name in enumerate(n for n in names if is_baseline(n)):
        styles[name] = BASELINE_STYLES[i % len(BASELINE_STYLES)]
    return styles


def fixed_sample(ids: Iterable[str], k: int, seed: int) -> list[str]:
    """``k`` distinct ids (all if fewer), the same for the same id set and seed, sorted.

    The ids are sorted before drawing, so the sample does not depend on file row order.
    """
    pool = sorted(set(map(str, ids)))
    if len(pool) <= k:
        return pool
    picked = np.random.default_rng(seed).choice(len(pool), size=k, replace=False)
    return [pool[i] for i in sorted(picked)]


def empty_panel(ax, message: str) -> None:
    """An axis that says why there is nothing to draw (a blank figure would look like a bug)."""
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def percent(value: float | None) -> float:
    """A fraction as percent; None (JSON null) as NaN."""
    return np.nan if value is None else 100.0 * float(value)
