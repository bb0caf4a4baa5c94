"""Pretrained stage: a train split → ``results/pretrained/{name}/``, a tiny random stand-in of a
hub checkpoint of one *kind*, written with ``save_pretrained`` so that the real loading code
(``from_pretrained(directory)``) is what the offline demo exercises.

  kind          layout (under results/pretrained/{name}/)       stands in for
  clip          CLIPModel + CLIPProcessor                        openai/clip-vit-base-patch32
  clip_gpt2     clip/ (CLIP) + gpt2/ (GPT2LMHeadModel + tokenizer)  the two towers of flamingo
  blip_vqa      BlipForQuestionAnswering + BlipProcessor         Salesforce/blip-vqa-base
  blip_caption  BlipForConditionalGeneration + BlipProcessor     Salesforce/blip-image-captioning-base
  qwen2_vl, qwen2_5_vl, internvl, llava, llava_next
                AutoModelForImageTextToText + AutoProcessor      Qwen/Qwen2-VL-2B-Instruct, ...

Tokenizers learn from the text of one or more train splits (``pretrained.{name}.text_from``):
CLIP from the questions (or captions), the others from questions and answers (or captions).
CLIP and BLIP images are as large as the dataset's image cache; the VLM processors resize to
their spec's ``image_size``.

Nothing heavy is imported here: the workflow checks each entry's spec at start-up.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from medvqa.data.schema import read_text_columns, task_of
from medvqa.demo.pretrained import TinyClipSpec, write_tiny_clip
from medvqa.spec import ConfigError, Spec, check_choice
from medvqa.demo.tiny_hf import TinyHFSpec, texts_of, write_tiny_blip, write_tiny_clip_gpt2
from medvqa.demo.tiny_vlm import TinyVlmSpec, write_tiny_vlm


class TinyKind(NamedTuple):
    spec: type[Spec]  # the entry's ``model:`` sub-mapping (sizes)
    texts: Callable[[str | Path], list[str]]  # train split → texts the tokenizer learns
    # (texts, out_dir, dataset image size, seed, spec) → writes the checkpoint
    write: Callable[[list[str], Path, int, int, Any], Any]


def question_texts(train_path: str | Path) -> list[str]:
    """The questions (or captions) of a split: what a CLIP text tower reads."""
    rows = read_text_columns(train_path)
    return rows["question" if task_of(rows) == "vqa" else "caption"].astype(str).tolist()


def _clip(texts, out_dir, image_size, seed, spec):
    return write_tiny_clip(out_dir, texts, image_size, seed, spec)


def _clip_gpt2(texts, out_dir, image_size, seed, spec):
    return write_tiny_clip_gpt2(out_dir, texts, seed, image_size, spec)


def _blip(task, texts, out_dir, image_size, seed, spec):
    return write_tiny_blip(out_dir, texts, seed, task, image_size, spec)


def _vlm(arch, texts, out_dir, image_size, seed, spec):
    return write_tiny_vlm(arch, out_dir, texts, seed, spec)


TINY_KINDS: dict[str, TinyKind] = {
    "clip": TinyKind(TinyClipSpec, question_texts, _clip),
    "clip_gpt2": TinyKind(TinyHFSpec, texts_of, _clip_gpt2),
    "blip_vqa": TinyKind(TinyHFSpec, texts_of, functools.partial(_blip, "vqa")),
    "blip_caption": TinyKind(TinyHFSpec, texts_of, functools.partial(_blip, "caption")),
    **{arch: TinyKind(TinyVlmSpec, texts_of, functools.partial(_vlm, arch))
       for arch in ("qwen2_vl", "qwen2_5_vl", "internvl", "llava", "llava_next")},
}


@dataclasses.dataclass(frozen=True)
class PretrainedEntry(Spec):
    """One entry of ``config["pretrained"]`` (its ``model:`` sizes: the kind's spec, ``tiny_spec``)."""

    dataset: str  # its train split teaches the tokenizer; its image_size sets CLIP/BLIP image sides
    seed: int  # weight-init seed: same seed, same checkpoint
    kind: str = "clip"  # a key of TINY_KINDS
    text_from: tuple[str, ...] | None = None  # datasets whose train texts the tokenizer learns (None: [dataset])
    model: dict = dataclasses.field(default_factory=dict)  # sizes (TinyClipSpec, TinyHFSpec or TinyVlmSpec)

    def validate(self, where: str) -> None:
        check_choice(where, "kind", self.kind, tuple(TINY_KINDS))
        if self.text_from is not None and not self.text_from:
            raise ConfigError(f"{where}: text_from is empty; list datasets or leave it out (= [dataset])")


def tiny_spec(
    kind: str, model: Mapping[str, Any] | None, where: str = "pretrained", image_size: int | None = None,
    image_size_key: str = "image_size",
) -> Spec:
    """The sizes of one ``pretrained:`` entry, checked (unknown kind or key → ConfigError). CLIP and
    BLIP images are as large as the dataset's cache (``image_size``, named ``image_size_key`` in
    messages), which must then be a multiple of the patch size."""
    check_choice(where, "kind", kind, tuple(TINY_KINDS))
    spec = TINY_KINDS[kind].spec.from_mapping(model, f"{where}.model")
    if image_size is not None and isinstance(spec, (TinyClipSpec, TinyHFSpec)) and image_size % spec.patch_size:
        raise ConfigError(
            f"{where}.model.patch_size: {image_size_key} {image_size} is not a multiple of patch_size "
            f"{spec.patch_size} (the tiny {kind} sees images as large as the dataset's cache)"
        )
    return spec


def check_pretrained(config: Mapping[str, Any]) -> None:
    """Every ``pretrained:`` entry (``PretrainedEntry``) and its sizes (``tiny_spec``) against its dataset's
    image size (ConfigError naming the key). rules/pretrained.smk calls it at start-up, after
    ``medvqa.workflow_config.check_config`` has checked the names the entries refer to."""
    for name, pretrained in config.get("pretrained", {}).items():
        where = f"pretrained.{name}"
        entry = PretrainedEntry.from_mapping(pretrained, where)
        tiny_spec(entry.kind, entry.model, where, config["datasets"][entry.dataset]["image_size"],
                  f"datasets.{entry.dataset}.image_size")


def write_tiny_checkpoint(
    kind: str, train_paths: str | Path | Sequence[str | Path], out_dir: str | Path, image_size: int, seed: int,
    model: Mapping[str, Any] | None = None,
) -> Path:
    """The workflow stage: one tiny checkpoint of ``kind`` whose tokenizer learns the texts of
    one or more train splits (VQA and caption splits alike)."""
    spec = tiny_spec(kind, model)
    entry = TINY_KINDS[kind]
    paths = [train_paths] if isinstance(train_paths, (str, Path)) else list(train_paths)
    entry.write([text for path in paths for text in entry.texts(path)], Path(out_dir), image_size, seed, spec)
    return Path(out_dir)
