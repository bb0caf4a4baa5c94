"""Shared pieces of the figure stage: PNG + PDF saving, colours and fixed samples.

Figures are drawn on ``matplotlib.figure.Figure`` objects directly (the Agg canvas, no
pyplot): pyplot keeps a global registry of open figures, which the house style forbids
and which leaks memory when many figures are drawn in one process. Every figure is written
twice by one call, as PNG (for the Snakemake report) and PDF (vector, for papers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from medvqa.io import atomic_path

# Tableau colours, fixed so that one model keeps its colour in every figure of a dataset.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")


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
