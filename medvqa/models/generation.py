"""Batched answer generation with Hugging Face ``generate`` → prediction rows with confidences.

Used by the ``vlm_sft`` family (and any model with ``generate``), with the settings of
``GenerationSpec`` (one spec for every generative family): examples → a collator that encodes
prompts LEFT-padded (every prompt ends in the last column, so the first generated token of every
row is predicted from its own last prompt token) → ``generate`` → decoded answers.

For each question the result holds
  prediction            str, decoded greedy (or beam) answer without special tokens, stripped
  answer_ids            list[int], its token ids up to and including the stop token (not written)
  answer_prob_product   float in [0, 1], product of the answer's token probabilities
  answer_prob_mean      float in [0, 1], their arithmetic mean (does not penalise long answers)
  samples               list[str], ``num_samples`` answers sampled at ``temperature`` (empty if 0)

Token probabilities are softmax(logits) at temperature 1 of the tokens the answer consists of, up to
and including the first stop token (end-of-turn / eos), so "yes" scores p(yes) · p(<end> | yes).
They come from ``generate``'s raw logits (greedy or sampled main answer) or, for beam search or
when asked, from a second teacher-forced forward pass over prompt + answer.

Predictions table (``prediction_frame``): question_id (str), prediction (str), confidence
(float: answer_prob_product or answer_prob_mean, per ``confidence``), answer_prob (float, the
product), answer_prob_mean (float), samples (list<str>).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from medvqa.models.specs import GenerationSpec

# Collator outputs with one entry per token; they grow with the answer in the forward pass.
TOKEN_KEYS = ("input_ids", "attention_mask", "mm_token_type_ids", "token_type_ids")


def generate_kwargs(spec: GenerationSpec, stop_ids: Sequence[int], pad_id: int, sample: bool) -> dict[str, Any]:
    """Every decoding setting explicit, so a checkpoint's generation_config (e.g. Qwen's top_k=1) never leaks in."""
    kwargs = dict(
        max_new_tokens=spec.max_new_tokens, eos_token_id=list(stop_ids), pad_token_id=pad_id,
        repetition_penalty=spec.repetition_penalty, do_sample=sample, num_beams=1 if sample else spec.num_beams,
        use_cache=spec.use_cache,
    )
    if sample:
        kwargs.update(temperature=spec.temperature, top_p=spec.top_p, top_k=spec.top_k)
    return kwargs


def answer_lengths(tokens: torch.Tensor, stop_ids: Sequence[int]) -> torch.Tensor:
    """tokens (B, T) → (B,) int64: tokens up to and including the first stop token (T if none)."""
    is_stop = torch.isin(tokens, torch.as_tensor(list(stop_ids), device=tokens.device))
    first = is_stop.int().argmax(1) + 1
    return torch.where(is_stop.any(1), first, torch.full_like(first, tokens.shape[1])).long()


def token_probabilities(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """logits (B, T, V), tokens (B, T) → (B, T) float32 softmax probability of each token."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, tokens[..., None]).squeeze(-1).exp()


def sequence_probabilities(probs: torch.Tensor, lengths: torch.Tensor) -> tuple[list[float], list[float]]:
    """probs (B, T), lengths (B,) → ([product], [mean]) over each row's first ``lengths[i]`` tokens.

    The product is the sequence probability; the mean does not penalise long answers. An empty
    row scores 0.
    """
    keep = torch.arange(probs.shape[1], device=probs.device)[None] < lengths[:, None]
    p = probs.double()
    product = torch.where(lengths > 0, torch.where(keep, p.clamp_min(1e-300).log(), 0.0).sum(1).exp(), 0.0)
    mean = torch.where(keep, p, 0.0).sum(1) / lengths.clamp_min(1)
    return product.tolist(), mean.tolist()


def forward_probabilities(model, inputs: Mapping[str, torch.Tensor], tokens: torch.Tensor, lengths: torch.Tensor):
    """Teacher-forced pass over prompt (B, W) + answer tokens (B, T) → (B, T) token probabilities."""
    steps = tokens.shape[1]
    answer_mask = torch.arange(steps, device=tokens.device)[None] < lengths[:, None]
    full = dict(inputs)
    full["input_ids"] = torch.cat([inputs["input_ids"], tokens], dim=1)
    full["attention_mask"] = torch.cat([inputs["attention_mask"], answer_mask.to(inputs["attention_mask"].dtype)], 1)
    for key in TOKEN_KEYS[2:]:
        if key in inputs:  # answer tokens are text: type 0
            full[key] = torch.cat([inputs[key], torch.zeros_like(tokens, dtype=inputs[key].dtype)], dim=1)
    # Only the logits that predict answer tokens: positions W-1 … W+T-2.
    logits = model(**full, use_cache=False, logits_to_keep=steps + 1).logits[:, :-1]
    return token_probabilities(logits, tokens)


