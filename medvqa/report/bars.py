"""Model comparison bars: every model's metrics JSONs of one dataset split → PNG + PDF.

VQA datasets: one group of bars per question type (all, closed, open) under the accuracy
protocol chosen in the FigureSpec, one bar per model. Caption datasets: corpus BLEU-4,
ROUGE-L, (if scored) embedding similarity and COCO CIDEr-D (x100, so the axis may pass
100). Bar height = value (mean over seeds); error
bar = 95% bootstrap CI over images (or questions; ``evaluate.bootstrap_unit``), and with several
seeds the Student t interval of the per-seed values; dots = individual seeds when there are
several; the value is written above each bar (so a zero bar is visible). Values are percent.
Baselines (``medvqa.data.baselines``) are bars too, grey and hatched, after the models; a dashed
line marks the best baseline of each group and a dagger each model bar that does not beat it
(the tables' marker rule).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from medvqa.data.baselines import is_baseline
from medvqa.evaluate.protocols import PROTOCOLS
from medvqa.report.collect import Cell, Run, by_model, summarise_seeds
from medvqa.report.figures import empty_panel, new_figure, percent, run_styles, save_figure
from medvqa.report.spec import FigureSpec
from medvqa.report.tables import MARK, row_label

MARK_COLOUR = "#c00000"

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


def _draw_bar(ax, x: float, width: float, cell: Cell, style: dict[str, str], label: str | None, marked: bool) -> None:
    """One bar with its CI, seed dots and value label (red with a dagger when ``marked``).

    The black outline and the value label keep a zero-height bar visible."""
    value = percent(cell.value)
    err, top = None, value
    if not (np.isnan(cell.ci_low) or np.isnan(cell.ci_high)):
        # max(0, ...) because a mean of several seeds can sit outside the mean of their CIs.
        err = [[max(0.0, value - percent(cell.ci_low))], [max(0.0, percent(cell.ci_high) - value)]]
        top = max(value, percent(cell.ci_high))
    ax.bar(x, value, width, color=style["color"], hatch=style["hatch"] or None, edgecolor="black",
           linewidth=0.6, label=label, yerr=err, capsize=2, ecolor="black")
    if cell.n_seeds > 1:
        ax.plot([x] * cell.n_seeds, [percent(v) for v in cell.seed_values], "o", color="black",
                markersize=3, alpha=0.7)
        top = max(top, *(percent(v) for v in cell.seed_values))
    ax.text(x, top + 1.0, f"{value:.1f}" + (f" {MARK}" if marked else ""), ha="center", va="bottom",
            rotation=90, fontsize=6, color=MARK_COLOUR if marked else "black")


def _top(cell_rows) -> float:
    """Largest bar end (value or CI high, percent) of all cells; 0 when there are none."""
    ends = [percent(v) for row in cell_rows for c in row if c is not None
            for v in (c.value, c.ci_high) if not np.isnan(v)]
    return max(ends, default=0.0)


def _group_label(label: str, cells: list[Cell | None]) -> str:
    n = next((c.n for c in cells if c is not None and c.n is not None), None)
    return label if n is None else f"{label}\n(n={n})"


def best_baseline(cells: Sequence[Cell | None], names: Sequence[str]) -> float | None:
    """The highest baseline value (percent) among ``cells`` (aligned with ``names``), or None."""
    values = [percent(c.value) for c, n in zip(cells, names)
              if c is not None and is_baseline(n) and not np.isnan(c.value)]
    return max(values) if values else None


def _draw_group(ax, position: int, names: Sequence[str], cells: Sequence[Cell | None], styles, labelled: set) -> bool:
    """The bars of one metric group; a dashed line at the best baseline, a dagger in the value
    label of each model bar that does not beat it. Returns whether any model was marked."""
    width, marked = 0.8 / len(names), False
    best = best_baseline(cells, names)
    for i, (name, cell) in enumerate(zip(names, cells)):
        if cell is None:
            continue
        below = best is not None and not is_baseline(name) and percent(cell.value) <= best
        _draw_bar(ax, position - 0.4 + width * (i + 0.5), width, cell, styles[name],
                  None if name in labelled else row_label(name), below)
        labelled.add(name)
        marked |= below
    if best is not None:
        ax.hlines(best, position - 0.45, position + 0.45, colors="black", linestyles="dashed", linewidth=1)
    return marked


def _legend(ax, n_entries: int, any_baseline: bool, marked: bool) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if any_baseline:
        handles.append(Line2D([], [], color="black", linestyle="dashed", linewidth=1))
        labels.append("best baseline")
    if marked:
        handles.append(Line2D([], [], color=MARK_COLOUR, marker=r"$\dagger$", markersize=8, linestyle="none"))
        labels.append("value not above best baseline")
    ax.legend(handles, labels, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0),
              ncol=1 + n_entries // 16)


def plot_model_comparison(
    runs: Sequence[Run],
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    spec: FigureSpec | None = None,
    title: str = "",
) -> Figure:
    """Grouped bars of every model and baseline in ``runs`` (one dataset split, any number of seeds each).

    Each run has its own colour (and hatch past 20 models; baselines grey and hatched); in each
    group a dashed line marks the best baseline and a dagger each model bar not above it.
    """
    spec = spec or FigureSpec()
    models = by_model(runs)
    names = sorted(models, key=is_baseline)  # models first, then the baselines
    task = runs[0].metrics.get("task", "vqa") if runs else "vqa"
    groups = metric_groups(task, spec.metric)
    cells = {m: [summarise_seeds(models[m], path) for _, path in groups] for m in names}
    groups_drawn = [i for i in range(len(groups)) if any(cells[m][i] for m in names)]
    fig = new_figure(max(6.0, 2.5 + 0.3 * len(names) * max(1, len(groups_drawn))), 4.5)
    ax = fig.subplots()
    if not groups_drawn:
        empty_panel(ax, "no metrics to compare")
    else:
        styles, labelled, marked = run_styles(names), set(), False
        for gi, g in enumerate(groups_drawn):
            marked |= _draw_group(ax, gi, names, [cells[m][g] for m in names], styles, labelled)
        ax.set_xticks(range(len(groups_drawn)))
        ax.set_xticklabels([_group_label(groups[g][0], [cells[m][g] for m in names]) for g in groups_drawn])
        ylabel = "score (%)" if task == "caption" else f"{PROTOCOLS[spec.metric].label} (%)"
        ax.set_ylabel(ylabel)
        top = max(100.0, _top(cells.values()))  # CIDEr-D (x100) can pass 100
        ax.set_ylim(0, 1.18 * top)  # room for the value labels above the bars
        ax.set_yticks(range(0, int(top) + 1, 20))
        ax.grid(axis="y", alpha=0.3)
        _legend(ax, len(names), any(is_baseline(n) for n in names), marked)
    fig.suptitle(title or "model comparison")
    save_figure(fig, png, pdf, spec.dpi)
    return fig
