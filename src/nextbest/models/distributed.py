"""Data-parallel training across processes and hosts, on `torch.distributed`.

A fit started by `torchrun` (which sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT for
every process) joins one process group; each process trains on its share of every
mini-batch, the gradients are summed across processes with one all-reduce per step, and
every process applies the same update, so the replicas stay identical and rank 0 saves the
model. The gloo backend: it runs on CPUs (and between hosts over TCP); a GPU host would use
NCCL.

    torchrun --nproc-per-node 2 -m nextbest train --train events.parquet --model gru4rec
    torchrun --nproc-per-node 2 -m nextbest train --train events.parquet --pipeline p.toml

`joined()` is what a fit asks: (rank, world size), (0, 1) when not started by torchrun.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

# the models whose fit shares its work across a torchrun process group
DISTRIBUTED_MODELS = ("gru4rec",)
# the two-stage pipeline's rankers whose fit shares its work (`nextbest.twostage.rankers`)
DISTRIBUTED_RANKERS = ("attention_gru",)


def launched() -> bool:
    """True in a process that torchrun started as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(timeout_seconds: float = 600.0) -> tuple[int, int]:
    """Join torchrun's process group (once); (rank, world size). A process that torchrun did
    not start is rank 0 of 1 and joins nothing."""
    if not launched():
        return 0, 1
    if not dist.is_initialized():
        for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise ValueError(
                    f"WORLD_SIZE is set but {name} is not: start distributed training with "
                    "torchrun (e.g. torchrun --nproc-per-node 2 -m nextbest train ...)"
                )
        dist.init_process_group("gloo", timeout=timedelta(seconds=timeout_seconds))
    return joined()


def joined() -> tuple[int, int]:
    """(rank, world size) of the process group this process is in; (0, 1) outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def sum_across(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each tensor summed over every process, with one all-reduce of a flat buffer (one
    message per step instead of one per tensor: the per-message cost dominates on small
    models). Returns the sums as views of that buffer, shaped as the tensors (which keep
    their own values): a caller that reads the views saves copying them back."""
    if not tensors:
        return []
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    sums, offset = [], 0
    for tensor in tensors:
        size = tensor.numel()
        sums.append(flat[offset : offset + size].view_as(tensor))
        offset += size
    return sums


def check_same_everywhere(arrays: Sequence[np.ndarray], what: str) -> None:
    """Refuse, in every process of the group at once, data that is not the same in all of
    them: a fit that draws its mini-batches alike in every process needs the same data, and
    a process with fewer mini-batches would leave the others waiting in an all-reduce. Compares
    one 56-bit digest of the arrays (dtypes, shapes and bytes) with one all-reduce; nothing
    outside a group."""
    if joined()[1] == 1:
        return
    digest = hashlib.blake2b(digest_size=7)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)  # a C-contiguous buffer: no copy
    value = int.from_bytes(digest.digest(), "little")
    bounds = torch.tensor([value, -value], dtype=torch.int64)
    dist.all_reduce(bounds, op=dist.ReduceOp.MAX)  # [max, -min]: equal everywhere iff max == min
    if int(bounds[0]) != -int(bounds[1]):
        raise ValueError(
            f"the processes of the torchrun group hold different {what}: each process must "
            "compute the same (the same input files, and deterministic models)"
        )
