"""The checks of a workflow config: every entry's specs and the names entries refer to.

The Snakefile checks the config against rules/config.schema.yaml (``medvqa.config_files.check_structure``:
the sections, entries and the types of the keys the rules read; it fills in the defaults the schema
declares), expands its experiment grids (``medvqa.config_files.expand_experiments``) and then calls
``check_config``: every entry's specs are built once from its config
sub-mapping (types, ranges and choices live there, once), and every name an entry refers to must
exist. Both run before any job, and a failure is one line naming the offending key (e.g.
``datasets.demo.filters: unknown key(s) 'langauge'``). The ``pretrained:`` entries (tiny
stand-ins) are checked by the rules that build them (rules/pretrained.smk calls
``medvqa.demo.tiny_checkpoints.check_pretrained``), since product modules do not import the demo
package. Before all, ``medvqa.config_files.check_config_files`` re-reads each config file with a strict YAML loader,
since Snakemake's accepts repeated keys. ``python -m medvqa.workflow_config FILE...`` runs the
strict read, ``check_structure`` and ``check_config`` (not ``check_pretrained``) outside Snakemake
(which reports a YAML syntax error in a file given with ``--configfile`` without its line, before
the Snakefile runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medvqa.config_files import SCHEMA, load_workflow_config
from medvqa.data.config import IMPORT_KEYS, DatasetConfig
from medvqa.data.prepare import FilterSpec
from medvqa.data.tokens import TokenizerSpec
from medvqa.evaluate.spec import ScoreSpec
from medvqa.families import ModelConfig
from medvqa.models.specs import PredictSpec
from medvqa.paths import source_dataset
from medvqa.report.published import parse_entries
from medvqa.report.spec import ReportSpec
from medvqa.spec import ConfigError

def import_mapping(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The sub-mapping of a dataset entry that the import stage takes."""
    return {key: dataset[key] for key in IMPORT_KEYS if key in dataset}


def _check_names(where: str, names: Any, known: Mapping, kind: str) -> None:
    for name in names:
        if name not in known:
            raise ConfigError(f"{where}: unknown {kind} {name!r}; configured: {', '.join(known) or 'none'}")


def check_config(config: Mapping[str, Any]) -> None:
    """Every entry's specs (types, ranges, choices: ``medvqa.spec``), and every name an entry refers to."""
    score = ScoreSpec.from_mapping(config.get("evaluate"), where="evaluate")
    for dataset, path in score.llava_med_candidates.items():
        where = f"evaluate.llava_med_candidates.{dataset}"
        _check_names(where, [dataset], config["datasets"], "dataset")
        if config["datasets"][dataset].get("task", "vqa") != "vqa":
            raise ConfigError(f"{where}: {dataset!r} is not a VQA dataset")
        if not Path(path).expanduser().is_file():
            raise ConfigError(f"{where}: {path!r} is not a file (a LLaVA-Med candidate JSON)")
    PredictSpec.from_mapping(config.get("predict"), where="predict")
    ReportSpec.from_mapping(config.get("report"), where="report")
    for i, entry in enumerate(parse_entries(config.get("report", {}).get("published", []))):
        _check_names(f"report.published[{i}].dataset", [entry.dataset], config["datasets"], "dataset")
    tokenizers = config.get("tokenizers", {})
    for name, spec in tokenizers.items():
        tokenizer = TokenizerSpec.from_mapping(spec, where=f"tokenizers.{name}")
        if tokenizer.path is not None:
            _check_path(config, f"tokenizers.{name}.path", tokenizer.path)
    for name, dataset in config["datasets"].items():
        DatasetConfig.from_mapping(dataset, f"datasets.{name}")
        _check_names(f"datasets.{name}.tokenizers", dataset.get("tokenizers", []), tokenizers, "tokenizer")
    for name, entry in config.get("pretrained", {}).items():
        _check_names(f"pretrained.{name}.dataset", [entry["dataset"]], config["datasets"], "dataset")
        _check_names(f"pretrained.{name}.text_from", entry.get("text_from") or [], config["datasets"], "dataset")
    for name, model in config["models"].items():
        if name.startswith("baseline-"):
            raise ConfigError(f"models.{name}: names starting with 'baseline-' are reserved for the baselines")
        _check_model(config, name, model)
    for i, experiment in enumerate(config["experiments"]):
        where = f"experiments[{i}]"
        _check_names(f"{where}.datasets", experiment["datasets"], config["datasets"], "dataset")
        _check_names(f"{where}.models", experiment["models"], config["models"], "model")
        for dataset in experiment["datasets"]:
            for model in experiment["models"]:
                _check_pairing(where, config, dataset, model)


