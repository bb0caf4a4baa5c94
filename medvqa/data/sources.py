"""Dataset sources: one entry, ``load_source``, for every way a dataset reaches the workflow.

Reads the source's own files (hub / local parquet, the SLAKE folder, the official VQA-RAD
release, local tables, or the generated demo) and returns unified rows of ALL splits
(``medvqa.data.schema``), in memory (``load_source``) or split by split in batches
(``stream_source``, what the import stage uses: peak memory does not grow with the dataset):

VQA rows:     question_id, image_id, image (encoded bytes), question, answer,
              answer_type ('closed'|'open'), split ('train'|'val'|'test')
              [+ modality, organ, q_lang, content_type]
Caption rows: image_id, image, caption, split [+ cui (';'-joined concept ids)]

``DataFrame.attrs`` states the rules a source applied (``answer_type_rule``,
``val_split_rule``, ``language_rule``) so the data summary can report them. Rows are not
validated here: the caller applies ``schema.check_rows``. Adding a source = one module with
a frozen spec + a ``load(spec, dataset)`` function, and one line in ``SOURCES``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from medvqa.data.batches import BATCH_ROWS, RawRows, UnifiedRows, frame_as_unified, unify_stream
from medvqa.data.hf import HFSourceSpec, hf_raw_rows, load_hf
from medvqa.data.local import LocalSourceSpec, load_local, local_raw_rows
from medvqa.data.slake import SlakeSourceSpec, load_slake, slake_raw_rows
from medvqa.data.unify import SourceNotFoundError
from medvqa.data.vqa_rad import VqaRadSourceSpec, load_vqa_rad, vqa_rad_raw_rows
from medvqa.spec import ConfigError, Spec, check_choice, check_range

__all__ = ["SOURCES", "Source", "SourceNotFoundError", "DemoSourceSpec", "load_source", "stream_source"]


@dataclasses.dataclass(frozen=True)
class DemoSourceSpec(Spec):
    """Options of the ``demo`` source (generated, offline, byte-identical for a seed)."""

    seed: int = 0            # generator seed
    n_images: int = 300      # generated images
    task: str = "vqa"        # vqa | caption
    image_px: int = 128      # side of the generated images, px

    def validate(self, where: str) -> None:
        check_choice(where, "task", self.task, ("vqa", "caption"))
        check_range(where, "n_images", self.n_images, 1)
        check_range(where, "image_px", self.image_px, 8)


def load_demo(spec: DemoSourceSpec, dataset: str) -> pd.DataFrame:
    # Imported here so that the real sources do not depend on the generator's module.
    from medvqa.data.demo import make_demo

    return make_demo(seed=spec.seed, n_images=spec.n_images, task=spec.task, image_px=spec.image_px)


@dataclasses.dataclass(frozen=True)
class Source:
    """A source: the spec its options build, the function that loads all splits in memory, and
    the one that describes its raw rows for batch-by-batch reading (None: ``load`` is small)."""

    spec: type[Spec]
    load: Callable[[Any, str], pd.DataFrame]
    raw: Callable[[Any, str], RawRows] | None = None
    # The demo generates whichever task the dataset entry asks for; the other sources hold
    # one task and the import stage checks it against the entry's ``task``.
    task_is_option: bool = False


SOURCES = {
    "hf": Source(HFSourceSpec, load_hf, hf_raw_rows),
    "slake": Source(SlakeSourceSpec, load_slake, slake_raw_rows),
    "vqa_rad": Source(VqaRadSourceSpec, load_vqa_rad, vqa_rad_raw_rows),
    "local": Source(LocalSourceSpec, load_local, local_raw_rows),
    "demo": Source(DemoSourceSpec, load_demo, task_is_option=True),
}


def load_source(
    source: str, options: Mapping[str, Any] | None, dataset: str, task: str = "vqa"
) -> pd.DataFrame:
    """Unified rows of every split of ``dataset`` from ``source`` with ``options``.

    Raises ``ConfigError`` for an unknown source or option (naming it) and
    ``SourceNotFoundError`` when the files / hub id are missing (saying how to get them).
    """
    if source not in SOURCES:
        raise ConfigError(
            f"datasets.{dataset}.source={source!r} is not one of {', '.join(map(repr, SOURCES))}"
        )
    return SOURCES[source].load(source_spec(source, options, dataset, task), dataset)


def stream_source(
    source: str, options: Mapping[str, Any] | None, dataset: str, task: str = "vqa", batch_rows: int = BATCH_ROWS
) -> UnifiedRows:
    """The rows ``load_source`` returns, as ``UnifiedRows`` read split by split in batches of
    ``batch_rows`` source rows (peak memory: one batch, not the dataset)."""
    if source not in SOURCES:
        raise ConfigError(
            f"datasets.{dataset}.source={source!r} is not one of {', '.join(map(repr, SOURCES))}"
        )
    entry, spec = SOURCES[source], source_spec(source, options, dataset, task)
    if entry.raw is None:
        return frame_as_unified(entry.load(spec, dataset))
    return unify_stream(entry.raw(spec, dataset), dataset, batch_rows)


def source_spec(source: str, options: Mapping[str, Any] | None, dataset: str, task: str = "vqa") -> Spec:
    """The source's spec built from ``options``; raises ConfigError naming a bad key."""
    entry = SOURCES[source]
    options = {**(options or {}), "task": task} if entry.task_is_option else options
    return entry.spec.from_mapping(options, where=f"datasets.{dataset}.options ({source} source)")
