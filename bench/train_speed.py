"""Training throughput: target tokens per second of forward + backward + Adam on Multi30k batches.

Batches hold 128 sentences of real Multi30k de->en lengths (8k SentencePiece), grouped by
length as the training loop does. Each variant is timed in interleaved rounds so that the
shared machine's noise falls on all of them alike; figures are medians over rounds.

Variants: the textbook step (logits at every padded position, foreach Adam) and the
library's step (`Seq2Seq.decoder_states` + `project` on the real target tokens only, fused
Adam), in fp32 and under CPU bf16 autocast, and CUDA AMP when a GPU is present.
Run: python -m bench.train_speed [--model PATH] [--rounds 5] [--steps 3]
"""

from __future__ import annotations

import argparse
import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence

from bench import ceiling, data, report
from bench.reference_model import (
    OWN_MODEL,
    VOCAB_SIZE,
    Batch,
    bucketed_batches,
    encoded_pairs,
    make_batch,
)
from bench.timing import clock, median, table, wait_for_quiet
from seq2seq import PAD_ID, ModelConfig, Seq2Seq, Tokenizer, TokenizerPair, load_checkpoint
from seq2seq.model import reverse_padded

LossFn = Callable[[Seq2Seq, Batch], Tensor]
TOKENIZER_CACHE = OWN_MODEL.parent


def packed_encode(model: Seq2Seq, src: Tensor, src_len: Tensor) -> tuple[Tensor, Tensor]:
    """The textbook encoder: one nn.LSTM call over a packed sequence."""
    encoder = model.encoder
    embedded = encoder.dropout(encoder.embedding(reverse_padded(src, src_len)))  # [B, S, E]
    packed = pack_padded_sequence(embedded, src_len.cpu(), batch_first=True, enforce_sorted=False)
    _, state = encoder.lstm(packed)  # [L, B, H] each
    return state  # type: ignore[no-any-return]


def plain_loss(model: Seq2Seq, batch: Batch) -> Tensor:
    """The textbook step: packed encoder, logits at every position, padding ignored by the loss."""
    src, src_len, tgt_in, tgt_out = batch
    logits, _ = model.decoder(tgt_in, packed_encode(model, src, src_len))  # [B, T, V]
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), tgt_out.flatten(), ignore_index=PAD_ID
    )


def fast_loss(model: Seq2Seq, batch: Batch) -> Tensor:
    """The library's step: `decoder_states`, then project and score only the real tokens."""
    src, src_len, tgt_in, tgt_out = batch
    real = tgt_out != PAD_ID  # [B, T]
    states = model.decoder_states(src, src_len, tgt_in)[real]  # [N, H]
    return torch.nn.functional.cross_entropy(model.project(states).float(), tgt_out[real])


