"""Fixtures of the training tests: the tiny dataset of ``vqa_fixture`` (built once per session)."""

from pathlib import Path

import pytest
from training.vqa_fixture import build_fixture


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory) -> Path:
    """The dataset + tiny CLIP, built once per test session (read-only for tests)."""
    return build_fixture(tmp_path_factory.mktemp("vqa_fixture"))

