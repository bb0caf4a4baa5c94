"""Data-parallel training over the processes that ``torchrun`` starts (reads and writes no files).

``torchrun --standalone --nproc_per_node=N -m medvqa.training.train ...`` sets RANK, WORLD_SIZE and
LOCAL_RANK in every process; without them (a plain ``python -m medvqa.training.train`` or the workflow's
``script:``) everything here is a no-op and training runs in one process as before.

Semantics, with W processes:
  - ``train.batch_size`` is the *global* batch: each process takes ``batch_size / W`` examples
    per forward pass, so a W-process run follows the same trajectory as a one-process run (up to
    float reduction order) and the learning rates need no rescaling;
  - each epoch's order is the one the one-process loader draws; process r takes positions
    r, r + W, r + 2W, ... of it (``ShardSampler``);
  - gradients are averaged over the processes before every optimizer step (as DDP does), the
    epoch's loss/accuracy sums are summed over them, so every process logs the same numbers;
  - only rank 0 writes files; the others wait at a barrier before anyone reads them.

The gradients are averaged explicitly rather than by wrapping the module in
``DistributedDataParallel``: DDP synchronises only what runs through ``module.forward``, and some
families' ``score`` calls sub-modules directly (flamingo's loss calls ``encode_images`` and
``lm_head``). One coalesced all-reduce per optimizer step costs what DDP's last bucket costs,
minus DDP's overlap of communication with the backward pass; gradient accumulation communicates
only on the step, like DDP's ``no_sync``.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Sampler, Subset

from medvqa.spec import ConfigError

log = logging.getLogger(__name__)

# A process waits this long for the others (rank 0 writing a large checkpoint, a slow epoch).
TIMEOUT = datetime.timedelta(minutes=60)


def launched() -> bool:
    """Whether torchrun started several processes (WORLD_SIZE > 1 in the environment)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, the one process that writes files and logs progress (always true without torchrun)."""
    return rank() == 0


@contextlib.contextmanager
def session(device: str) -> Iterator[None]:
    """The process group of a torchrun launch for the duration of the block (nothing otherwise).

    ``device`` is the spec's device: nccl when it means CUDA and CUDA is there, gloo otherwise.
    """
    if not launched() or active():
        yield
        return
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    log.info("rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), dist.get_backend())
    try:
        yield
    finally:
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """This process's GPU (cuda:LOCAL_RANK) when training on CUDA under torchrun; else ``device``."""
    if device.type == "cuda" and active():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def per_process_batch(batch_size: int) -> int:
    """The global ``batch_size`` split evenly over the processes."""
    if batch_size % world_size():
        raise ConfigError(f"train.batch_size {batch_size} is not divisible by the {world_size()} processes")
    return batch_size // world_size()


class ShardSampler(Sampler[int]):
    """This rank's share of one epoch's ``order``: positions rank, rank + W, rank + 2W, ...

    ``order`` is padded by wrapping around to a multiple of the world size W, so that every
    process runs the same number of steps (a collective per step must be met by all). With
    the one-process order, the union of the ranks' i-th batches is the one-process i-th batch.
    """

    def __init__(self, order: Sequence[int]):
        order = list(order)
        order += order[: (-len(order)) % world_size()]
        self.indices = order[rank() :: world_size()]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def shard(dataset: Dataset) -> Dataset:
    """Every world-size-th example from this rank's (no padding: evaluation needs no equal steps)."""
    if not active():
        return dataset
    return Subset(dataset, range(rank(), len(dataset), world_size()))


def sum_over_processes(values: Sequence[float], device: torch.device) -> list[float]:
    """``values`` summed over all processes (float64, so counts stay exact)."""
    if not active():
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def average_gradients(params: Sequence[nn.Parameter]) -> None:
    """Replace each gradient by its mean over the processes (a missing gradient counts as zero)."""
    if not active():
        return
    for p in params:
        # Every rank must contribute the same tensors to the collective, even where a
        # parameter got no gradient in this rank's batches.
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for p in params:
        by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
    for grads in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def prepare_module(module: nn.Module) -> nn.Module:
    """Rank 0's weights and buffers on every process; BatchNorm statistics over the global batch on CUDA.

    Gloo has no SyncBatchNorm kernels, so on CPU each process normalises over its own share.
    """
    if not active():
        return module
    device = next(module.parameters()).device
    if device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    elif any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        log.warning("BatchNorm on CPU normalises over each process's share of the batch")
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)
    return module


def barrier() -> None:
    """Wait until every process gets here (after rank 0's writes, before anyone reads them)."""
    if active():
        dist.barrier()
