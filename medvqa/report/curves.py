"""Training curves: ``results/models/{dataset}/{model}/{seed}/history.csv`` → loss and accuracy plots.

history.csv has one row per finished epoch: epoch, train_loss, val_loss, train_accuracy,
val_accuracy, lr, seconds (``train_acc`` / ``val_acc`` are accepted as the accuracy
columns too). The figure has one panel per quantity that some seed recorded: families
without an accuracy (a generative model trained on loss only) get the loss panel alone, not
an empty accuracy half. One figure per model overlays all of its seeds (each its own colour
and marker); each seed's best epoch (the one whose checkpoint was kept) is marked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from medvqa.report.figures import colour, empty_panel, marker, new_figure, save_figure
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
                ax.plot(history["epoch"], values, style, color=colour(i), marker=marker(i), markersize=4,
                        label=f"{label} {split}")
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
    _finish_axes(ax, "epoch", kind)


def _finish_axes(ax, xlabel: str, ylabel: str) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def plot_training_curves(
    histories: Mapping[str, str | os.PathLike],
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    spec: FigureSpec | None = None,
    title: str = "",
) -> Figure:
    """Loss (left) and accuracy (right) per epoch of each run in ``histories`` {label: history.csv};
    a quantity no run recorded gets no panel.

    Train curves are solid, validation dashed; a star and a dotted line mark each run's best epoch.
    """
    spec = spec or FigureSpec()
    frames = {label: read_history(path) for label, path in histories.items()}
    if any("reward" in frame for frame in frames.values()):
        return plot_grpo_curves(frames, png, pdf, spec, title)
    kinds = panel_kinds(frames)
    fig = new_figure(5.5 * max(1, len(kinds)), 4.2)
    if not kinds:
        empty_panel(fig.subplots(), "no loss or accuracy in history.csv")
    else:
        for ax, kind in zip(fig.subplots(1, len(kinds), squeeze=False)[0], kinds):
            _plot_panel(ax, frames, kind)
            ax.set_title(kind)
    fig.suptitle(title or "training curves")
    save_figure(fig, png, pdf, spec.dpi)
    return fig


def panel_kinds(frames: Mapping[str, pd.DataFrame]) -> list[str]:
    """'loss' and/or 'accuracy': the quantities that at least one history has a value of."""
    return [kind for kind in ("loss", "accuracy")
            if any(frame[f"{split}_{kind}"].notna().any() for frame in frames.values() for split in ("train", "val"))]


GRPO_PANELS = (("reward", "mean reward"), ("kl", "KL to reference"), ("completion_length", "completion tokens"))


def _plot_grpo_panel(ax, frames: Mapping[str, pd.DataFrame], column: str, label: str) -> None:
    for i, (run, frame) in enumerate(frames.items()):
        if column not in frame:
            continue
        ax.plot(frame["step"], frame[column].astype(float), "-", color=colour(i), label=f"{run} {label}")
        if column != "reward":
            continue
        parts = [c for c in frame.columns if c.startswith("reward_") and c != "reward_std" and not c.endswith("_std")]
        for k, part in enumerate(parts):
            ax.plot(frame["step"], frame[part].astype(float), ":", color=colour(i), marker=marker(k + 1),
                    markersize=3, label=f"{run} {part.removeprefix('reward_')}")
    _finish_axes(ax, "step", label)


def plot_grpo_curves(
    frames: Mapping[str, pd.DataFrame], png: str | os.PathLike, pdf: str | os.PathLike, spec: FigureSpec,
    title: str = "",
) -> Figure:
    """Per-step GRPO curves of each run: reward (total solid, each reward function dotted), KL, length."""
    fig = new_figure(5.5 * len(GRPO_PANELS), 4.2)
    for ax, (column, label) in zip(fig.subplots(1, len(GRPO_PANELS), squeeze=False)[0], GRPO_PANELS):
        _plot_grpo_panel(ax, frames, column, label)
        ax.set_title(label)
    fig.suptitle(title or "GRPO training curves")
    save_figure(fig, png, pdf, spec.dpi)
    return fig
