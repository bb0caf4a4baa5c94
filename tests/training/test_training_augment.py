"""Tensor augmentation of cached images."""

from __future__ import annotations

import torch

from medvqa.models.augment import AugmentSpec, affine_params, augment, to_float

OFF = dict(crop_scale=1.0, crop_ratio=1.0, rotation=0.0, brightness=0.0, contrast=0.0, saturation=0.0)


def images(n: int = 4, size: int = 16) -> torch.Tensor:
    torch.manual_seed(0)
    return to_float(torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8))


def test_to_float_is_channels_first_in_unit_range():
    raw = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8)  # (1, 1, 1, 3)
    assert torch.allclose(to_float(raw).flatten(), torch.tensor([0.0, 128 / 255, 1.0]))


def test_disabled_or_neutral_augmentation_keeps_the_images():
    x = images()
    assert augment(AugmentSpec(enabled=False), x) is x
    assert torch.allclose(augment(AugmentSpec(**OFF), x), x, atol=1e-5)


def test_flip_mirrors_and_is_off_by_default():
    assert not AugmentSpec().flip
    torch.manual_seed(1)
    theta = affine_params(AugmentSpec(**OFF, flip=True), 64)
    assert set(theta[:, 0, 0].tolist()) == {-1.0, 1.0}
    x = images(1)
    flipped = augment(AugmentSpec(**OFF, flip=True), x.repeat(32, 1, 1, 1))
    assert any(torch.allclose(f, x[0].flip(-1), atol=1e-5) for f in flipped)


def test_default_augmentation_changes_images_within_range():
    x = images()
    y = augment(AugmentSpec(), x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    assert y.min() >= 0 and y.max() <= 1
