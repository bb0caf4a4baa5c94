"""One ``datasets:`` entry of the workflow config, checked at start-up (torch-free).

The data stages take sub-mappings of the entry (``ImportSpec``: source, task, options,
on_bad_sample; ``FilterSpec``; ``LeakageSpec``; the cache's ``image_size``; tokenizer names);
``DatasetConfig`` holds the entry as a whole so that an unknown key, a wrong type or a value out
of range fails once, naming its key path (``datasets.demo.image_size=4 is outside [8, 1024]``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from medvqa.data.leakage import LeakageSpec
from medvqa.paths import CACHE_KINDS
from medvqa.data.prepare import FilterSpec, ImportSpec
from medvqa.data.sources import SOURCES, source_spec
from medvqa.spec import Spec, check_choice, check_range

IMPORT_KEYS = (  # the keys of an entry that the import stage takes (ImportSpec)
    "source", "task", "options", "on_bad_sample",
)


@dataclasses.dataclass(frozen=True)
class DatasetConfig(Spec):
    """One entry of ``config["datasets"]``."""

    source: str  # a key of medvqa.data.sources.SOURCES
    image_size: int  # side of the cached square images, px
    # How the resized images are kept: raw uint8 .npy (fastest reads, 3 * size^2 bytes per image),
    # png (lossless, decoded on read) or none (no cache: decode + resize the split parquet's bytes on read).
    image_cache: str = "raw"
    task: str = "vqa"  # vqa | caption
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # the source's options spec
    filters: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # FilterSpec
    leakage: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # LeakageSpec (the audit)
    tokenizers: tuple[str, ...] = ()  # keys of config["tokenizers"] that pre-tokenise the splits
    on_bad_sample: str = "error"  # error | skip
    # Set by medvqa.config_files.expand_experiments on the dataset views of experiment grids:
    derived_from: str | None = None  # the dataset whose imported source files the view filters
    images_from: str | None = None  # the view whose image caches hold this view's images
    models_from: str | None = None  # the view whose training runs score this (clean) view

    def validate(self, where: str) -> None:
        check_choice(where, "source", self.source, tuple(SOURCES))
        check_range(where, "image_size", self.image_size, 8, 1024)
        check_choice(where, "image_cache", self.image_cache, CACHE_KINDS)
        spec = ImportSpec.from_mapping({key: getattr(self, key) for key in IMPORT_KEYS}, where)
        source_spec(spec.source, spec.options, where.removeprefix("datasets."), spec.task)
        FilterSpec.from_mapping(self.filters, f"{where}.filters")
        LeakageSpec.from_mapping(self.leakage, f"{where}.leakage")

