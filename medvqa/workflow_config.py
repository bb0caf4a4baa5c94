"""Cross-checks of a workflow config that a JSON schema cannot express, and the expansion
of experiment grids.

The Snakefile validates config.yaml against rules/config.schema.yaml (structure, types,
choices) and then calls ``check_config``: every stage spec is built once from its config
sub-mapping, and every name an entry refers to must exist. Both run before any job, and a
failure names the offending key (e.g. ``datasets.demo.filters: unknown key(s) 'langauge'``).
Before either, ``check_config_files`` re-reads each config file with a strict YAML loader, since
Snakemake's accepts repeated keys. ``python -m medvqa.workflow_config FILE...`` runs the strict read
and ``check_config`` (not the JSON schema) outside Snakemake (which reports a YAML syntax error in a file given
with ``--configfile`` without its line, before the Snakefile runs).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from medvqa.data.leakage import LeakageSpec
from medvqa.data.prepare import FilterSpec, ImportSpec
from medvqa.data.sources import source_spec
from medvqa.data.tokens import TokenizerSpec
from medvqa.evaluate.score import ScoreSpec
from medvqa.families import ModelConfig
from medvqa.paths import image_dataset, model_dataset, source_dataset  # noqa: F401 (the rules import them here)
from medvqa.report.published import parse_entries
from medvqa.report.spec import FigureSpec
from medvqa.spec import ConfigError
from medvqa.tiny_checkpoints import tiny_spec

IMPORT_KEYS = ("source", "task", "options", "on_bad_sample")


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key repeated in one mapping is an error (PyYAML, and so
    Snakemake, keep the last value: ``epochs: 8`` then ``epochs: 1`` silently trained 1 epoch)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<: *anchor" keys may be overridden by design
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"{self.name}, line {line}: duplicate key {key!r} (first at line {seen[key]})")
            seen[key] = line
        return super().construct_mapping(node, deep)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file, strictly: duplicate keys and syntax errors fail naming file and line."""
    text = Path(path).read_text(encoding="utf-8")
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data() or {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {exc.problem or exc.context}") from None
    finally:
        loader.dispose()


def check_config_files(paths) -> None:
    """``load_config_file`` each file Snakemake will read (before it, or after it, reads them); a
    missing file is left to Snakemake's own "not found" error."""
    for path in paths:
        if Path(path).is_file():
            load_config_file(path)


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
        tokenizer = TokenizerSpec.from_mapping(spec, where=f"tokenizers.{name}")
        if tokenizer.path is not None:
            _check_path(config, f"tokenizers.{name}.path", tokenizer.path)
    for name, dataset in config["datasets"].items():
        where = f"datasets.{name}"
        spec = ImportSpec.from_mapping(import_mapping(dataset), where=where)
        source_spec(spec.source, spec.options, name, spec.task)
        FilterSpec.from_mapping(dataset.get("filters"), where=f"{where}.filters")
        LeakageSpec.from_mapping(dataset.get("leakage"), where=f"{where}.leakage")
        _check_names(f"{where}.tokenizers", dataset.get("tokenizers", []), config["tokenizers"], "tokenizer")
    for name, entry in config.get("pretrained", {}).items():
        _check_names(f"pretrained.{name}.dataset", [entry["dataset"]], config["datasets"], "dataset")
        _check_names(f"pretrained.{name}.text_from", entry.get("text_from", []), config["datasets"], "dataset")
        dataset = entry["dataset"]
        tiny_spec(entry.get("kind", "clip"), entry.get("model"), f"pretrained.{name}",
                  config["datasets"][dataset].get("image_size"), f"datasets.{dataset}.image_size")
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
        _check_names(f"{where}.tokenizer", [entry.tokenizer], config["tokenizers"], "tokenizer")
        kind = config["tokenizers"][entry.tokenizer]["kind"]
        if kind != entry.token_kind:
            raise ConfigError(f"{where}.tokenizer: {entry.family} reads {entry.token_kind!r} tokens, "
                              f"tokenizer {entry.tokenizer!r} is of kind {kind!r}")
    if entry.caption is not None and entry.family == "flamingo" and "train" not in model:
        raise ConfigError(f"{where}: flamingo captions only once trained (its new layers start untrained); "
                          "add a train: block")
    for key, value in entry.model.items():
        if isinstance(value, str):
            _check_path(config, f"{where}.model.{key}", value)


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


def _variant_name(base: str, question_type: str, subsample: int | None, leakage: str, base_filters: Mapping) -> str:
    name = base
    if question_type != base_filters.get("question_type", "all"):
        name += f"-{question_type}"
    if subsample != base_filters.get("subsample"):
        name += f"-n{subsample}" if subsample is not None else "-full"
    if leakage != base_filters.get("leakage", "keep"):
        name += "-clean" if leakage == "drop" else "-original"
    return name


def expand_experiments(config: dict[str, Any]) -> None:
    """Turn grid experiments into plain ones, in place.

    An experiment may list ``question_types``, ``subsamples`` and ``leakage`` (keep | drop)
    besides datasets, models and seeds. Each combination that differs from a dataset's own
    filters becomes a derived dataset view (e.g. ``demo-closed-n500``, ``demo-clean``): a copy of
    the base entry with those filters and ``derived_from: <base>``, so that it reuses the base's
    imported source files and leakage audit and only its filtered splits and what follows are
    built. When the base keeps every question (question type ``all``, no subsample, leakage
    ``keep``), a view's images are a subset of the base's, and the view reads the base's image
    caches (``images_from: <base>``) instead of writing copies. A clean view (leakage ``drop``)
    has its twin's train split, so it is not trained again: it is scored with the twin's runs
    (``models_from: <twin>``, the same view with the base's leakage filter), and the clean and
    original scores differ only by the removed questions. The experiment then names the views.
    """
    datasets = config["datasets"]
    for i, experiment in enumerate(config["experiments"]):
        # Checked here, before a name is looked up, rather than only in check_config (which runs after).
        _check_names(f"experiments[{i}].datasets", experiment["datasets"], datasets, "dataset")
        question_types = experiment.pop("question_types", None)
        subsamples = experiment.pop("subsamples", None)
        leakages = experiment.pop("leakage", None)
        names = []
        for base in experiment["datasets"]:
            filters = datasets[base].get("filters", {})
            grid = itertools.product(
                question_types or [filters.get("question_type", "all")], subsamples or [filters.get("subsample")],
                leakages or [filters.get("leakage", "keep")],
            )
            for question_type, subsample, leakage in grid:
                name = _define_view(datasets, base, question_type, subsample, leakage if leakages else None)
                if leakage == "drop" and name != base and filters.get("leakage", "keep") == "keep":
                    datasets[name]["models_from"] = _define_view(datasets, base, question_type, subsample, None)
                names.append(name)
        experiment["datasets"] = list(dict.fromkeys(names))


def _define_view(datasets: dict, base: str, question_type: str, subsample: int | None, leakage: str | None) -> str:
    """The name of the base's view with these filters, defined in ``datasets`` if new;
    leakage None = the base's own leakage filter (and no key: existing views keep their params)."""
    filters = datasets[base].get("filters", {})
    name = _variant_name(base, question_type, subsample, leakage or filters.get("leakage", "keep"), filters)
    if name not in datasets:
        variant = {**filters, "question_type": question_type, "subsample": subsample}
        if leakage is not None:
            variant["leakage"] = leakage
        datasets[name] = {**datasets[base], "filters": variant, "derived_from": base}
        if _keeps_every_question(filters):
            datasets[name]["images_from"] = base
    return name


def _keeps_every_question(filters: Mapping[str, Any]) -> bool:
    return (filters.get("question_type", "all") == "all" and filters.get("subsample") is None
            and filters.get("leakage", "keep") == "keep")


def clean_views(config: Mapping[str, Any], names: Any) -> dict[str, str]:
    """{clean view: its original} for every view among ``names`` with filters.leakage: drop whose
    twin (same source and filters, leakage keep) is among ``names`` too: the pairs that the
    clean-vs-original tables compare."""
    datasets = config["datasets"]
    names = list(dict.fromkeys(names))

    def key(name: str) -> tuple:
        filters = {k: v for k, v in datasets[name].get("filters", {}).items() if k != "leakage"}
        return source_dataset(config, name), repr(sorted(filters.items()))

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
    args = parser.parse_args(argv)
    try:
        check_config(load_workflow_config(*args.configfiles))
    except ConfigError as exc:
        sys.exit(f"ConfigError: {exc}")
    print(f"{', '.join(args.configfiles)}: OK")


def load_workflow_config(*paths: str | Path) -> dict[str, Any]:
    """Config files layered left to right (as Snakemake's --configfile does), read strictly, with grid
    experiments expanded into derived dataset views: the config the rules see, so that ``python -m
    medvqa...`` entry points find a view's files where the workflow writes them (``medvqa.paths``)."""
    config: dict[str, Any] = {}
    for path in paths:
        config = _merged(config, load_config_file(path))
    if "experiments" in config:
        expand_experiments(config)
    return config


def _merged(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Snakemake's update_config: nested mappings merge, other values replace."""
    out = dict(base)
    for key, value in update.items():
        out[key] = _merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


if __name__ == "__main__":
    main()
