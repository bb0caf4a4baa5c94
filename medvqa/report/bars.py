"""Model comparison bars: every model's metrics JSONs of one dataset split → PNG + PDF.

VQA datasets: one group of bars per question type (all, closed, open) under the accuracy
protocol chosen in the FigureSpec, one bar per model. Caption datasets: corpus BLEU-4,
ROUGE-L, (if scored) embedding similarity and COCO CIDEr-D (x100, so the axis may pass
100). Bar height = value (mean over seeds); error bar = 95% bootstrap CI over questions or
images (with several seeds: the mean of the seeds' CI bounds); dots = individual seeds when
there are several. Values are percent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from medvqa.report.collect import Cell, Run, by_model, summarise_seeds
from medvqa.report.figures import colour, empty_panel, new_figure, percent, save_figure
from medvqa.report.spec import FigureSpec

PROTOCOL_LABELS = {"exact_match": "exact match", "llava_med": "LLaVA-Med score", "token_f1": "token F1"}
CAPTION_GROUPS = (
    ("BLEU-4", ("bleu", "corpus", "bleu_4")),
    ("ROUGE-L", ("rouge_l",)),
    ("embedding sim.", ("embedding_similarity",)),
    ("CIDEr-D", ("coco", "cider_d")),  # x100 like the rest; may exceed 100
)


def metric_groups(task: str, metric: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(label, JSON path) of each bar group for a task."""
    if task == "caption":
        return CAPTION_GROUPS
    return tuple((kind, ("accuracy", metric, kind)) for kind in ("overall", "closed", "open"))


def _draw_bar(ax, x: float, width: float, cell: Cell, index: int, label: str | None) -> None:
    value = percent(cell.value)
    err = None
    if not (np.isnan(cell.ci_low) or np.isnan(cell.ci_high)):
        # max(0, ...) because a mean of several seeds can sit outside the mean of their CIs.
        err = [[max(0.0, value - percent(cell.ci_low))], [max(0.0, percent(cell.ci_high) - value)]]
    ax.bar(x, value, width, color=colour(index), label=label, yerr=err, capsize=3, ecolor="black")
    if cell.n_seeds > 1:
        ax.plot([x] * cell.n_seeds, [percent(v) for v in cell.seed_values], "o", color="black",
                markersize=3, alpha=0.7)


def _top(cell_rows) -> float:
    """Largest bar end (value or CI high, percent) of all cells; 0 when there are none."""
    ends = [percent(v) for row in cell_rows for c in row if c is not None
            for v in (c.value, c.ci_high) if not np.isnan(v)]
    return max(ends, default=0.0)


def _group_label(label: str, cells: list[Cell | None]) -> str:
    n = next((c.n for c in cells if c is not None and c.n is not None), None)
    return label if n is None else f"{label}\n(n={n})"


def plot_model_comparison(
    runs: Sequence[Run],
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    spec: FigureSpec | None = None,
    title: str = "",
) -> None:
    """Grouped bars of every model in ``runs`` (one dataset split, any number of seeds each)."""
    spec = spec or FigureSpec()
    models = by_model(runs)
    task = runs[0].metrics.get("task", "vqa") if runs else "vqa"
    groups = metric_groups(task, spec.metric)
    cells = {m: [summarise_seeds(rs, path) for _, path in groups] for m, rs in models.items()}
    groups_drawn = [i for i in range(len(groups)) if any(cells[m][i] for m in models)]
    fig = new_figure(max(6.0, 1.2 + 0.5 * len(models) * max(1, len(groups_drawn))), 4.5)
    ax = fig.subplots()
    if not groups_drawn:
        empty_panel(ax, "no metrics to compare")
    else:
        width, labelled = 0.8 / len(models), set()
        for gi, g in enumerate(groups_drawn):
            for mi, model in enumerate(models):
                cell = cells[model][g]
                if cell is not None:
                    x = gi - 0.4 + width * (mi + 0.5)
                    _draw_bar(ax, x, width, cell, mi, None if model in labelled else model)
                    labelled.add(model)
        ax.set_xticks(range(len(groups_drawn)))
        ax.set_xticklabels([_group_label(groups[g][0], [cells[m][g] for m in models]) for g in groups_drawn])
        ylabel = "score (%)" if task == "caption" else f"{PROTOCOL_LABELS[spec.metric]} (%)"
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, max(105.0, 1.05 * _top(cells.values())))  # CIDEr-D can pass 100
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title or "model comparison")
    save_figure(fig, png, pdf, spec.dpi)
