"""Predictions of the ``flamingo`` family: batched greedy decoding (KV-cache optional), answer
probabilities, sampled answers; or, with ``answer_head: classify``, the head's answer.

Reads a batch of ``medvqa.models.flamingo.collate`` (prompt_ids / prompt_mask, images);
returns one prediction dict per row (see ``medvqa.models.generative``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from medvqa.models.augment import to_float
from medvqa.models.generation import answer_lengths, decode_texts, sequence_probabilities
from medvqa.models.generative import to_device
from medvqa.models.specs import GenerationSpec

if TYPE_CHECKING:  # flamingo.py imports this module for its FAMILY
    from medvqa.models.flamingo import FlamingoVQA


@torch.no_grad()
def decode(
    model: FlamingoVQA, media: torch.Tensor, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, eos_id: int,
    spec: GenerationSpec, sample: bool = False, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Continue left-padded prompts (B, P) → (tokens (B, T), probabilities (B, T)), T ≤ max_new_tokens.

    Greedy unless ``sample`` (then multinomial at ``spec.temperature``). Probabilities are
    those of the untempered model. Rows that ended repeat ``eos_id``. Without the KV-cache
    every step re-runs the whole prefix: cost grows with T², acceptable for tiny models only.
    """
    from transformers import DynamicCache

    if prompt_ids.shape[1] + spec.max_new_tokens > model.lm_config.n_positions:
        raise ValueError(
            f"prompt ({prompt_ids.shape[1]} tokens) + max_new_tokens ({spec.max_new_tokens}) exceed GPT-2's "
            f"{model.lm_config.n_positions} positions: lower max_prompt_tokens or max_new_tokens"
        )
    cache = DynamicCache(config=model.lm_config) if spec.use_cache else None
    ids, mask, step_ids = prompt_ids, prompt_mask, prompt_ids
    done = torch.zeros(len(ids), dtype=torch.bool, device=ids.device)
    tokens, probs = [], []
    for _ in range(spec.max_new_tokens):
        logits = model.lm_head(model(media, step_ids, mask, past_key_values=cache)[:, -1]).float()
        dist = logits.softmax(-1)
        if sample:
            token = torch.multinomial((logits / spec.temperature).softmax(-1), 1, generator=generator)[:, 0]
        else:
            token = dist.argmax(-1)
        token = token.masked_fill(done, eos_id)
        tokens.append(token)
        probs.append(dist.gather(1, token[:, None])[:, 0])
        done = done | (token == eos_id)
        if bool(done.all()):
            break
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        step_ids = token[:, None] if cache is not None else ids
    return torch.stack(tokens, 1), torch.stack(probs, 1)


def _generated(model, media, batch, tokenizer, spec, generator) -> list[dict[str, Any]]:
    eos = tokenizer.eos_token_id
    tokens, probs = decode(model, media, batch["prompt_ids"], batch["prompt_mask"], eos, spec)
    lengths = answer_lengths(tokens, [eos])
    product, mean = sequence_probabilities(probs, lengths)
    texts = decode_texts(tokenizer, tokens, lengths)
    samples = [[] for _ in texts]
    if spec.num_samples:
        n = spec.num_samples
        media, ids, mask = (x.repeat_interleave(n, dim=0) for x in (media, batch["prompt_ids"], batch["prompt_mask"]))
        drawn, _ = decode(model, media, ids, mask, eos, spec, sample=True, generator=generator)
        flat = decode_texts(tokenizer, drawn, answer_lengths(drawn, [eos]))
        samples = [flat[i * n:(i + 1) * n] for i in range(len(texts))]
    return [
        {"prediction": t, "answer_prob_product": p, "answer_prob_mean": m, "samples": s}
        for t, p, m, s in zip(texts, product, mean, samples)
    ]


def _classified(model, media, batch, answers, spec, generator) -> list[dict[str, Any]]:
    """The head reads the hidden state of the last prompt token (the "Answer:" cue)."""
    hidden = model(media, batch["prompt_ids"], batch["prompt_mask"])[:, -1]
    logits = model.classifier(hidden).float()
    confidence, best = logits.softmax(-1).max(-1)
    samples = [[] for _ in range(len(best))]
    if spec.num_samples:
        drawn = torch.multinomial((logits / spec.temperature).softmax(-1), spec.num_samples, replacement=True,
                                  generator=generator)
        samples = [[answers[i] for i in row] for row in drawn.tolist()]
    return [
        {"prediction": answers[i], "answer_prob_product": c, "answer_prob_mean": c, "samples": s}
        for i, c, s in zip(best.tolist(), confidence.tolist(), samples)
    ]


@torch.no_grad()
def predict(
    model: FlamingoVQA, batch: Mapping[str, Any], tokenizer, spec: GenerationSpec,
    answers: Sequence[str] = (), generator: torch.Generator | None = None,
) -> list[dict[str, Any]]:
    """One prediction dict per row: generated answers, or the head's answer with ``classify``.

    ``answers`` (answers.json) is needed by the classify variant only; ``generator`` seeds
    the sampled answers (on the model's device).
    """
    model.eval()
    batch = to_device(batch, next(model.parameters()).device)
    media = model.encode_images(to_float(batch["images"]))
    if model.classifier is not None:
        return _classified(model, media, batch, answers, spec, generator)
    return _generated(model, media, batch, tokenizer, spec, generator)
