"""Fixtures of the training tests: the tiny dataset of ``vqa_fixture`` (built once per session)."""

from pathlib import Path

import pytest
import torch
from training.vqa_fixture import build_fixture


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory) -> Path:
    """The dataset + tiny CLIP, built once per test session (read-only for tests)."""
    return build_fixture(tmp_path_factory.mktemp("vqa_fixture"))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread, and do not stall when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