def _check_pairing(where: str, config: Mapping[str, Any], dataset: str, model: str) -> None:
    """The model can learn from the dataset's task, and captions a caption dataset."""
    task = config["datasets"][dataset].get("task", "vqa")
    entry = ModelConfig.from_mapping(config["models"][model], f"models.{model}")
    if task not in entry.tasks():
        raise ConfigError(f"{where}: model {model!r} ({entry.family}) does not work on {task} dataset {dataset!r}; "
                          f"it takes {' and '.join(entry.tasks())} data (if {dataset!r} holds "
                          f"{' or '.join(entry.tasks())} data, set datasets.{dataset}.task)")
    if task == "caption" and entry.caption is None:
        raise ConfigError(f"{where}: model {model!r} has no caption: settings, "
                          f"so it cannot caption dataset {dataset!r}")


def _check_model(config: Mapping[str, Any], name: str, model: Mapping[str, Any]) -> None:
    """The entry's specs, its tokenizer (of the kind its family reads) and its built checkpoints."""
    where = f"models.{name}"
    entry = ModelConfig.from_mapping(model, where)
    if entry.tokenizer is not None:
        _check_names(f"{where}.tokenizer", [entry.tokenizer], config.get("tokenizers", {}), "tokenizer")
        kind = config["tokenizers"][entry.tokenizer]["kind"]
        if kind != entry.token_kind:
            raise ConfigError(f"{where}.tokenizer: {entry.family} reads {entry.token_kind!r} tokens, "
                              f"tokenizer {entry.tokenizer!r} is of kind {kind!r}")
    for key, value in entry.model.items():
        if isinstance(value, str):
            _check_path(config, f"{where}.model.{key}", value)
    _check_init_from(config, name, entry)


def _check_init_from(config: Mapping[str, Any], name: str, entry: ModelConfig) -> None:
    """``train.init_from`` names another trained entry whose adapter fits this one (the same model:)."""
    source = (entry.train or {}).get("init_from")
    if source is None:
        return
    where = f"models.{name}.train.init_from"
    _check_names(where, [source], config["models"], "model")
    other = config["models"][source]
    if source == name or "train" not in other or other["train"].get("init_from") is not None:
        raise ConfigError(f"{where}: {source!r} must be a run trained from the base model (no chains, not itself)")
    if other["family"] != entry.family or _model_spec(other) != _model_spec(entry):
        raise ConfigError(f"{where}: {source!r} must have the same family and model: settings as {name!r} "
                          "(its adapter's weights are loaded into this one)")


def _model_spec(entry: Mapping[str, Any] | ModelConfig):
    """The entry's model: settings with their defaults (written or not, the same model)."""
    entry = entry if isinstance(entry, ModelConfig) else ModelConfig.from_mapping(entry)
    return entry.facts.spec.from_mapping(entry.model_args())


def _check_path(config: Mapping[str, Any], where: str, value: str) -> None:
    """A checkpoint / tokenizer reference: built by the workflow (results/pretrained/<name>,
    named in ``pretrained:``), a hub id (``name`` or ``namespace/name``), or an existing directory."""
    if value.startswith("results/pretrained/"):
        built = value.removeprefix("results/pretrained/").split("/")[0]
        _check_names(where, [built], config.get("pretrained", {}), "pretrained checkpoint")
    elif value.startswith(("/", ".", "~")) and not Path(value).expanduser().exists():
        raise ConfigError(
            f"{where}: {value!r} does not exist (a local checkpoint or tokenizer directory; a hub id "
            f"looks like 'namespace/name')"
        )


def clean_views(config: Mapping[str, Any], names: Any) -> dict[str, str]:
    """{clean view: its original} for every view among ``names`` with filters.leakage: drop whose
    twin (same source and filters, leakage keep) is among ``names`` too: the pairs that the
    clean-vs-original tables compare."""
    datasets = config["datasets"]
    names = list(dict.fromkeys(names))

    def key(name: str) -> tuple:
        # The filters with their defaults: a base that leaves a default unwritten still has its twin.
        filters = FilterSpec.from_mapping(datasets[name].get("filters"), f"datasets.{name}.filters").to_dict()
        return source_dataset(config, name), repr(sorted((k, v) for k, v in filters.items() if k != "leakage"))

    originals = {key(n): n for n in names if datasets[n].get("filters", {}).get("leakage", "keep") == "keep"}
    return {n: originals[key(n)] for n in names
            if datasets[n].get("filters", {}).get("leakage") == "drop" and key(n) in originals}


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m medvqa.workflow_config",
        description="Check workflow config files (layered left to right, as Snakemake's --configfile does).",
    )
    parser.add_argument("configfiles", nargs="+", help="YAML config files, e.g. config.yaml configs/grid.yaml")
    parser.add_argument("--schema", default=str(SCHEMA), help="the workflow's structural schema (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        check_config(load_workflow_config(*args.configfiles, schema=args.schema))
    except ConfigError as exc:
        sys.exit(f"ConfigError: {exc}")
    print(f"{', '.join(args.configfiles)}: OK")


if __name__ == "__main__":
    main()
