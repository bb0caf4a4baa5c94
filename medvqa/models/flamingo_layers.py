"""The layers the ``flamingo`` family adds to a frozen vision encoder and a frozen GPT-2.

* ``PerceiverResampler``: a fixed number of learned latents cross-attend to the vision
  encoder's patch features, so the language model always sees ``num_latents`` visual tokens
  whatever the image resolution.
* ``GatedCrossAttention``: text hidden states attend to those visual tokens; the attention and
  feed-forward outputs are scaled by ``tanh(gate)`` with the gates initialised at 0, so the
  untrained model computes exactly what the frozen language model computes.
* ``FlamingoLayer``: one original GPT-2 block, preceded (every k-th layer) by a gated
  cross-attention block. The wrapper holds both modules; the visual tokens are an argument
  of every call, never stored on the module.
"""

from __future__ import annotations

import torch
from torch import nn


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """Pre-norm MLP dim → mult·dim → dim."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mult * dim), nn.GELU(), nn.Linear(mult * dim, dim))


class PerceiverAttention(nn.Module):
    """Latents attend to [media; latents] (keys include the latents, as in Flamingo)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """media (B, N, D), latents (B, L, D) → update (B, L, D)."""
        queries = self.norm_latents(latents)
        keys = torch.cat([self.norm_media(media), queries], dim=1)
        out, _ = self.attn(queries, keys, keys, need_weights=False)
        return out


class PerceiverResampler(nn.Module):
    """Vision features (B, N, D) → ``num_latents`` visual tokens (B, num_latents, D)."""

    def __init__(self, dim: int, num_latents: int, depth: int, heads: int, ff_mult: int):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * dim**-0.5)
        self.attentions = nn.ModuleList([PerceiverAttention(dim, heads) for _ in range(depth)])
        self.feed_forwards = nn.ModuleList([feed_forward(dim, ff_mult) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, media: torch.Tensor) -> torch.Tensor:
        latents = self.latents.unsqueeze(0).expand(media.shape[0], -1, -1)
        for attention, ff in zip(self.attentions, self.feed_forwards):
            latents = latents + attention(media, latents)
            latents = latents + ff(latents)
        return self.norm(latents)


class GatedCrossAttention(nn.Module):
    """x + tanh(a)·XAttn(LN(x), media), then + tanh(b)·FFW(...); a = b = 0 at initialisation."""

    def __init__(self, dim: int, media_dim: int, heads: int, ff_mult: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, kdim=media_dim, vdim=media_dim, batch_first=True)
        self.attn_gate = nn.Parameter(torch.zeros(1))
        self.ff = feed_forward(dim, ff_mult)
        self.ff_gate = nn.Parameter(torch.zeros(1))

    def forward(self, hidden: torch.Tensor, media: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, dim), media (B, L, media_dim) → (B, T, dim).

        Every text token sees every visual token: one image per example, placed before the text.
        """
        attended, _ = self.attn(self.norm(hidden), media, media, need_weights=False)
        hidden = hidden + self.attn_gate.tanh() * attended
        return hidden + self.ff_gate.tanh() * self.ff(hidden)


class FlamingoLayer(nn.Module):
    """A frozen GPT-2 block, with an optional gated cross-attention block in front of it."""

    def __init__(self, block: nn.Module, xattn: GatedCrossAttention | None):
        super().__init__()
        self.xattn = xattn
        self.block = block

    def forward(self, hidden, media, attention_mask, position_ids, past_key_values=None) -> torch.Tensor:
        """hidden (B, T, dim), media (B, L, media_dim), attention_mask: the 4-D/boolean causal
        mask ``transformers.masking_utils.create_causal_mask`` builds for the block,
        position_ids (B, T), past_key_values: a ``DynamicCache`` (incremental decoding) or None.
        """
        if self.xattn is not None:
            hidden = self.xattn(hidden, media)
        return self.block(
            hidden,
            past_key_values=past_key_values,
            attention_mask=attention_mask,
            use_cache=past_key_values is not None,
            position_ids=position_ids,
        )
