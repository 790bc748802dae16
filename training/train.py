"""`seq2seq train CONFIG.yaml [--key=value ...] [--resume]`, and `train_from_config` for Python.

Prepares a run directory (SentencePiece models trained once and reused, encoded data in an
Arrow cache), builds the `Trainer` and runs `fit`. Under `torchrun` every rank trains on its
shard of the batches and only rank 0 writes files and evaluates.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch

from seq2seq import Tokenizer, TokenizerPair
from seq2seq.allocator import keep_freed_memory
from seq2seq.checkpoint import load_checkpoint, remove_stale_temporaries
from seq2seq.shortlist import MAX_PAIRS, Shortlist, build_shortlist
from training import distributed
from training.batching import DatasetBatches, StreamBatches, TokenBatchSampler
from training.config import TrainConfig, load_config
from training.data import describe_source, encode_split, encode_stream, iter_pairs, load_split
from training.loop import fit
from training.precision import resolve_precision
from training.trainer import Trainer, check_training_precision, model_config
from training.validation import Validator


@dataclass(frozen=True)
class Outcome:
    """How a run ended: its best checkpoint and why it stopped."""

    best: Path
    reason: str
    exit_code: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seq2seq train`."""
    parser.add_argument("config", help="YAML preset, e.g. training/configs/multi30k_de_en.yaml")
    parser.add_argument(
        "--resume", action="store_true", help="continue exactly from RUN_DIR/last.pt"
    )
    parser.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        metavar="--key=value",
        help="config overrides, e.g. --model.hidden_size=256 --train.max_steps=100",
    )


def run(args: argparse.Namespace) -> int:
    """Train as the parsed command line says; returns the exit status."""
    overrides = [item for item in args.overrides if item != "--resume"]
    resume = bool(args.resume) or len(overrides) < len(args.overrides)
    return train(load_config(args.config, overrides), resume=resume).exit_code


def train_from_config(
    config_path: str, overrides: Sequence[str] = (), *, resume: bool = False
) -> Path:
    """Train from a YAML file plus `--key=value` overrides; returns the best checkpoint's path."""
    return train(load_config(config_path, list(overrides)), resume=resume).best


def train(config: TrainConfig, *, resume: bool = False) -> Outcome:
    """Run one training job described by `config`."""
    datasets.disable_progress_bars()
    set_threads(config.train.threads)
    keep_freed_memory()  # the step's big blocks are reused, not unmapped and faulted back
    last = Path(config.run_dir) / "last.pt"
    if resume and not last.is_file():
        raise ValueError(f"{last}: no such checkpoint file, nothing to resume")
    context = distributed.setup(config.train.device)
    try:
        check_training_precision(config.train.precision, context.device)  # before data work
        torch.manual_seed(config.seed)
        resumed = recorded_precision(last) if resume else None
        trainer = build_trainer(config, context, resumed=resumed)
        if resume:
            trainer.resume(Path(config.run_dir) / "last.pt")
        with stop_on_signals(trainer):
            reason = fit(trainer)
    finally:
        distributed.teardown(context)
    code = 128 + trainer.stop_signal if trainer.stop_signal else 0
    return Outcome(Path(config.run_dir) / "best.pt", reason, code)


def set_threads(threads: int) -> None:
    """Use `threads` CPU threads; 0 splits the cores among the processes of this machine."""
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if threads <= 0 and processes > 1:
        threads = max(1, (os.cpu_count() or 1) // processes)
    if threads > 0:
        torch.set_num_threads(threads)


def build_trainer(
    config: TrainConfig, context: distributed.Context, *, resumed: str | None = None
) -> Trainer:
    """Tokenizers, data and model for `config`; rank 0 prepares, the other ranks follow.

    The SentencePiece models are sent from rank 0 to every rank, so nodes need no shared
    filesystem; each node encodes its own data cache if it has none. `resumed` is the
    precision of the run being resumed, which `train.precision: auto` keeps.
    """
    protos: list[bytes] = []
    if context.is_main:
        Path(config.run_dir).mkdir(parents=True, exist_ok=True)
        clear_interrupted_saves(Path(config.run_dir))
        print(f"data: {describe_source(config.data)}", file=sys.stderr)
        tokenizers = prepare_tokenizers(config)
        protos = [tokenizers.src.proto, tokenizers.tgt.proto]
        prepare_train_data(config, tokenizers, context)
    src, tgt = distributed.broadcast_objects(context, protos, count=2)
    tokenizers = TokenizerPair(Tokenizer(src), Tokenizer(tgt))
    config = with_precision_resolved(config, tokenizers, context, resumed)
    distributed.barrier(context)
    batches = prepare_train_data(config, tokenizers, context)
    validator = prepare_validator(config, tokenizers) if context.is_main else None
    shortlist = training_shortlist(config, batches, tokenizers) if context.is_main else None
    return Trainer(config, tokenizers, batches, validator, context, shortlist)  # type: ignore[arg-type]


def with_precision_resolved(
    config: TrainConfig,
    tokenizers: TokenizerPair,
    context: distributed.Context,
    resumed: str | None,
) -> TrainConfig:
    """`config` with `train.precision: auto` replaced by rank 0's choice, on every rank; the
    checkpoints' config then says what the run trained at."""
    choice: list[str] = [config.train.precision]
    if context.is_main:
        network = model_config(config, tokenizers)
        precision, why = resolve_precision(config.train, network, context.device, resumed)
        if config.train.precision == "auto":
            print(f"precision: {precision} ({why})", file=sys.stderr)
        choice = [precision]
    (precision,) = distributed.broadcast_objects(context, choice, count=1)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, precision=precision))


