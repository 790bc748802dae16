"""The decoder's looked-up input gates against multiplying them at every step (fp32 search).

An LSTM decoder decoding without gradients takes its bottom layer's input gates from a
[vocabulary, 4H] table (`Decoder._input_gates`) instead of multiplying the embedding by W_ih at
every step. This times `Translator.search` of test_2016_flickr both ways in one process,
interleaved, best of `--repeats` each: greedy and beam 5, over the whole vocabulary and with
a shortlist learnt from the training text (as `bench.shortlist` does), at `translate`'s default
batches and in batches of 8 (a server at concurrency 8). It counts the outputs the two ways
share.

    python -m bench.input_gates --model runs/quality/best.pt
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from bench.report import publish
from bench.shortlist import learn
from bench.timing import table, wait_for_quiet
from seq2seq import SearchOptions, Translator
from seq2seq.checkpoint import Checkpoint, load_checkpoint
from seq2seq.model import Decoder
from training.config import default_data_dir
from training.data import read_lines, split_file

SECTION = "Decoder input gates looked up (Multi30k de->en)"
HEADER = ["search", "vocabulary", "batch", "multiplied s", "looked up s", "speed-up",
          "same output"]  # fmt: skip


@contextmanager
def multiplied() -> Iterator[None]:
    """Every decoder multiplies its input gates at each step, as before the table."""
    looked_up = Decoder._input_gates
    Decoder._input_gates = lambda self, weights: None  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Decoder._input_gates = looked_up  # type: ignore[method-assign]


Outputs = list[list[list[int]]]
"""Per sentence, the tokens of each hypothesis."""


def search(
    translator: Translator, sources: list[list[int]], beam: int, batch: int
) -> tuple[float, Outputs]:
    """Seconds of searching `sources` in batches of `batch`, and the outputs."""
    started, outputs = time.perf_counter(), []
    for first in range(0, len(sources), batch):
        outputs += translator.search(sources[first : first + batch], SearchOptions(beam_size=beam))
    return time.perf_counter() - started, [[hyp.tokens for hyp in hyps] for hyps in outputs]


def measure(translator: Translator, sources: list[list[int]], beam: int, batch: int,
            repeats: int, *, before: Callable[[], AbstractContextManager[None]] = multiplied,
            ) -> tuple[float, float, float]:  # fmt: skip
    """Best seconds within `before()` (the other way: by default, gates multiplied) and as
    the code is, taking turns, and the share of equal outputs."""
    times: dict[bool, list[float]] = {False: [], True: []}
    outputs: dict[bool, Outputs] = {}
    for _ in range(repeats):
        for now in (False, True):
            with nullcontext() if now else before():
                seconds, outputs[now] = search(translator, sources, beam, batch)
            times[now].append(seconds)
    same = sum(a == b for a, b in zip(outputs[False], outputs[True], strict=True))
    return min(times[False]), min(times[True]), same / len(sources)


def prepare(model: Path, data: Path) -> tuple[Checkpoint, list[str]]:
    """The model with a shortlist learnt from the training text (as `bench.shortlist` does),
    and test_2016_flickr's source lines."""
    checkpoint = load_checkpoint(model)
    checkpoint.shortlist, _ = learn(model, data, best=10, frequent=100)
    return checkpoint, read_lines(split_file(data, "test_2016_flickr.de"))


def search_rows(
    checkpoint: Checkpoint, texts: list[str], repeats: int,
    before: Callable[[], AbstractContextManager[None]] = multiplied,
) -> list[list[object]]:  # fmt: skip
    """`measure` for greedy and beam 5, over the whole vocabulary and the shortlist, at
    `translate`'s batches and in batches of 8: one table row each."""
    rows: list[list[object]] = []
    for shortlist in (False, True):
        translator = Translator.from_checkpoint(checkpoint, device="cpu", shortlist=shortlist)
        sources = translator.encode(texts)
        for beam in (1, 5):
            for batch in (len(sources), 8):
                slow, fast, same = measure(translator, sources, beam, batch, repeats,
                                           before=before)  # fmt: skip
                rows.append(["greedy" if beam == 1 else f"beam {beam}",
                             "shortlist" if shortlist else "whole", batch, f"{slow:.2f}",
                             f"{fast:.2f}", f"**{slow / fast:.2f}x**", f"{same:.1%}"])  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/quality/best.pt"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    data = default_data_dir()
    if not args.model.is_file() or not data.is_dir():
        print(f"skipped: needs {args.model} and Multi30k in {data}")
        return 0
    checkpoint, texts = prepare(args.model, data)
    wait_for_quiet()
    load_before = os.getloadavg()[0]
    rows = search_rows(checkpoint, texts, args.repeats)
    body = (
        f"Model `{args.model}`, fp32, {len(texts):,} sentences of test_2016_flickr, "
        f"`Translator.search` in one process (no `import torch` or loading), best of "
        f"{args.repeats}, the two ways interleaved. Batch {len(texts):,}: `translate`'s own "
        f"batches (at most 128 sentences, 64 with a shortlist). Load average {load_before:.2f} "
        f"before, {os.getloadavg()[0]:.2f} after.\n\n{table(HEADER, rows)}"
    )
    publish(SECTION, body, write=args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