def decode_texts(tokenizer, tokens: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    """Generated ids (B, T) cut at ``lengths`` → texts without special tokens, stripped."""
    return [
        tokenizer.decode(row[: int(n)].tolist(), skip_special_tokens=True).strip()
        for row, n in zip(tokens.cpu(), lengths.cpu())
    ]


@torch.no_grad()
def generate_batch(model, inputs: Mapping[str, torch.Tensor], tokenizer, spec: GenerationSpec, stop_ids: Sequence[int]):
    """Left-padded ``inputs`` (input_ids (B, W), attention_mask, image keys) → B result dicts."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    width = inputs["input_ids"].shape[1]
    from_scores = spec.answer_prob_from == "scores" or (spec.answer_prob_from == "auto" and spec.num_beams == 1)
    out = model.generate(
        **inputs, **generate_kwargs(spec, stop_ids, pad_id, spec.do_sample),
        return_dict_in_generate=True, output_logits=from_scores,
    )
    tokens = out.sequences[:, width:]
    lengths = answer_lengths(tokens, stop_ids)
    if from_scores:
        probs = token_probabilities(torch.stack(out.logits, dim=1), tokens)
    else:
        probs = forward_probabilities(model, inputs, tokens, lengths)
    product, mean = sequence_probabilities(probs, lengths)
    samples = sample_answers(model, inputs, tokenizer, spec, stop_ids, pad_id)
    texts = decode_texts(tokenizer, tokens, lengths)
    ids = [row[: int(n)].tolist() for row, n in zip(tokens.cpu(), lengths.cpu())]
    return [
        {"prediction": t, "answer_ids": i, "answer_prob_product": p, "answer_prob_mean": m, "samples": s}
        for t, i, p, m, s in zip(texts, ids, product, mean, samples)
    ]


def sample_answers(model, inputs, tokenizer, spec: GenerationSpec, stop_ids, pad_id) -> list[list[str]]:
    """``spec.num_samples`` sampled answers per row of ``inputs`` (B lists, empty when 0)."""
    batch = inputs["input_ids"].shape[0]
    if spec.num_samples == 0:
        return [[] for _ in range(batch)]
    out = model.generate(
        **inputs, **generate_kwargs(spec, stop_ids, pad_id, sample=True), num_return_sequences=spec.num_samples
    )
    tokens = out[:, inputs["input_ids"].shape[1]:]
    texts = decode_texts(tokenizer, tokens, answer_lengths(tokens, stop_ids))
    return [texts[i * spec.num_samples:(i + 1) * spec.num_samples] for i in range(batch)]


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def generate_answers(
    model, collate: Callable[[Sequence[Mapping]], Mapping[str, torch.Tensor]], examples: Sequence[Mapping],
    tokenizer, spec: GenerationSpec, stop_ids: Sequence[int],
) -> list[dict[str, Any]]:
    """All ``examples`` in batches of ``spec.batch_size`` → one result dict each (plus "id")."""
    model.eval()
    device = model_device(model)
    results = []
    for start in tqdm(range(0, len(examples), spec.batch_size), desc="generate", leave=False):
        chunk = [examples[i] for i in range(start, min(start + spec.batch_size, len(examples)))]
        inputs = {k: v.to(device) for k, v in collate(chunk).items()}
        for example, result in zip(chunk, generate_batch(model, inputs, tokenizer, spec, stop_ids)):
            results.append({"id": example["id"], **result})
    return results


def prediction_frame(results: Sequence[Mapping[str, Any]], confidence: str = "product") -> pd.DataFrame:
    """Result dicts → the predictions table (see the module docstring)."""
    return pd.DataFrame({
        "question_id": [str(r["id"]) for r in results],
        "prediction": [r["prediction"] for r in results],
        "confidence": [float(r[f"answer_prob_{confidence}"]) for r in results],
        "answer_prob": [float(r["answer_prob_product"]) for r in results],
        "answer_prob_mean": [float(r["answer_prob_mean"]) for r in results],
        "samples": [list(r["samples"]) for r in results],
    })
