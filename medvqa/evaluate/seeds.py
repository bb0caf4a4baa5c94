"""Aggregation over seeds: one model's metrics JSONs of a split → ``{split}.seeds.json``.

Reads ``results/metrics/{dataset}/{model}/{seed}/{split}.json`` for every seed and writes
``results/metrics/{dataset}/{model}/{split}.seeds.json``: {"task", "seeds", "n_seeds",
"metrics": the metric sections with every numeric leaf replaced by {"mean", "std", "ci_low",
"ci_high", "n"} (``medvqa.evaluate.stats.aggregate_seeds``: std is the sample std, the interval
a Student t interval of the per-seed values, both null for one seed), "seed_interval" (that
rule in words), "protocol" (of the first seed; the seeds must share it), "inputs"}.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from medvqa.evaluate import stats
from medvqa.evaluate.score import jsonable
from medvqa.io import read_json, write_json

log = logging.getLogger(__name__)

# Not metrics: describing the run, not measuring it (spec numbers would get a meaningless mean).
NON_METRIC_KEYS = ("task", "protocol", "inputs", "spec", "provenance")


def aggregate_metrics(
    paths: Sequence[str | os.PathLike], seeds: Sequence[int], out_json: str | os.PathLike
) -> dict[str, Any]:
    """Mean ± std over seeds of every metric in the JSONs at ``paths`` (one per seed, same order)."""
    if len(paths) != len(seeds) or not paths:
        raise ValueError(f"need one metrics file per seed, got {len(paths)} files for seeds {list(seeds)}")
    results = [read_json(p) for p in paths]
    protocols = [r.get("protocol") for r in results]
    if any(p != protocols[0] for p in protocols):
        raise ValueError(f"the seeds' metrics were computed under different protocols: {list(map(os.fspath, paths))}")
    metric_parts = [{k: v for k, v in r.items() if k not in NON_METRIC_KEYS} for r in results]
    level = float((results[0].get("spec") or {}).get("ci_level", 0.95))  # the seeds' own CI level
    out = {
        "task": results[0].get("task"),
        "seeds": [int(s) for s in seeds],
        "n_seeds": len(seeds),
        "metrics": stats.aggregate_seeds(metric_parts, level),
        "seed_interval": f"{stats.SEED_INTERVAL}; level {level}",
        "protocol": protocols[0],
        "inputs": [os.fspath(p) for p in paths],
        "provenance": [r.get("provenance") for r in results],
    }
    out = jsonable(out)
    write_json(out, out_json)
    log.info("aggregated %d seeds into %s", len(seeds), os.fspath(out_json))
    return out
