"""Pairwise model comparison: exact McNemar tests on the same questions of one dataset split.

Reads the data split (``results/data/{dataset}/{split}.parquet``) and every model's
predictions parquet of that split, and writes
``results/metrics/{dataset}/mcnemar.{split}.json`` and ``.csv``: one row per pair of models
and seed they share (model A seed s against model B seed s, both scored by exact match on
the same question ids), with McNemar's discordant counts b (A right, B wrong) and c (A
wrong, B right), the exact two-sided p-value and its Holm-adjusted value over all rows of
the file (several pairs are tested at once, so unadjusted p-values overstate significance).
``medvqa.report.mcnemar.mcnemar_table`` renders that JSON as
``results/tables/{dataset}/mcnemar.{split}.{md,tex,html}`` (the HTML is a report item).
Baselines are not paired here: the tests compare models only, so adding baselines does not
change the Holm family of the model pairs.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from medvqa.evaluate import stats
from medvqa.evaluate.score import correctness
from medvqa.io import write_csv, write_json

log = logging.getLogger(__name__)

CSV_COLUMNS = ("model_a", "model_b", "seed", "n", "accuracy_a", "accuracy_b", "b", "c", "p_value", "p_holm")
PAIRING = "model A seed s against model B seed s; exact-match correctness on the same question ids"
CORRECTION = "Holm step-down over all pairs in this file"


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: sorted ascending, p_(i) * (m - i + 1),
    made monotone with a running maximum and capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled) if m else scaled
    return adjusted.tolist()


def compare_correctness(correct: Mapping[tuple[str, int], pd.Series]) -> list[dict[str, Any]]:
    """McNemar rows for every pair of models and each seed both have.

    ``correct`` maps (model, seed) to a boolean Series indexed by question_id; models are
    paired in insertion order. The two Series must cover the same question ids.
    """
    models = list(dict.fromkeys(model for model, _ in correct))
    rows = []
    for model_a, model_b in itertools.combinations(models, 2):
        seeds_a = {seed for m, seed in correct if m == model_a}
        for seed in sorted(seeds_a & {seed for m, seed in correct if m == model_b}):
            right_a, right_b = correct[(model_a, seed)], correct[(model_b, seed)]
            if set(right_a.index) != set(right_b.index):
                raise ValueError(f"{model_a} and {model_b} (seed {seed}) were scored on different question ids")
            right_b = right_b.loc[right_a.index]
            test = stats.mcnemar(right_a.to_numpy(), right_b.to_numpy())
            rows.append({
                "model_a": model_a, "model_b": model_b, "seed": seed, "n": test["n"],
                "accuracy_a": float(right_a.mean()) if len(right_a) else None,
                "accuracy_b": float(right_b.mean()) if len(right_b) else None,
                "b": test["b"], "c": test["c"], "p_value": test["p_value"],
            })
    for row, adjusted in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"] = adjusted
    return rows


def compare_models(
    data_path: str | os.PathLike,
    runs: Sequence[Sequence[Any]],
    predictions: Sequence[str | os.PathLike],
    out_json: str | os.PathLike,
    out_csv: str | os.PathLike,
) -> dict[str, Any]:
    """Pairwise McNemar of the runs ([model, seed] pairs, aligned with ``predictions`` paths)."""
    if len(runs) != len(predictions):
        raise ValueError(f"{len(runs)} runs but {len(predictions)} predictions files")
    correct = {(str(m), int(s)): correctness(data_path, p) for (m, s), p in zip(runs, predictions)}
    rows = compare_correctness(correct)
    result = {
        "test": "exact McNemar (binomial, two-sided)",
        "pairing": PAIRING,
        "correction": CORRECTION,
        "inputs": {"data": os.fspath(data_path), "predictions": [os.fspath(p) for p in predictions]},
        "pairs": rows,
    }
    write_json(result, out_json)
    write_csv(pd.DataFrame(rows, columns=list(CSV_COLUMNS)), out_csv)
    log.info("wrote %d model pairs to %s", len(rows), os.fspath(out_json))
    return result
