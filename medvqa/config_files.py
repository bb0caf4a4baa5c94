"""Reading a workflow config: its files read strictly, its structure checked against
rules/config.schema.yaml (defaults filled in), and its experiment grids expanded into derived
dataset views. Light (yaml and jsonschema only): the Snakefile and the stage entry points
(``python -m medvqa.training.train`` / ``medvqa.inference.predict --config``) read configs here;
the checks of every entry's specs live in ``medvqa.workflow_config``.
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

from medvqa.paths import LEAKAGE_FILTERS, QUESTION_TYPES
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
        unknown = [name for name in experiment["datasets"] if name not in datasets]
        if unknown:
            raise ConfigError(f"experiments[{i}].datasets: unknown dataset {unknown[0]!r}; "
                              f"configured: {', '.join(datasets) or 'none'}")
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
