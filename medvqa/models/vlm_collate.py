"""Chat-template prompts and batch collation for the ``vlm_sft`` family (training and generation).

Reads examples built from a split parquet (question_id, image_id, question, answer) and the split's
resized uint8 images (``medvqa.data.images.load_image_cache``: a raw or png cache, or the split parquet).

One example becomes, with the checkpoint's own chat template and processor:

    prompt  = template([user: image + "{question} {instruction}"], add_generation_prompt=True)
    target  = "{answer}{end_of_turn}"         (e.g. "yes<|im_end|>", "yes</s>")
    input_ids = processor(image, prompt) ++ tokenizer(target)     labels = -100 … -100 ++ target ids

so the loss covers the answer tokens and the end-of-turn token only; the prompt, the image
placeholder tokens and the padding are -100. A caption example (no question: image_id, caption
rows of a caption dataset) is the same turn with the user text ``{caption_prompt}`` and the
target ``{caption}{end_of_turn}``. Prompt and target are tokenised apart and joined as
ids, so the boundary never depends on BPE merges across it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from medvqa.data.images import load_image_cache
from medvqa.data.schema import read_text_columns
from medvqa.models.specs import DEFAULT_VLM_PROMPT

IGNORE_INDEX = -100
# Processor outputs with one entry per token (padded like input_ids); all other outputs are per image.
TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")


@dataclasses.dataclass(frozen=True)
class PromptFormat:
    """How a question becomes a chat turn, and which token closes the assistant's turn."""

    end_of_turn: str
    instruction: str = "Answer briefly."
    system_prompt: str | None = None
    caption_prompt: str = DEFAULT_VLM_PROMPT  # the whole user text of a caption example


class CachedVqaExamples(torch.utils.data.Dataset):
    """Rows of a split joined with the memory-mapped image cache.

    Item: {"id": question_id (str), "image": uint8 array (size, size, 3), "question": str, "answer": str | None}.
    """

    def __init__(self, rows, images: np.ndarray, index: Mapping[str, int]):
        missing = sorted(set(rows["image_id"].astype(str)) - set(index))
        if missing:
            raise KeyError(f"{len(missing)} image_id(s) absent from the image cache, e.g. {missing[:3]}")
        self.rows = rows.reset_index(drop=True)
        self.images = images
        self.index = index

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.rows.iloc[i]
        answer = row.get("answer")
        return {
            "id": str(row["question_id"]),
            "image": np.asarray(self.images[self.index[str(row["image_id"])]]),
            "question": str(row["question"]),
            "answer": None if answer is None else str(answer),
        }


def load_examples(
    parquet_path: str | Path, images_path: str | Path, ids_path: str | Path, image_size: int | None = None,
) -> CachedVqaExamples:
    """A split's VQA rows (without image bytes) over its images (``load_image_cache``)."""
    images, index = load_image_cache(images_path, ids_path, image_size)
    return CachedVqaExamples(read_text_columns(parquet_path), images, index)


def user_text(question: str | None, fmt: PromptFormat) -> str:
    """The user's words after the image: the question and the instruction, or (no question) the caption prompt."""
    if question is None:
        return fmt.caption_prompt
    return f"{question} {fmt.instruction}".strip() if fmt.instruction else question


def target_text(example: Mapping[str, Any]) -> str:
    """What the assistant says: the answer of a VQA example, the caption of a caption example."""
    return str(example["answer"] if example.get("question") is not None else example["caption"])


def chat_messages(question: str | None, fmt: PromptFormat, answer: str | None = None) -> list[dict]:
    """The conversation in the processor's typed-content format (system?, user, assistant?)."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text(question, fmt)}]}]
    if fmt.system_prompt:
        messages.insert(0, {"role": "system", "content": [{"type": "text", "text": fmt.system_prompt}]})
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def render_prompt(processor, question: str | None, fmt: PromptFormat) -> str:
    """The prompt text up to where the assistant's answer starts (image placeholder not expanded);
    ``question`` None: a caption prompt."""
    return processor.apply_chat_template(chat_messages(question, fmt), add_generation_prompt=True, tokenize=False)


def as_pil(image) -> Image.Image:
    """A cache row (uint8 (H, W, 3)) as a PIL image; wrapping only, nothing is decoded."""
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))


def encode_target(tokenizer, answer: str, end_of_turn: str) -> list[int]:
    """Token ids of ``answer`` followed by the end-of-turn token (no BOS)."""
    return tokenizer(f"{answer}{end_of_turn}", add_special_tokens=False)["input_ids"]


def adds_special_tokens(tokenizer, prompts: Sequence[str]) -> bool:
    """False when the chat template already wrote the BOS token (Gemma 3), so tokenising adds no second one."""
    bos = tokenizer.bos_token
    return not (bos and all(p.startswith(bos) for p in prompts))


def pad_sequences(seqs: Sequence[torch.Tensor], value: int, side: str) -> torch.Tensor:
    """1-D tensors → (B, max_len), padded with ``value`` on the ``side`` ('left' | 'right')."""
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        if side == "left":
            out[i, width - len(s):] = s
        else:
            out[i, : len(s)] = s
    return out


def pad_token_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@dataclasses.dataclass(frozen=True)
class VlmCollator:
    """Examples → model inputs. Training (``with_labels``): right padding, labels (B, L) with -100
    outside answer + end-of-turn. Generation: left padding, no labels, so every prompt ends at the
    last column and generated tokens line up."""

    processor: Any
    fmt: PromptFormat
    with_labels: bool = True
    padding_side: str = "right"

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        # One processor call for the whole batch: per-image calls cost 3-6x as much.
        prompts = [render_prompt(self.processor, e.get("question"), self.fmt) for e in examples]
        side = "right" if self.with_labels else self.padding_side
        # One image list per conversation (Gemma 3 and Idefics3 require it; the others accept it).
        encoded = self.processor(
            images=[[as_pil(e["image"])] for e in examples], text=prompts, return_tensors="pt", padding=True,
            padding_side=side, add_special_tokens=adds_special_tokens(self.processor.tokenizer, prompts),
        )
        return self.append_targets(dict(encoded), examples) if self.with_labels else dict(encoded)

    def append_targets(self, prompts: dict[str, torch.Tensor], examples: Sequence[Mapping[str, Any]]):
        """Right-padded prompt encodings + each example's target ids → the training batch with labels."""
        tokenizer = self.processor.tokenizer
        token_keys = [key for key in TOKEN_KEYS if key in prompts]
        rows: dict[str, list[torch.Tensor]] = {key: [] for key in [*token_keys, "labels"]}
        for i, example in enumerate(examples):
            n_prompt = int(prompts["attention_mask"][i].sum())
            ids = encode_target(tokenizer, target_text(example), self.fmt.end_of_turn)
            target = torch.tensor(ids, dtype=prompts["input_ids"].dtype)
            for key in token_keys:  # the target is plain text: mask 1, token type 0
                fill = {"input_ids": None, "attention_mask": 1}.get(key, 0)
                extra = target if fill is None else torch.full((len(target),), fill, dtype=prompts[key].dtype)
                rows[key].append(torch.cat([prompts[key][i, :n_prompt], extra]))
            rows["labels"].append(torch.cat([torch.full((n_prompt,), IGNORE_INDEX), target]))
        batch = {key: value for key, value in prompts.items() if key not in TOKEN_KEYS}
        for key, seqs in rows.items():
            fill = {"input_ids": pad_token_id(tokenizer), "labels": IGNORE_INDEX}.get(key, 0)
            batch[key] = pad_sequences(seqs, fill, self.padding_side)
        return batch
