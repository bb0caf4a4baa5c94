"""Every workflow fact about each model family, in one torch-free table, and one models: entry.

The rules (``rules/common.smk``, ``medvqa.targets``, ``medvqa.job_inputs``), the
start-up config check (``medvqa.workflow_config``) and the tests read ``FAMILIES``; nothing
here imports torch, so the workflow loads in a second. ``medvqa.models.registry.MODEL_FAMILIES``
holds the torch side (builders, forward, loss) under the same keys, and a test keeps the two in step.

Adding a family = its module under ``medvqa/models/`` (its ``FAMILY``), its ``model:`` spec in
``medvqa.models.specs``, one entry here, one line in ``MODEL_FAMILIES`` (``medvqa.models.registry``),
its tests.
"""

from __future__ import annotations

import dataclasses

from medvqa.models.specs import (
    BlipSpec,
    CaptionSpec,
    ClipClassifierSpec,
    CnnLstmSpec,
    FlamingoSpec,
    GenerationSpec,
    ModelSpec,
    VlmSftSpec,
    check_generation_keys,
)
from medvqa.spec import ConfigError, Spec, check_choice, check_range
from medvqa.training.spec import TrainSpec


@dataclasses.dataclass(frozen=True)
class FamilyFacts:
    """What the workflow must know of a family without building one."""

    spec: type[ModelSpec]  # the entry's model: sub-mapping
    generative: bool  # answers as generated text (else logits over the answers.json classes)
    attention_maps: bool = False  # predict writes question-guided attention maps (attention figure)
    caption_kind: str | None = None  # a key of medvqa.inference.caption_models.CAPTION_KINDS; None: no captions
    mem_mb: int = 16000  # host memory of its training and prediction jobs (a VLM loads whole first)
    # An entry without a train: block is the pretrained model as loaded (no fine-tuning): only for
    # families with no untrained layers. False: such an entry is a config error.
    zero_shot: bool = False
    # Subdirectory of a trained run holding the model in its ecosystem's own format (a declared
    # output of rule train): loadable with Hugging Face / PEFT alone. None: medvqa's checkpoint only.
    export_dir: str | None = None


FAMILIES: dict[str, FamilyFacts] = {
    "cnn_lstm": FamilyFacts(CnnLstmSpec, generative=False, attention_maps=True),
    "clip_classifier": FamilyFacts(ClipClassifierSpec, generative=False),
    "flamingo": FamilyFacts(FlamingoSpec, generative=True, caption_kind="flamingo"),
    "blip": FamilyFacts(BlipSpec, generative=True, caption_kind="blip", export_dir="hf_model", zero_shot=True),
    "vlm_sft": FamilyFacts(VlmSftSpec, generative=True, caption_kind="vlm", mem_mb=64000, export_dir="adapter",
                           zero_shot=True),
}


def family_names(**facts) -> tuple[str, ...]:
    """The families whose facts equal ``facts``, e.g. ``family_names(generative=True)``."""
    return tuple(name for name, f in FAMILIES.items() if all(getattr(f, k) == v for k, v in facts.items()))


