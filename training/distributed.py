"""DDP plumbing: one process per device under `torchrun`, NCCL on GPUs, gloo on CPUs.

Without torchrun's environment (WORLD_SIZE unset or 1) everything here is a no-op, so the
same training code runs in a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from seq2seq.translator import resolve_device


@dataclass(frozen=True)
class Context:
    """This process's place in the job and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files, evaluates and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def setup(device: str = "auto") -> Context:
    """Join the process group when started by torchrun; pick this rank's device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    resolved = resolve_device(device)
    if world_size <= 1:
        return Context(0, 1, resolved)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    if not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=timedelta(minutes=30))
    return Context(dist.get_rank(), dist.get_world_size(), resolved)


def teardown(context: Context) -> None:
    """Leave the process group (after every rank got here)."""
    if context.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(context: Context) -> None:
    """Wait for every rank (e.g. while rank 0 writes a file the others then read)."""
    if context.distributed:
        dist.barrier()


def any_rank(context: Context, flag: bool) -> bool:
    """True on every rank when `flag` is true on at least one (stop decisions, signals)."""
    return max_over_ranks(context, [1.0 if flag else 0.0])[0] > 0


def max_over_ranks(context: Context, values: list[float]) -> list[float]:
    """Each value's maximum over all ranks, on every rank (one collective for all of them)."""
    if not context.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device(context))  # [N]
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [float(value) for value in tensor.tolist()]


def broadcast_flag(context: Context, flag: bool) -> bool:
    """Rank 0's `flag`, on every rank."""
    if not context.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_comm_device(context))
    dist.broadcast(value, src=0)
    return bool(value.item() > 0)


def broadcast_objects(context: Context, objects: list[Any], *, count: int) -> list[Any]:
    """Rank 0's list of `count` picklable objects, on every rank."""
    if not context.distributed:
        return objects
    shared = objects if context.is_main else [None] * count
    dist.broadcast_object_list(shared, src=0)
    return shared


def _comm_device(context: Context) -> torch.device:
    return context.device if context.device.type == "cuda" else torch.device("cpu")
