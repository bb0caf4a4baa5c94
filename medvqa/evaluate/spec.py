"""The scoring stage's parameters (config key ``evaluate``).

Kept apart from the scoring code so that checking a config at workflow start-up stays light.
"""

from __future__ import annotations

import dataclasses

from medvqa.evaluate import protocols
from medvqa.evaluate.captions import CAPTION_PROTOCOLS, PTB_TOKENIZERS
from medvqa.evaluate.metrics import SMOOTHING_NAMES
from medvqa.spec import ConfigError, Spec, check_choice, check_range

BOOTSTRAP_UNITS = ("image", "question")


@dataclasses.dataclass(frozen=True)
class ScoreSpec(Spec):
    """Parameters of the scoring stage (config key ``evaluate``)."""

    n_bins: int = 15  # equal-width calibration bins on [0, 1]
    bootstrap_resamples: int = 1000  # resamples per confidence interval (>= 1000)
    bootstrap_seed: int = 0  # numpy default_rng seed of every bootstrap
    bootstrap_unit: str = "image"  # what a bootstrap resamples: "image" (with all its questions) or "question"
    ci_level: float = 0.95  # coverage of the percentile bootstrap intervals
    bleu_smoothing: str = "method1"  # nltk SmoothingFunction method of sentence BLEU ("none" = method0)
    bleu_max_order: int = 4  # BLEU-1..bleu_max_order are reported
    group_columns: tuple[str, ...] = ("modality", "organ", "content_type")  # accuracy per group, if present
    embedding_encoder: str | None = None  # save_pretrained dir (or hub id) of a sentence encoder
    embedding_batch_size: int = 32  # captions / answers per encoder batch
    embedding_max_length: int = 128  # encoder tokens per text (longer texts are truncated)
    rouge_stemmer: bool = False  # Porter stemming in ROUGE-L
    calibration_protocol: str = protocols.DEFAULT_PROTOCOL  # correct = this protocol's score is 1
    caption_protocols: tuple[str, ...] = ("coco", "imageclef")  # keys of captions.CAPTION_PROTOCOLS
    ptb_tokenizer: str = "auto"  # COCO tokenisation: java PTBTokenizer, python copy, or auto (java if present)
    meteor: bool = True  # COCO METEOR (needs java; stated as skipped without it)
    # {dataset: LLaVA-Med candidate JSON}: adds llava_med's 'open accuracy' row (see protocols.py)
    llava_med_candidates: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        # YAML gives lists; a frozen spec keeps a tuple.
        object.__setattr__(self, "group_columns", tuple(self.group_columns))
        object.__setattr__(self, "caption_protocols", tuple(self.caption_protocols))

    def validate(self, where: str) -> None:
        check_range(where, "n_bins", self.n_bins, 1, 1000)
        check_range(where, "bootstrap_resamples", self.bootstrap_resamples, 1000)
        check_range(where, "ci_level", self.ci_level, 0.5, 0.999)
        check_choice(where, "bootstrap_unit", self.bootstrap_unit, BOOTSTRAP_UNITS)
        check_choice(where, "bleu_smoothing", self.bleu_smoothing, SMOOTHING_NAMES)
        check_range(where, "bleu_max_order", self.bleu_max_order, 1, 4)
        check_range(where, "embedding_batch_size", self.embedding_batch_size, 1)
        check_range(where, "embedding_max_length", self.embedding_max_length, 1)
        check_choice(where, "calibration_protocol", self.calibration_protocol, tuple(protocols.PROTOCOLS))
        if self.embedding_encoder is not None and not str(self.embedding_encoder).strip():
            raise ConfigError(f"{where}: embedding_encoder must be null or a model path, not ''")
        for name in self.caption_protocols:
            check_choice(where, "caption_protocols", name, tuple(CAPTION_PROTOCOLS))
        if len(set(self.caption_protocols)) < len(self.caption_protocols):
            raise ConfigError(f"{where}: caption_protocols lists a protocol twice: {list(self.caption_protocols)}")
        check_choice(where, "ptb_tokenizer", self.ptb_tokenizer, PTB_TOKENIZERS)
        for dataset, path in self.llava_med_candidates.items():
            if not str(path).strip():
                raise ConfigError(f"{where}: llava_med_candidates.{dataset} must be a file path, not ''")
