"""Shared test fixtures. Everything runs offline on the CPU."""

import os

# A hub name must fail fast instead of hanging on the network (see DESIGN.md).
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import pytest

from builders import vqa_rows


@pytest.fixture
def split_rows():
    return {split: vqa_rows(split=split) for split in ("train", "val", "test")}
