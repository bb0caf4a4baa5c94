"""Training curves: ``results/models/{dataset}/{model}/{seed}/history.csv`` → loss and accuracy plots.

history.csv has one row per finished epoch: epoch, train_loss, val_loss, train_accuracy,
val_accuracy, lr, seconds (``train_acc`` / ``val_acc`` are accepted as the accuracy
columns too). Families without an accuracy (a generative model trained on loss only) get
the loss panel and an empty accuracy panel that says so. One figure per model overlays all
of its seeds; each seed's best epoch (the one whose checkpoint was kept) is marked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from medvqa.report.figures import colour, empty_panel, new_figure, save_figure
from medvqa.report.spec import FigureSpec

COLUMN_ALIASES = {"train_acc": "train_accuracy", "val_acc": "val_accuracy"}
CURVE_COLUMNS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """history.csv with canonical column names, sorted by epoch; absent curve columns are NaN."""
    history = pd.read_csv(path).rename(columns=COLUMN_ALIASES)
    if "epoch" not in history:
        raise ValueError(f"history {os.fspath(path)!r} has no 'epoch' column; it has {list(history.columns)}")
    for column in CURVE_COLUMNS:
        if column not in history:
            history[column] = np.nan
    return history.sort_values("epoch").reset_index(drop=True)


def best_epoch(history: pd.DataFrame) -> int | None:
    """The epoch whose checkpoint training kept: first maximum of val_accuracy, else first
    minimum of val_loss (the training loop keeps strict improvements only); None if neither."""
    for column, pick in (("val_accuracy", "idxmax"), ("val_loss", "idxmin")):
        values = history[column].astype(float)
        if values.notna().any():
            return int(history.loc[getattr(values, pick)(), "epoch"])
    return None


def _plot_panel(ax, histories: Mapping[str, pd.DataFrame], kind: str) -> None:
    drawn = False
    for i, (label, history) in enumerate(histories.items()):
        best = best_epoch(history)
        for split, style in (("train", "-"), ("val", "--")):
            values = history[f"{split}_{kind}"].astype(float)
            if values.notna().any():
                ax.plot(history["epoch"], values, style, color=colour(i), marker=".", label=f"{label} {split}")
                drawn = True
        val = history[f"val_{kind}"].astype(float)
        if best is not None and val.notna().any():
            at = history.index[history["epoch"] == best][0]
            ax.axvline(best, color=colour(i), linestyle=":", linewidth=1)
            ax.plot([best], [val[at]], marker="*", markersize=12, color=colour(i), linestyle="none",
                    label=f"{label} best epoch {best}")
    if not drawn:
        empty_panel(ax, f"no {kind} in history.csv")
        return
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(kind)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def plot_training_curves(
    histories: Mapping[str, str | os.PathLike],
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    spec: FigureSpec | None = None,
    title: str = "",
) -> None:
    """Loss (left) and accuracy (right) per epoch of each run in ``histories`` {label: history.csv}.

    Train curves are solid, validation dashed; a star and a dotted line mark each run's best epoch.
    """
    spec = spec or FigureSpec()
    frames = {label: read_history(path) for label, path in histories.items()}
    fig = new_figure(11, 4.2)
    axes = fig.subplots(1, 2)
    _plot_panel(axes[0], frames, "loss")
    _plot_panel(axes[1], frames, "accuracy")
    axes[0].set_title("loss")
    axes[1].set_title("accuracy")
    fig.suptitle(title or "training curves")
    save_figure(fig, png, pdf, spec.dpi)
