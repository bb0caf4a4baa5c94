"""Reliability diagrams: ``results/metrics/{dataset}/{model}/{seed}/{split}.json`` → PNG + PDF.

Draws one panel per distinct calibration report in the metrics JSON
(``calibration.{confidence,sampled_agreement,answer_prob}``, each with ``ece`` and ``bins``:
a list of {lower, upper, count, mean_confidence, accuracy}). Sources whose reports are
identical (a generative model whose confidence column is its answer probability) share one
panel titled with both names, instead of the same panel drawn twice. The bins come from the
scoring stage (``medvqa.evaluate.calibration.reliability_bins``), so the picture and the
ECE in its title are computed from the same numbers and no prediction is re-read here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from medvqa.io import read_json
from medvqa.report.figures import empty_panel, new_figure, save_figure
from medvqa.report.spec import FigureSpec

SOURCE_LABELS = {
    # "confidence" is a classifier's softmax or a generative model's token-probability product or
    # mean (the metrics JSON's protocol.calibration.sources says which).
    "confidence": "model confidence",
    "sampled_agreement": "sampled-answer agreement",
    "answer_prob": "token-probability product",
    "answer_prob_mean": "mean token probability",
}


def bins_as_arrays(bins: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-bin arrays (n_bins,) from the JSON list of bin dicts (or the dict of arrays that
    ``reliability_bins`` returns); null becomes NaN."""
    if isinstance(bins, Mapping):
        return {key: np.asarray(value, dtype=np.float64) for key, value in bins.items()}
    keys = ("lower", "upper", "count", "mean_confidence", "accuracy")
    return {k: np.array([np.nan if b[k] is None else b[k] for b in bins], dtype=np.float64) for k in keys}


def draw_reliability(ax, count_ax, bins: Mapping[str, np.ndarray], ece: float | None, label: str) -> None:
    """Accuracy per confidence bin against the diagonal (top) and bin counts (bottom)."""
    lower, upper = bins["lower"], bins["upper"]
    width, centre = upper - lower, (lower + upper) / 2
    filled = bins["count"] > 0
    ax.bar(centre[filled], bins["accuracy"][filled], width=width[filled], color="#4e79a7",
           edgecolor="white", label="accuracy")
    # The gap bar spans accuracy → mean confidence: red above the bar means overconfident.
    gap = bins["mean_confidence"][filled] - bins["accuracy"][filled]
    ax.bar(centre[filled], gap, bottom=bins["accuracy"][filled], width=width[filled], color="#e15759",
           alpha=0.35, edgecolor="#e15759", hatch="//", label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ece_text = "n/a" if ece is None or np.isnan(ece) else f"{100 * ece:.2f}%"
    ax.set_title(f"{label}\nECE = {ece_text}")
    ax.legend(loc="upper left", fontsize="small")
    count_ax.bar(centre, bins["count"], width=width, color="#76b7b2", edgecolor="white")
    count_ax.set_xlim(0, 1)
    count_ax.set_xlabel("confidence")
    count_ax.set_ylabel("questions")


def distinct_reports(calibration: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """{panel label: report} of the non-empty reports; identical reports (same ECE and bins)
    become one entry labelled "label A = label B"."""
    merged: dict[str, tuple[list[str], Mapping[str, Any]]] = {}
    for source, report in calibration.items():
        if not (isinstance(report, Mapping) and report.get("n")):
            continue
        key = json.dumps({"ece": report.get("ece"), "bins": report.get("bins")}, sort_keys=True, default=str)
        merged.setdefault(key, ([], report))[0].append(SOURCE_LABELS.get(source, source))
    return {" = ".join(labels): report for labels, report in merged.values()}


def plot_reliability(
    metrics_json: str | os.PathLike | Mapping[str, Any],
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    spec: FigureSpec | None = None,
    title: str = "",
) -> Figure:
    """Reliability diagram of every calibration source in one VQA metrics JSON (path or dict)."""
    spec = spec or FigureSpec()
    metrics = read_json(metrics_json) if not isinstance(metrics_json, Mapping) else metrics_json
    reports = distinct_reports(metrics.get("calibration") or {})
    fig = new_figure(4.6 * max(1, len(reports)), 5.6)
    if not reports:
        empty_panel(fig.subplots(), "no calibration data: the predictions have no confidence column")
    else:
        grid = fig.add_gridspec(2, len(reports), height_ratios=(3, 1))
        for i, (source, report) in enumerate(reports.items()):
            ax = fig.add_subplot(grid[0, i])
            count_ax = fig.add_subplot(grid[1, i], sharex=ax)
            draw_reliability(ax, count_ax, bins_as_arrays(report["bins"]), report.get("ece"), source)
    fig.suptitle(title or "reliability diagram")
    save_figure(fig, png, pdf, spec.dpi)
    return fig