@dataclasses.dataclass(frozen=True)
class ModelConfig(Spec):
    """One entry of ``config["models"]``.

    Zero-shot has one meaning for every family: an entry without a ``train:`` block uses the
    pretrained checkpoint as loaded (answers or captions, no fine-tuning); ``train: {}`` trains
    with the default settings. Families with untrained layers (``FamilyFacts.zero_shot`` false)
    need the block.
    """

    family: str  # a key of FAMILIES
    tokenizer: str | None = None  # classifiers: a key of config["tokenizers"]; generative families: none
    model: dict = dataclasses.field(default_factory=dict)  # the family's builder spec
    train: dict | None = None  # TrainSpec (seed: from the {seed} wildcard); None: zero-shot
    generate: dict = dataclasses.field(default_factory=dict)  # GenerationSpec (generative families only)
    caption: dict | None = None  # CaptionSpec settings: the entry also captions caption datasets
    shards: int = 1  # > 1: answer / caption every split as this many parallel jobs (medvqa.inference.shards)

    def validate(self, where: str) -> None:
        check_choice(where, "family", self.family, tuple(FAMILIES))
        check_range(where, "shards", self.shards, 1)
        if self.shards > 1 and not self.facts.generative:
            raise ConfigError(f"{where}: shards is for generative families; {self.family} predicts in one quick job")
        if "finetune" in self.model:
            raise ConfigError(f"{where}.model.finetune: not a key; an entry without a train: block is zero-shot, "
                              f"one with a train: block (train: {{}} for the defaults) is fine-tuned")
        spec = self.facts.spec
        spec.from_mapping(self.model_args(), f"{where}.model")
        if spec.TOKEN_KIND and not self.tokenizer:
            raise ConfigError(f"{where}: family {self.family} needs a tokenizer of kind {spec.TOKEN_KIND!r}")
        if not spec.TOKEN_KIND and self.tokenizer:
            raise ConfigError(f"{where}: family {self.family} tokenises the text itself; remove 'tokenizer'")
        if spec.GENERATION_KEYS is None and self.generate:
            raise ConfigError(f"{where}: 'generate' is for generative families; {self.family} uses predict:")
        if spec.GENERATION_KEYS is not None:
            generation = GenerationSpec.from_mapping(self.generate, f"{where}.generate")
            check_generation_keys(generation, spec.GENERATION_KEYS, self.family, f"{where}.generate")
        self._check_training(where)
        if self.caption is not None:
            self.caption_spec(f"{where}.caption")

    def _check_training(self, where: str) -> None:
        """A zero-shot entry's family can run as loaded; a train: block is a valid TrainSpec."""
        if self.zero_shot:
            if not self.facts.zero_shot:
                usable = ", ".join(family_names(zero_shot=True))
                raise ConfigError(f"{where}: no train: block, but family {self.family} has untrained layers and "
                                  f"cannot be used zero-shot (families that can: {usable}); add a train: block "
                                  f"(train: {{}} for the defaults)")
            return
        if "seed" in self.train:
            raise ConfigError(f"{where}.train: 'seed' comes from the {{seed}} wildcard or --seed")
        train = TrainSpec.from_mapping(self.train, f"{where}.train")
        if (train.method == "grpo" or train.init_from) and self.family != "vlm_sft":
            raise ConfigError(f"{where}.train: method grpo and init_from are for vlm_sft entries")

    @property
    def facts(self) -> FamilyFacts:
        return FAMILIES[self.family]

    @property
    def zero_shot(self) -> bool:
        """No train: block: the pretrained model as loaded."""
        return self.train is None

    def model_args(self) -> dict:
        """The ``model:`` mapping as the family's builder reads it: with ``finetune`` (false for a
        zero-shot entry) where the family can be zero-shot."""
        return {**self.model, "finetune": not self.zero_shot} if self.facts.zero_shot else dict(self.model)

    def train_spec(self, seed: int | None = None) -> TrainSpec:
        """The entry's TrainSpec (a zero-shot entry: the defaults, which nothing trains with)."""
        mapping = dict(self.train or {})
        if seed is not None:
            mapping["seed"] = seed
        return TrainSpec.from_mapping(mapping, "train")

    def caption_spec(self, where: str = "caption") -> CaptionSpec:
        """The entry's captioning settings, with the kind and base checkpoint it implies."""
        kind = self.facts.caption_kind
        if kind is None:
            captioners = ", ".join(name for name, f in FAMILIES.items() if f.caption_kind)
            raise ConfigError(f"{where}: family {self.family} cannot caption; families: {captioners}")
        checkpoint = self.model.get("checkpoint")
        return CaptionSpec.from_mapping({**(self.caption or {}), "kind": kind, "checkpoint": checkpoint}, where)

    def tasks(self) -> tuple[str, ...]:
        """The dataset tasks the entry trains on and predicts for (``ModelSpec.tasks``)."""
        return self.facts.spec.from_mapping(self.model_args()).tasks()

    @property
    def token_kind(self) -> str | None:
        return self.facts.spec.TOKEN_KIND

    def generation(self) -> GenerationSpec | None:
        """The decoding settings of a generative entry; None for a classifier."""
        if self.facts.spec.GENERATION_KEYS is None:
            return None
        return GenerationSpec.from_mapping(self.generate, "generate")
