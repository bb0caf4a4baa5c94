"""Training-time augmentation of cached images, as batched tensor ops on the training device.

One affine warp per image does the random resized crop, the small rotation and the optional
horizontal flip (``affine_grid`` + ``grid_sample``); brightness, contrast and saturation
jitter follow. Random draws come from the global CPU torch RNG, whose state the checkpoint
keeps, so a resumed run draws what an uninterrupted one would.

Horizontal flips change the answer of left/right questions ("is the lesion in the left
lung?"), so ``flip`` is off unless a dataset's answers are side-free.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from medvqa.models.specs import AugmentSpec


def _uniform(n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n) * (high - low) + low


def affine_params(spec: AugmentSpec, n: int) -> torch.Tensor:
    """(n, 2, 3) matrices mapping output to input coordinates in [-1, 1] (affine_grid's convention)."""
    area = _uniform(n, spec.crop_scale, 1.0)
    log_ratio = _uniform(n, -math.log(spec.crop_ratio), math.log(spec.crop_ratio))
    sx = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    sy = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    tx, ty = _uniform(n, -1, 1) * (1 - sx), _uniform(n, -1, 1) * (1 - sy)
    angle = torch.deg2rad(_uniform(n, -spec.rotation, spec.rotation))
    flip = torch.where(torch.rand(n) < 0.5, -1.0, 1.0) if spec.flip else torch.ones(n)
    cos, sin = angle.cos(), angle.sin()
    row_x = torch.stack([cos * sx * flip, -sin * sy, tx], dim=-1)
    row_y = torch.stack([sin * sx * flip, cos * sy, ty], dim=-1)
    return torch.stack([row_x, row_y], dim=1)


def _grey(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) → (B, 1, H, W) luma (ITU-R 601 weights, as torchvision)."""
    return (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1)


def colour_jitter(spec: AugmentSpec, images: torch.Tensor) -> torch.Tensor:
    """images (B, 3, H, W) in [0, 1] → jittered, clamped to [0, 1]."""
    n = images.shape[0]

    def factors(strength: float) -> torch.Tensor:
        return _uniform(n, 1 - strength, 1 + strength).to(images.device).view(n, 1, 1, 1)

    images = images * factors(spec.brightness)
    mean = _grey(images).mean(dim=(2, 3), keepdim=True)
    images = (images - mean) * factors(spec.contrast) + mean
    grey = _grey(images)
    images = (images - grey) * factors(spec.saturation) + grey
    return images.clamp(0.0, 1.0)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """Cached (B, H, W, 3) uint8 → (B, 3, H, W) float32 in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def augment(spec: AugmentSpec, images: torch.Tensor) -> torch.Tensor:
    """images (B, 3, H, W) float in [0, 1] → randomly cropped/rotated/flipped/jittered, same shape."""
    if not spec.enabled:
        return images
    theta = affine_params(spec, images.shape[0]).to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return colour_jitter(spec, images)
