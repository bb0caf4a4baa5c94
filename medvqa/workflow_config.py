"""The checks of a workflow config (its structure, every entry's specs, the names entries refer
to) and the expansion of experiment grids.

The Snakefile checks the config against rules/config.schema.yaml (``check_structure``: the
sections, entries and the types of the keys the rules read; it fills in the defaults the schema
declares) and then calls ``check_config``: every entry's specs are built once from its config
sub-mapping (types, ranges and choices live there, once), and every name an entry refers to must
exist. Both run before any job, and a failure is one line naming the offending key (e.g.
``datasets.demo.filters: unknown key(s) 'langauge'``). The ``pretrained:`` entries (tiny
stand-ins) are checked by the rules that build them (rules/pretrained.smk calls
``medvqa.demo.tiny_checkpoints.check_pretrained``), since product modules do not import the demo
package. Before all, ``check_config_files`` re-reads each config file with a strict YAML loader,
since Snakemake's accepts repeated keys. ``python -m medvqa.workflow_config FILE...`` runs the
strict read, ``check_structure`` and ``check_config`` (not ``check_pretrained``) outside Snakemake
(which reports a YAML syntax error in a file given with ``--configfile`` without its line, before
the Snakefile runs).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from medvqa.data.config import IMPORT_KEYS, DatasetConfig
from medvqa.data.prepare import LEAKAGE_FILTERS, QUESTION_TYPES
from medvqa.data.tokens import TokenizerSpec
from medvqa.evaluate.spec import ScoreSpec
from medvqa.families import ModelConfig
from medvqa.models.specs import PredictSpec
from medvqa.paths import source_dataset
from medvqa.report.published import parse_entries
from medvqa.report.spec import ReportSpec
from medvqa.spec import ConfigError, Spec, check_choice, check_range

SCHEMA = Path(__file__).resolve().parents[1] / "rules" / "config.schema.yaml"  # in a checkout of the workflow


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


def check_structure(config: dict[str, Any], schema_path: str | Path) -> None:
    """Check ``config`` against the structural JSON schema (``rules/config.schema.yaml``) and fill in
    the defaults it declares, in place; the first error is one line naming its key path."""
    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        where = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in error.absolute_path)
        raise ConfigError(f"{where.lstrip('.') or 'config'}: {error.message}")


def _with_defaults(validator_class):
    """A validator class that also sets each missing property's ``default`` (as Snakemake's validate does)."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(key, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def check_config_files(paths) -> None:
    """``load_config_file`` each file Snakemake will read (before it, or after it, reads them); a
    missing file is left to Snakemake's own "not found" error."""
    for path in paths:
        if Path(path).is_file():
            load_config_file(path)


@dataclasses.dataclass(frozen=True)
class ExperimentSpec(Spec):
    """One item of ``config["experiments"]``: datasets x models x seeds, optionally a grid of views."""

    datasets: tuple[str, ...]  # keys of config["datasets"]
    models: tuple[str, ...]  # keys of config["models"]
    seeds: tuple[int, ...] = (0,)  # training seeds ({seed} wildcard)
    question_types: tuple[str, ...] | None = None  # grid: a view per question type (filters.question_type)
    subsamples: tuple[int | None, ...] | None = None  # grid: a view per train subsample size (null = all)
    leakage: tuple[str, ...] | None = None  # grid: a view per leakage filter (keep | drop)

    def validate(self, where: str) -> None:
        for key in ("datasets", "models", "seeds"):
            if not getattr(self, key):
                raise ConfigError(f"{where}: {key} is empty")
        for question_type in self.question_types or ():
            check_choice(where, "question_types", question_type, QUESTION_TYPES)
        for subsample in self.subsamples or ():
            if subsample is not None:
                check_range(where, "subsamples", subsample, 1)
        for leakage in self.leakage or ():
            check_choice(where, "leakage", leakage, LEAKAGE_FILTERS)


def import_mapping(dataset: Mapping[str, Any]) -> dict[str, Any]:
    """The sub-mapping of a dataset entry that the import stage takes."""
    return {key: dataset[key] for key in IMPORT_KEYS if key in dataset}


def _check_names(where: str, names: Any, known: Mapping, kind: str) -> None:
    for name in names:
        if name not in known:
            raise ConfigError(f"{where}: unknown {kind} {name!r}; configured: {', '.join(known) or 'none'}")


def check_config(config: Mapping[str, Any]) -> None:
    """Every entry's specs (types, ranges, choices: ``medvqa.spec``), and every name an entry refers to."""
    ScoreSpec.from_mapping(config.get("evaluate"), where="evaluate")
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
    if entry.caption is not None and entry.family == "flamingo" and "train" not in model:
        raise ConfigError(f"{where}: flamingo captions only once trained (its new layers start untrained); "
                          "add a train: block")
    for key, value in entry.model.items():
        if isinstance(value, str):
            _check_path(config, f"{where}.model.{key}", value)
    _check_init_from(config, name, entry)


def _check_init_from(config: Mapping[str, Any], name: str, entry: ModelConfig) -> None:
    """``train.init_from`` names another trained entry whose adapter fits this one (the same model:)."""
    source = entry.train.get("init_from")
    if source is None:
        return
    where = f"models.{name}.train.init_from"
    _check_names(where, [source], config["models"], "model")
    other = config["models"][source]
    if source == name or other.get("train", {}).get("init_from") is not None:
        raise ConfigError(f"{where}: {source!r} must be a run trained from the base model (no chains, not itself)")
    if other["family"] != entry.family or other.get("model") != entry.model:
        raise ConfigError(f"{where}: {source!r} must have the same family and model: settings as {name!r} "
                          "(its adapter's weights are loaded into this one)")


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
        ExperimentSpec.from_mapping(experiment, f"experiments[{i}]")
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
    parser.add_argument("--schema", default=str(SCHEMA), help="the workflow's structural schema (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        check_config(load_workflow_config(*args.configfiles, schema=args.schema))
    except ConfigError as exc:
        sys.exit(f"ConfigError: {exc}")
    print(f"{', '.join(args.configfiles)}: OK")


def load_workflow_config(*paths: str | Path, schema: str | Path = SCHEMA) -> dict[str, Any]:
    """Config files layered left to right (as Snakemake's --configfile does), read strictly, checked
    against the structural schema (its defaults filled in) and with grid experiments expanded into
    derived dataset views: the config the rules see, so that ``python -m medvqa...`` entry points find
    a view's files where the workflow writes them (``medvqa.paths``)."""
    config: dict[str, Any] = {}
    for path in paths:
        config = _merged(config, load_config_file(path))
    check_structure(config, schema)
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
