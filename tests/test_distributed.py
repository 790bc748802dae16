"""DDP: two CPU processes (gloo) train on their own shards and end with identical weights."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from conftest import TINY, tiny_overrides

from training import distributed
from training.config import load_config
from training.loop import fit
from training.train import build_trainer

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def worker(rank: int, overrides: list[str], port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE="2",
    )
    torch.set_num_threads(1)
    config = load_config(TINY, overrides)
    context = distributed.setup("cpu")
    torch.manual_seed(config.seed)
    trainer = build_trainer(config, context)
    fit(trainer)
    torch.save(trainer.model.state_dict(), Path(out) / f"rank{rank}.pt")
    torch.save({"batches": trainer.batches.sampler.shard(0)}, Path(out) / f"batches{rank}.pt")
    distributed.teardown(context)


@pytest.mark.parametrize(
    "limits",
    [
        {"train__max_steps": 6},
        # A wall-clock budget with a decay over it: the ranks must agree on the rate every step.
        {"train__max_steps": 0, "train__max_minutes": 0.04, "optim__schedule": "linear"},
    ],
    ids=["steps", "minutes"],
)
def test_two_gloo_ranks_end_identical(tmp_path: Path, limits: dict[str, object]) -> None:
    overrides = tiny_overrides(tmp_path, "run", **limits)
    mp.spawn(worker, args=(overrides, free_port(), str(tmp_path)), nprocs=2, join=True)
    first, second = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert all(torch.equal(first[name], second[name]) for name in first)
    shards = [torch.load(tmp_path / f"batches{r}.pt")["batches"] for r in (0, 1)]
    assert shards[0] != shards[1]
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()
