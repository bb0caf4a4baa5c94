"""Reading metrics JSONs of several runs and summarising one metric over seeds.

Shared by the comparison bars and the tables. A run is one (model, seed) on one dataset
split, with its parsed ``results/metrics/{dataset}/{model}/{seed}/{split}.json``. A metric
is addressed by a key path into that JSON, e.g. ("accuracy", "exact_match", "closed"); the
calibration source of a path written with "*" is chosen per run (``confidence_source``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any


from medvqa.evaluate import stats
from medvqa.io import read_json

# Order of preference when a table shows one calibration source per model: a classifier's
# softmax, else a generative model's own answer probability, else sampled agreement.
SOURCE_PREFERENCE = ("confidence", "answer_prob", "sampled_agreement")


@dataclasses.dataclass(frozen=True)
class Run:
    model: str
    seed: int
    metrics: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Cell:
    """One metric of one model: mean over seeds, sample std (NaN for one seed), an interval (one
    seed: its own bootstrap CI; several: the Student t interval of the per-seed values,
    ``stats.SEED_INTERVAL``), and the per-seed values."""

    value: float
    ci_low: float
    ci_high: float
    std: float
    n_seeds: int
    n: int | None
    seed_values: tuple[float, ...]


def load_runs(runs: Sequence[Sequence[Any]], paths: Sequence[str | os.PathLike]) -> list[Run]:
    """Runs from [model, seed] pairs and their metrics JSON paths, in the same order."""
    if len(runs) != len(paths):
        raise ValueError(f"{len(runs)} runs but {len(paths)} metrics files")
    return [Run(str(model), int(seed), read_json(path)) for (model, seed), path in zip(runs, paths)]


def by_model(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs grouped by model, models in order of first appearance, seeds sorted."""
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        grouped.setdefault(run.model, []).append(run)
    return {model: sorted(group, key=lambda r: r.seed) for model, group in grouped.items()}


def confidence_source(metrics: Mapping[str, Any]) -> str | None:
    """The preferred calibration source that has a report in ``metrics``, or None."""
    calibration = metrics.get("calibration") or {}
    return next((s for s in SOURCE_PREFERENCE if calibration.get(s)), None)


def leaf(metrics: Mapping[str, Any], path: Sequence[str]) -> dict[str, Any] | None:
    """The {value, ci_low, ci_high, n} block at ``path`` ("*" = the run's confidence source);
    a bare number takes its CI from its section's "intervals" (calibration, sacreBLEU), else
    none; None when the path or its value is absent."""
    node: Any = metrics
    parent: Any = None
    for key in path:
        if key == "*":
            key = confidence_source(metrics)
        if not isinstance(node, Mapping) or key not in node:
            return None
        parent, node = node, node[key]
    if isinstance(node, Mapping):
        return node if node.get("value") is not None else None
    if node is None or isinstance(node, bool):
        return None
    interval = (parent.get("intervals") or {}).get(path[-1]) or {}
    n = parent.get("n") if isinstance(parent.get("n"), int) else None
    return {"value": float(node), "ci_low": interval.get("ci_low"), "ci_high": interval.get("ci_high"), "n": n}


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def summarise_seeds(runs: Sequence[Run], path: Sequence[str]) -> Cell | None:
    """One metric of one model over its seeds; None when no seed has it.

    A single seed keeps its exact JSON numbers. Several seeds give the mean, sample std and
    Student t interval of the per-seed values (``stats.mean_std`` over the seeds that have
    the value, at the runs' ci_level), not an average of the seeds' bootstrap bounds.
    """
    blocks = [b for b in (leaf(run.metrics, path) for run in runs) if b is not None]
    if not blocks:
        return None
    values = [float(b["value"]) for b in blocks]
    level = float((runs[0].metrics.get("spec") or {}).get("ci_level", 0.95))
    spread = stats.mean_std(values, level)
    single = len(blocks) == 1
    return Cell(
        value=values[0] if single else spread["mean"],
        ci_low=_nan(blocks[0]["ci_low"]) if single else spread["ci_low"],
        ci_high=_nan(blocks[0]["ci_high"]) if single else spread["ci_high"],
        std=spread["std"],
        n_seeds=len(blocks),
        n=blocks[0].get("n"),
        seed_values=tuple(values),
    )