@dataclass
class Variant:
    """One way to train: a model with its optimizer, loss, autocast and measured step times."""

    name: str
    model: Seq2Seq
    loss_fn: LossFn
    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager[object]]
    fused: bool
    times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model.to(self.device).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=self.fused)

    def step(self, batch: Batch) -> None:
        """One forward + backward + clip + Adam step."""
        with self.autocast():
            loss = self.loss_fn(self.model, batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()

    def run(self, batches: list[Batch]) -> None:
        """Time `batches` (moved to the device first) and record seconds per step."""
        moved = [tuple(t.to(self.device) for t in batch) for batch in batches]
        start = clock(self.device)
        for batch in moved:
            self.step(batch)  # type: ignore[arg-type]
        self.times.append((clock(self.device) - start) / len(batches))


def variants(config: ModelConfig) -> Iterator[Variant]:
    """The CPU variants, plus CUDA AMP when a GPU is present; all start from the same weights."""
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    weights = Seq2Seq(config).state_dict()

    def model() -> Seq2Seq:
        fresh = Seq2Seq(config)
        fresh.load_state_dict(weights)
        return fresh

    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    no_autocast = contextlib.nullcontext
    yield Variant("textbook fp32", model(), plain_loss, cpu, no_autocast, False)
    yield Variant("library fp32", model(), fast_loss, cpu, no_autocast, True)
    yield Variant("library bf16 autocast", model(), fast_loss, cpu, bf16, True)
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        amp = lambda: torch.autocast("cuda", dtype=half)  # noqa: E731
        yield Variant(
            f"CUDA AMP ({half})".replace("torch.", ""), model(), fast_loss, gpu, amp, True
        )


def load_batches(tokenizers: TokenizerPair, *, count: int, seed: int) -> tuple[list[Batch], float]:
    """`count` length-bucketed 128-sentence batches and the padded share of random batches."""
    pairs = encoded_pairs(tokenizers, "train")
    stream = bucketed_batches(pairs, batch_size=128, seed=seed)
    batches = [next(stream) for _ in range(count)]
    random_batch = make_batch(random.Random(seed).sample(pairs, 128))
    return batches, padded_share(random_batch)


def padded_share(batch: Batch) -> float:
    """Fraction of target positions that are padding."""
    return float((batch[3] == PAD_ID).float().mean())


def tokenizers_for(model_path: str | None) -> TokenizerPair:
    """The model's tokenizers if one is given, else 8k SentencePiece models trained (and cached)."""
    if model_path:
        return load_checkpoint(model_path).tokenizers
    paths = [TOKENIZER_CACHE / f"spm{VOCAB_SIZE // 1000}k.{lang}.model" for lang in ("de", "en")]
    if all(path.exists() for path in paths):
        return TokenizerPair(*(Tokenizer.load(str(path)) for path in paths))
    print(f"training {VOCAB_SIZE} SentencePiece models on Multi30k (cached in {paths[0].parent})")
    tokenizers = TokenizerPair.train(data.read_pairs("train"), vocab_size=VOCAB_SIZE)
    TOKENIZER_CACHE.mkdir(parents=True, exist_ok=True)
    tokenizers.src.save(str(paths[0]))
    tokenizers.tgt.save(str(paths[1]))
    return tokenizers


def measure(runs: list[Variant], batches: list[Batch], *, rounds: int, steps: int) -> None:
    """Warm every variant up, then time `steps` batches per variant per round, interleaved."""
    for variant in runs:
        wait_for_quiet()
        variant.run(batches[:1])
        variant.times.clear()
    for round_index in range(rounds):
        chunk = batches[(round_index * steps) % len(batches) :][:steps]
        for variant in runs:
            wait_for_quiet()
            variant.run(chunk)
        print(
            f"round {round_index + 1}/{rounds}: "
            + ", ".join(f"{v.name} {v.times[-1]:.3f} s/step" for v in runs),
            flush=True,
        )


def summarise(
    runs: list[Variant], batches: list[Batch], config: ModelConfig, random_pad: float
) -> str:
    """The Markdown body: ceiling, per-variant throughput, ratios."""
    wait_for_quiet()
    fp32, bf16 = ceiling.matmul_flops(), ceiling.matmul_flops(dtype=torch.bfloat16)
    tgt = sum(int((b[3] != PAD_ID).sum()) for b in batches) / len(batches)
    src = sum(int(b[1].sum()) for b in batches) / len(batches)
    flops = ceiling.training_flops(config, src_tokens=round(src), tgt_tokens=round(tgt))
    limit = fp32 / flops * tgt
    base = runs[0].times
    rows = [
        [
            v.name,
            f"{tgt / median(v.times):,.0f}",
            f"{median(v.times) * 1e3:.0f}",
            f"{flops / median(v.times) / 1e9:.0f}",
            f"{flops / median(v.times) / fp32:.0%}",
            f"{median([b / t for b, t in zip(base, v.times, strict=True)]):.2f}x",
        ]
        for v in runs
    ]
    header = [
        "variant",
        "target tok/s",
        "ms/step",
        "GFLOP/s",
        "% of fp32 ceiling",
        "vs textbook (median of per-round ratios)",
    ]
    return "\n\n".join(
        [
            ceiling.describe(fp32, bf16),
            f"Batches: 128 sentences, {src:.0f} source / {tgt:.0f} target tokens on average "
            f"(length-bucketed: {padded_share(batches[0]):.0%} target padding in the first; "
            f"random batches would have {random_pad:.0%}). Training FLOPs = 3 x forward matmuls "
            f"= {flops / tgt / 1e6:.1f} MFLOP per target token, so the fp32 ceiling is "
            f"{limit:,.0f} target tokens/s.",
            table(header, rows),
        ]
    )


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="use this checkpoint's tokenizers (default: 8k, trained)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md")
    args = parser.parse_args()
    data.require("train")
    wait_for_quiet()
    tokenizers = tokenizers_for(args.model)
    config = ModelConfig(tokenizers.src.vocab_size, tokenizers.tgt.vocab_size)
    batches, random_pad = load_batches(tokenizers, count=args.rounds * args.steps + 1, seed=0)
    runs = list(variants(config))
    measure(runs, batches, rounds=args.rounds, steps=args.steps)
    body = summarise(runs, batches, config, random_pad)
    print(body)
    if not args.no_write:
        report.write_section("Training throughput", body)


if __name__ == "__main__":
    main()
