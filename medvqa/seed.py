"""The one seeding function every entry point (training, prediction, tiny checkpoints) calls."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) with ``seed``."""
    # Imported here: the tiny-checkpoint specs are checked at workflow start-up, without torch.
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
