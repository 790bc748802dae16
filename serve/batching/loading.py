"""How a model is loaded for decoding, and the translate call every batcher makes of it.

`Loading` is small and picklable, so that an inference process can be told what to load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from seq2seq import SearchOptions, Translator
from seq2seq.checkpoint import load_checkpoint
from seq2seq.precision import Precision
from seq2seq.search import StopFn
from serve.batching import BatchLimits, Ranked


@dataclass(frozen=True)
class Loading:
    """A checkpoint and where and how it decodes."""

    path: str
    device: str = "auto"
    precision: Precision = "fp32"
    threads: int = 0
    """torch CPU threads of the process that loads it; 0 leaves torch's choice."""
    shortlist: bool = False
    """Decode through the checkpoint's shortlist, if it has one."""

    def load(self) -> Translator:
        """The model, ready to translate (raises `CheckpointError` with a one-line reason)."""
        if self.threads:
            torch.set_num_threads(self.threads)
        checkpoint = load_checkpoint(self.path)
        return Translator.from_checkpoint(
            checkpoint,
            device=self.device,
            precision=self.precision,
            shortlist=self.shortlist and checkpoint.shortlist is not None,
        )

    @property
    def torch_threads(self) -> int:
        """The torch threads a large batch decodes on."""
        return self.threads or torch.get_num_threads()

    def sharing(self, processes: int) -> Loading:
        """This, for one of `processes` inference processes: an equal share of the cores
        unless the threads are set."""
        threads = self.threads or max(1, (os.cpu_count() or 1) // processes)
        return replace(self, threads=threads)


class ModelCall:
    """One batch of a model within `limits`: the translations of each source, best first
    (a `TranslateFn`). A batch of at most `limits.one_thread_rows` rows runs on one torch
    thread, a larger one on as many as the model was loaded with."""

    def __init__(self, translator: Translator, limits: BatchLimits, threads: int) -> None:
        self.translator, self.limits, self.threads = translator, limits, threads

    def __call__(self, sources: list[list[int]], options: SearchOptions, stop: StopFn) -> Ranked:
        rows = len(sources) * options.beam_size
        threads = 1 if rows <= self.limits.one_thread_rows else self.threads
        if torch.get_num_threads() != threads:  # per thread: the calls run on one worker
            torch.set_num_threads(threads)
        return self.translator.translate_ids(
            sources,
            options,
            batch_size=self.limits.max_batch_size,
            batch_tokens=max(6000, self.limits.max_batch_tokens * options.beam_size),
            stop=stop,
        )
