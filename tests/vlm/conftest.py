"""Tiny VLM checkpoints of every architecture, written once per test session."""

from __future__ import annotations

import pytest
from vlm.vlm_fixture import ANSWERS, QUESTIONS

from medvqa.demo.tiny_vlm import write_tiny_vlm


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory):
    """arch → directory of a tiny random checkpoint (written on first use, then shared read-only)."""
    written = {}

    def get(arch: str):
        if arch not in written:
            texts = [*QUESTIONS, *ANSWERS] * 3
            written[arch] = write_tiny_vlm(arch, tmp_path_factory.mktemp(arch), texts, seed=0)
        return written[arch]

    return get
