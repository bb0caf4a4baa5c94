"""Cross-checks of a workflow config that a JSON schema cannot express.

The Snakefile validates config.yaml against rules/config.schema.yaml (structure, types,
choices) and then calls ``check_config``: every stage spec is built once from its config
sub-mapping, and every name an entry refers to must exist. Both run before any job, and a
failure names the offending key (e.g. ``datasets.demo.filters: unknown key(s) 'langauge'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medvqa.data.prepare import FilterSpec, ImportSpec
from medvqa.data.sources import source_spec
from medvqa.data.tokens import TokenizerSpec
from medvqa.evaluate.score import ScoreSpec
from medvqa.report.published import parse_entries
from medvqa.report.spec import FigureSpec
from medvqa.spec import ConfigError

IMPORT_KEYS = ("source", "task", "options", "on_bad_sample")


def import_mapping(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The sub-mapping of a dataset entry that the import stage takes."""
    return {key: dataset[key] for key in IMPORT_KEYS if key in dataset}


def _check_names(where: str, names: Any, known: Mapping, kind: str) -> None:
    for name in names:
        if name not in known:
            raise ConfigError(f"{where}: unknown {kind} {name!r}; configured: {', '.join(known) or 'none'}")


def check_config(config: Mapping[str, Any]) -> None:
    ScoreSpec.from_mapping(config["evaluate"], where="evaluate")
    FigureSpec.from_mapping(config["report"].get("figures"), where="report.figures")
    for i, entry in enumerate(parse_entries(config["report"].get("published", []))):
        _check_names(f"report.published[{i}].dataset", [entry.dataset], config["datasets"], "dataset")
    for name, spec in config["tokenizers"].items():
        TokenizerSpec.from_mapping(spec, where=f"tokenizers.{name}")
    for name, dataset in config["datasets"].items():
        where = f"datasets.{name}"
        spec = ImportSpec.from_mapping(import_mapping(dataset), where=where)
        source_spec(spec.source, spec.options, name, spec.task)
        FilterSpec.from_mapping(dataset.get("filters"), where=f"{where}.filters")
        _check_names(f"{where}.tokenizers", dataset.get("tokenizers", []), config["tokenizers"], "tokenizer")
    for i, experiment in enumerate(config["experiments"]):
        where = f"experiments[{i}]"
        _check_names(f"{where}.datasets", experiment["datasets"], config["datasets"], "dataset")
        _check_names(f"{where}.models", experiment["models"], config["models"], "model")
