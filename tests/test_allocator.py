"""Freed CPU memory is reused: a training step's big blocks do not fault their pages back in."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from seq2seq.allocator import keep_freed_memory


def page_faults_of_big_blocks(times: int) -> int:
    """Minor page faults while a 32 MB tensor (1,600 x 5,000 logits) is filled and freed."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        logits = torch.empty(1600, 5000)  # [N, V]
        logits.fill_(1.0)
        del logits
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_big_blocks_are_reused_instead_of_faulted_back_in() -> None:
    assert keep_freed_memory()
    page_faults_of_big_blocks(5)  # the heap grows to hold the block, and settles
    pages = 1600 * 5000 * 4 // 4096
    assert page_faults_of_big_blocks(20) < 4 * pages  # unmapped each time: 20 x pages
