"""Shared test fixtures. Everything runs offline on the CPU."""

import os

# A hub name must fail fast instead of hanging on the network (see DESIGN.md).
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import pytest
import torch

from builders import vqa_rows


def pytest_collection_finish(session):
    """The vLLM tests' virtualenv (pip, several minutes) builds in the background from the start."""
    if any(item.get_closest_marker("vllm") for item in session.items):
        from vlm.vllm_venv import start_background_build

        start_background_build()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread, and idle threads stall on a shared 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def split_rows():
    return {split: vqa_rows(split=split) for split in ("train", "val", "test")}
