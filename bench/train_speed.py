"""Training throughput: target tokens per second of forward + backward + Adam on Multi30k batches.

Batches hold 128 sentences of real Multi30k de->en lengths (8k SentencePiece). Each variant
is timed in interleaved rounds so that the shared machine's noise falls on all of them
alike; figures are medians over rounds.

Variants: the textbook step (128-sentence batches grouped by target length, a packed
encoder, logits at every padded position, foreach Adam) and the library's step as
`training` runs it (`TokenBatchSampler` batches of at most 128 sentences, `token_loss` on
the real target tokens only, fused Adam), in fp32, under CPU bf16 autocast where the CPU
has bfloat16 instructions, and under CUDA AMP when a GPU is present.
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
from bench.reference_model import OWN_MODEL, VOCAB_SIZE, bucketed_batches, encoded_pairs, make_batch
from bench.timing import clock, median, table, wait_for_quiet
from seq2seq import PAD_ID, ModelConfig, Seq2Seq, Tokenizer, TokenizerPair, load_checkpoint
from seq2seq.model import reverse_padded
from seq2seq.precision import cpu_bf16_autocast_works
from training.batching import Batch, TokenBatchSampler, collate
from training.loss import token_loss

LossFn = Callable[[Seq2Seq, Batch], Tensor]
TOKENIZER_CACHE = OWN_MODEL.parent


def packed_encode(model: Seq2Seq, src: Tensor, src_len: Tensor) -> tuple[Tensor, Tensor]:
    """The textbook encoder: one nn.LSTM call over a packed sequence."""
    encoder = model.encoder
    embedded = encoder.dropout(encoder.embedding(reverse_padded(src, src_len)))  # [B, S, E]
    packed = pack_padded_sequence(embedded, src_len.cpu(), batch_first=True, enforce_sorted=False)
    _, state = encoder.rnn(packed)  # [L, B, H] each
    return state  # type: ignore[no-any-return]


def plain_loss(model: Seq2Seq, batch: Batch) -> Tensor:
    """The textbook step: packed encoder, logits at every position, padding ignored by the loss."""
    state = packed_encode(model, batch.src, batch.src_len)  # [L, B, H] each
    logits, _ = model.decoder(batch.tgt_in, state)  # [B, T, V]
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), batch.tgt_out.flatten(), ignore_index=PAD_ID
    )


@dataclass
class Variant:
    """One way to train: a model with its optimizer, loss, autocast and measured step times."""

    name: str
    model: Seq2Seq
    loss_fn: LossFn
    batches: list[Batch]
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

    def run(self, first: int, count: int) -> None:
        """Time `count` of this variant's batches from `first` (wrapping) and record the
        seconds per target token."""
        chosen = (self.batches * 2)[first % len(self.batches) :][:count]
        moved = [batch.to(self.device) for batch in chosen]
        start = clock(self.device)
        for batch in moved:
            self.step(batch)
        self.times.append((clock(self.device) - start) / sum(b.num_tokens for b in chosen))


def variants(config: ModelConfig, textbook: list[Batch], library: list[Batch]) -> Iterator[Variant]:
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
    yield Variant("textbook fp32", model(), plain_loss, textbook, cpu, no_autocast, False)
    yield Variant("library fp32", model(), token_loss, library, cpu, no_autocast, True)
    if cpu_bf16_autocast_works():
        yield Variant("library bf16 autocast", model(), token_loss, library, cpu, bf16, True)
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        amp = lambda: torch.autocast("cuda", dtype=half)  # noqa: E731
        name = f"CUDA AMP ({half})".replace("torch.", "")
        yield Variant(name, model(), token_loss, library, gpu, amp, True)


def load_batches(
    tokenizers: TokenizerPair, *, count: int, seed: int
) -> tuple[list[Batch], list[Batch], float]:
    """`count` textbook and library batches of 128 sentences at most, and the padded share of
    random batches. Both are drawn from the same shuffled stream of batches of the corpus."""
    pairs = encoded_pairs(tokenizers, "train")
    stream = bucketed_batches(pairs, batch_size=128, seed=seed)
    textbook = [Batch(*next(stream)) for _ in range(count)]
    lengths = [(len(src), len(tgt)) for src, tgt in pairs]
    sampler = TokenBatchSampler(lengths, batch_tokens=1 << 30, max_sentences=128, seed=seed)
    chosen = [indices for indices in sampler if len(indices) == 128][:count]
    library = [collate(*zip(*(pairs[i] for i in indices), strict=True)) for indices in chosen]
    random_batch = Batch(*make_batch(random.Random(seed).sample(pairs, 128)))
    return textbook, library, padded_share(random_batch)


def padded_share(batch: Batch) -> float:
    """Fraction of target positions that are padding."""
    return float((batch.tgt_out == PAD_ID).float().mean())


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


def measure(runs: list[Variant], *, rounds: int, steps: int) -> None:
    """Warm every variant up, then time `steps` batches per variant per round, interleaved."""
    for variant in runs:
        wait_for_quiet()
        variant.run(0, 1)
        variant.times.clear()
    for round_index in range(rounds):
        for variant in runs:
            wait_for_quiet()
            variant.run(1 + round_index * steps, steps)
        print(
            f"round {round_index + 1}/{rounds}: "
            + ", ".join(f"{v.name} {1 / v.times[-1]:,.0f} tok/s" for v in runs),
            flush=True,
        )


def summarise(runs: list[Variant], config: ModelConfig, random_pad: float) -> str:
    """The Markdown body: ceiling, per-variant throughput, ratios."""
    wait_for_quiet()
    fp32 = ceiling.matmul_flops()
    bf16 = ceiling.bf16_matmul_flops()
    library = runs[1].batches
    tgt = sum(batch.num_tokens for batch in library)
    src = sum(int(batch.src_len.sum()) for batch in library)
    per_token = ceiling.training_flops(config, src_tokens=src, tgt_tokens=tgt) / tgt
    base = runs[0].times
    rows = [
        [
            v.name,
            f"{1 / median(v.times):,.0f}",
            f"{per_token / median(v.times) / 1e9:.0f}",
            f"{per_token / median(v.times) / fp32:.0%}",
            f"{median([b / t for b, t in zip(base, v.times, strict=True)]):.2f}x",
        ]
        for v in runs
    ]
    header = [
        "variant",
        "target tok/s",
        "GFLOP/s",
        "% of fp32 ceiling",
        "vs textbook (median of per-round ratios)",
    ]
    skipped = (
        ""
        if cpu_bf16_autocast_works()
        else (
            " This CPU has no bfloat16 instructions (oneDNN cannot build a bf16 LSTM), so there is"
            " no bf16 autocast row: `train.precision: bf16` stops with that reason on such CPUs."
        )
    )
    return "\n\n".join(
        [
            ceiling.describe(fp32, bf16),
            f"Batches of at most 128 sentences, {src / tgt:.2f} source tokens per target token."
            f" Textbook: grouped by target length, packed encoder,"
            f" {padded_share(runs[0].batches[0]):.0%} target padding in the first batch."
            f" Library: `TokenBatchSampler` (source length first), {padded_share(library[0]):.0%}"
            f" target padding in the first batch, never projected. Random batches would have"
            f" {random_pad:.0%}. Training FLOPs = 3 x forward matmuls ="
            f" {per_token / 1e6:.1f} MFLOP per target token, so the fp32 ceiling is"
            f" {fp32 / per_token:,.0f} target tokens/s.{skipped}",
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
    count = args.rounds * args.steps + 1
    textbook, library, random_pad = load_batches(tokenizers, count=count, seed=0)
    runs = list(variants(config, textbook, library))
    measure(runs, rounds=args.rounds, steps=args.steps)
    body = summarise(runs, config, random_pad)
    print(body)
    if not args.no_write:
        report.write_section("Training throughput", body)


if __name__ == "__main__":
    main()