def recorded_precision(last: Path) -> str | None:
    """The precision the run in `last` (a last.pt) trained at, if it says."""
    metadata = load_checkpoint(last, weights=False).metadata
    precision = metadata.get("train_config", {}).get("train", {}).get("precision")
    return str(precision) if precision else None


def training_shortlist(
    config: TrainConfig, batches: Any, tokenizers: TokenizerPair
) -> Shortlist | None:
    """The lexical shortlist of the encoded training split (`train.shortlist`); None when it
    is off or the data is streamed."""
    if not config.train.shortlist or not isinstance(batches, DatasetBatches):
        return None
    head = batches.dataset.select(range(min(len(batches.dataset), MAX_PAIRS)))
    pairs = zip(head["src_ids"], head["tgt_ids"], strict=True)
    return build_shortlist(pairs, tokenizers.src.vocab_size, tokenizers.tgt.vocab_size)


def clear_interrupted_saves(run_dir: Path) -> None:
    """Remove the temporary checkpoint files of saves killed mid-write (kill -9), saying which."""
    removed = remove_stale_temporaries(run_dir)
    if removed:
        names = ", ".join(path.name for path in removed)
        print(
            f"removed {len(removed)} temporary file(s) of an interrupted save from {run_dir}: "
            f"{names}",
            file=sys.stderr,
        )


def tokenizer_paths(config: TrainConfig) -> tuple[Path, Path]:
    """Where the run keeps its SentencePiece models (one file when joint)."""
    run_dir = Path(config.run_dir)
    if config.tokenizer.joint:
        return run_dir / "spm.joint.model", run_dir / "spm.joint.model"
    data = config.data
    return run_dir / f"spm.{data.src_lang}.model", run_dir / f"spm.{data.tgt_lang}.model"


def prepare_tokenizers(config: TrainConfig) -> TokenizerPair:
    """Load the run's SentencePiece models, training them on the training split if absent."""
    src_path, tgt_path = tokenizer_paths(config)
    if src_path.is_file() and tgt_path.is_file():
        return TokenizerPair(Tokenizer.load(str(src_path)), Tokenizer.load(str(tgt_path)))
    pairs = list(_training_pairs(config))
    if not pairs:
        raise ValueError(f"the {config.data.train_split!r} split has no sentence pairs")
    settings = config.tokenizer
    src_size, tgt_size = settings.sizes
    try:
        tokenizers = TokenizerPair.train(
            pairs,
            vocab_size=src_size,
            tgt_vocab_size=tgt_size,
            joint=settings.joint,
            model_type=settings.model_type,
            seed=config.seed,
        )
    except RuntimeError as error:  # SentencePiece reports bad settings as RuntimeError
        raise ValueError(f"SentencePiece training failed: {str(error).splitlines()[0]}") from error
    tokenizers.src.save(str(src_path))
    tokenizers.tgt.save(str(tgt_path))
    return tokenizers


def _training_pairs(config: TrainConfig, limit: int = 1_000_000) -> Iterator[tuple[str, str]]:
    data = config.data
    if data.format == "hub":
        rows = load_split(data, data.train_split)
        pairs: Iterator[tuple[str, str]] = ((row["src"], row["tgt"]) for row in rows)
    else:
        pairs = iter_pairs(data, data.train_split)
    for number, pair in enumerate(pairs):
        if number >= limit:
            return
        yield pair


def cache_dir(config: TrainConfig) -> Path:
    """The Arrow cache of encoded splits."""
    return Path(config.data.cache_dir or Path(config.run_dir) / "cache")


def prepare_train_data(
    config: TrainConfig, tokenizers: TokenizerPair, context: distributed.Context
) -> Any:
    """Batches of the training split for this rank: in memory (cached) or streamed."""
    loop, data = config.train, config.data
    if data.streaming:
        if context.distributed and loop.max_steps <= 0 and loop.max_minutes <= 0:
            raise ValueError(
                "streaming under torchrun needs train.max_steps or max_minutes "
                "(ranks may see different numbers of batches per epoch)"
            )
        stream = encode_stream(data, data.train_split, tokenizers)
        return StreamBatches(
            stream,
            batch_tokens=loop.batch_tokens,
            max_sentences=loop.max_sentences,
            seed=config.seed,
            rank=context.rank,
            world_size=context.world_size,
        )
    dataset = encode_split(data, data.train_split, tokenizers, cache_dir(config), filter_=True)
    lengths = list(zip(map(len, dataset["src_ids"]), map(len, dataset["tgt_ids"]), strict=True))
    sampler = TokenBatchSampler(
        lengths,
        batch_tokens=loop.batch_tokens,
        max_sentences=loop.max_sentences,
        seed=config.seed,
        rank=context.rank,
        world_size=context.world_size,
    )
    return DatasetBatches(dataset, sampler)


def prepare_validator(config: TrainConfig, tokenizers: TokenizerPair) -> Validator:
    """The validation split, encoded and cleaned but not length-filtered."""
    data = config.data
    dataset = encode_split(data, data.valid_split, tokenizers, cache_dir(config), filter_=False)
    return Validator(
        dataset,
        tokenizers,
        sentences=config.train.eval_sentences,
        beam_size=config.train.eval_beam_size,
        batch_tokens=config.train.batch_tokens,
    )


@contextmanager
def stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """SIGINT/SIGTERM ask the loop to save last.pt and stop (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, _frame: Any) -> None:
        trainer.stop_signal = signum

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
