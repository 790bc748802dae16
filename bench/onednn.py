"""fp32 output layers through oneDNN against MKL's sgemm: products, training steps, searches.

`seq2seq.onednn.linear` runs the output layer's fp32 products on the CPU through oneDNN
instead of MKL (on CPUs that are not Intel's, where MKL takes a generic code path). This
measures that in one process, the two ways taking turns (`onednn_enabled(False)` is the
old way):

1. the products alone: a 2048^3 multiply, and the output layer's three products in a
   training step (forward, input gradient, weight gradient) at hidden 256 and 512;
2. whole fp32 training steps of the preset and of 2 x 512 (forward, loss, backward,
   clipping, Adam) on a batch of the preset's size, and how far the two losses lie apart;
3. fp32 `Translator.search` of test_2016_flickr, greedy and beam 5, over the whole
   vocabulary and a shortlist, at `translate`'s batches and in batches of 8, with the share
   of outputs that come out the same.

    python -m bench.onednn --model runs/quality/best.pt
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from bench import input_gates
from bench.report import publish
from bench.timing import table, wait_for_quiet
from seq2seq import ModelConfig, Seq2Seq
from seq2seq.allocator import keep_freed_memory
from seq2seq.onednn import linear, onednn_enabled, onednn_works
from training.batching import Batch
from training.config import default_data_dir, load_config
from training.loss import token_loss
from training.precision import probe_batch

SECTION = "fp32 output layer through oneDNN (Multi30k de->en)"
ROWS = 1504  # target tokens of the preset's batch: 94 sentences of 16 pieces
SIZES = {"preset": (256, 1), "2x512": (512, 2)}
PRESET = Path(__file__).resolve().parent.parent / "training/configs/multi30k_de_en.yaml"
SEARCH_HEADER = ["search", "vocabulary", "batch", "MKL s", "oneDNN s", "speed-up", "same output"]


def interleaved(work: Callable[[bool], object], rounds: int) -> dict[bool, float]:
    """Median seconds of `work(on)` within `onednn_enabled(on)` (False: MKL, True: oneDNN),
    taking turns after one warm-up round."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds + 1):
        for on, seconds in times.items():
            with onednn_enabled(on):
                started = time.perf_counter()
                work(on)
                seconds.append(time.perf_counter() - started)
    return {on: statistics.median(seconds[1:]) for on, seconds in times.items()}


def product_rows(rounds: int) -> list[list[object]]:
    """GFLOP/s of each product both ways: `linear(a, b)` is a @ b.T."""
    square = torch.randn(2048, 2048)  # [2048, 2048]
    products = [("2048^3", square, square)]
    for hidden in (256, 512):
        states, weight = torch.randn(ROWS, hidden), torch.randn(5000, hidden)  # [N, H], [V, H]
        grad = torch.randn(ROWS, 5000)  # [N, V]
        products += [
            (f"logits, hidden {hidden}", states, weight),  # [N, V]
            (f"input gradient, hidden {hidden}", grad, weight.t()),  # [N, H]
            (f"weight gradient, hidden {hidden}", states.t(), grad.t()),  # [H, V]
        ]
    rows: list[list[object]] = []
    for name, a, b in products:
        flops = 2.0 * a.shape[0] * a.shape[1] * b.shape[0]
        seconds = interleaved(lambda on, a=a, b=b: linear(a, b), rounds)  # type: ignore[misc]
        rows.append([name, *(f"{flops / seconds[on] / 1e9:.0f}" for on in (False, True)),
                     f"**{seconds[False] / seconds[True]:.2f}x**"])  # fmt: skip
    return rows


def step_rows(rounds: int) -> list[list[object]]:
    """Milliseconds of a whole fp32 training step both ways, and how far apart their losses
    and output-layer gradients lie."""
    rows: list[list[object]] = []
    loop = load_config(PRESET).train  # the preset's batch: as many rows as its tokens allow
    batch = probe_batch(ModelConfig(src_vocab_size=5000, tgt_vocab_size=5000), loop)
    for name, (hidden, layers) in SIZES.items():
        torch.manual_seed(0)
        config = ModelConfig(src_vocab_size=5000, tgt_vocab_size=5000, hidden_size=hidden,
                             num_layers=layers, dropout=0.1)  # fmt: skip
        model = Seq2Seq(config).train()
        optimizer = torch.optim.Adam(model.parameters(), fused=True)
        seconds = interleaved(partial(train_step, model, optimizer, batch), rounds)
        loss, grad = agreement(model.eval(), batch)
        rows.append([name, f"{seconds[False] * 1e3:.0f}", f"{seconds[True] * 1e3:.0f}",
                     f"**{seconds[False] / seconds[True]:.2f}x**", f"{loss:.1e}",
                     f"{grad:.1e}"])  # fmt: skip
    return rows


def train_step(model: Seq2Seq, optimizer: torch.optim.Optimizer, batch: Batch, _: bool) -> None:
    """One step as the training loop takes it: loss, backward, clipping, Adam."""
    token_loss(model, batch, label_smoothing=0.1).backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def agreement(model: Seq2Seq, batch: Batch) -> tuple[float, float]:
    """Relative distances between the two ways' loss and output-layer weight gradient."""
    losses, grads = [], []
    for on in (False, True):
        with onednn_enabled(on):
            loss = token_loss(model, batch, label_smoothing=0.1)
            loss.backward()  # type: ignore[no-untyped-call]
        grad = model.decoder.output.weight.grad
        assert grad is not None  # backward just ran
        losses.append(loss.item())
        grads.append(grad)
        model.zero_grad(set_to_none=True)
    distance = (grads[0] - grads[1]).norm() / grads[0].norm()
    return abs(losses[0] - losses[1]) / losses[0], distance.item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/quality/best.pt"))
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds of products, steps")
    parser.add_argument("--repeats", type=int, default=3, help="searches each way, best taken")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    if not onednn_works():
        print("skipped: this build of torch has no oneDNN matmul that matches F.linear")
        return 0
    data = default_data_dir()
    if not args.model.is_file() or not data.is_dir():
        print(f"skipped: needs {args.model} and Multi30k in {data}")
        return 0
    keep_freed_memory()  # as training and serving processes do
    checkpoint, texts = input_gates.prepare(args.model, data)
    wait_for_quiet()
    load_before = os.getloadavg()[0]
    products, steps = product_rows(args.rounds), step_rows(args.rounds)
    searches = input_gates.search_rows(
        checkpoint, texts, args.repeats, before=lambda: onednn_enabled(False)
    )
    body = "\n\n".join(
        [
            f"fp32 on the CPU, {torch.get_num_threads()} threads, one process, the two ways taking "
            f"turns (MKL: `SEQ2SEQ_ONEDNN=0`, the way before). Products and steps: medians of "
            f"{args.rounds} rounds after one of warm-up; searches: model `{args.model}`, "
            f"1,000 sentences, best of {args.repeats}. Load average {load_before:.2f} before, "
            f"{os.getloadavg()[0]:.2f} after.",
            f"Products ({ROWS} target tokens, 5,000 output rows), GFLOP/s:\n\n"
            + table(["product", "MKL", "oneDNN", "speed-up"], products),
            f"Training steps (forward, loss, backward, clipping, Adam; {ROWS} target tokens), ms; "
            "relative distance of the loss and of the output layer's weight gradient:\n\n"
            + table(["size", "MKL ms", "oneDNN ms", "speed-up", "loss", "gradient"], steps),
            "Searches, seconds:\n\n" + table(SEARCH_HEADER, searches),
        ]
    )
    publish(SECTION, body, write=args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
