"""Decoding speed of a loaded model on a Multi30k test set: text in, text out, as users call it.

Greedy and beam 5 at the default batch (128 sentences, length-sorted) and at batch size 1, in
fp32, bf16 and int8, beside the textbook loop (`bench.plain`: one sentence at a time, nn.LSTM
per step) on the same weights. Also BLEU of each precision, Translator.load time and memory.
Every figure is a median over interleaved repeats; ratios are from the same run.
Run: python -m bench.decode_speed [--model PATH] [--repeats 3] [--subset 200]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import sacrebleu
import torch
from torch import Tensor

from bench import ceiling, data, plain, report
from bench.reference_model import find_model
from bench.timing import median, peak_rss_mb, table, wait_for_quiet
from seq2seq import SearchOptions, Seq2Seq, Translator
from seq2seq.model import State
from seq2seq.precision import Precision, cpu_bf16_autocast_works
from seq2seq.search import max_lengths

STARTUP = (
    "import time, resource; start = time.perf_counter(); from seq2seq import Translator; "
    "imported = time.perf_counter(); Translator.load({path!r}, device='cpu'); "
    "print(imported - start, time.perf_counter() - imported, "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
)

PRECISIONS: tuple[Precision, ...] = (
    ("fp32", "bf16", "int8") if cpu_bf16_autocast_works() else ("fp32", "int8")
)
"""bf16 only where the CPU has bfloat16 instructions: elsewhere it is emulated and very slow."""


@dataclass
class Case:
    """One measured way of decoding a list of texts."""

    name: str
    translate: Callable[[], list[str]]
    texts: list[str]
    references: list[str]
    precision: str = "fp32"
    threads: int = 0
    """Torch intra-op threads for this case; 0 keeps the process default."""
    times: list[float] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    row_steps: int = 0
    tokens: int = 0


@contextmanager
def counting(translator: Translator) -> Iterator[list[int]]:
    """Count decoder rows stepped (beams included) while inside; the counter is a 1-list."""
    model, counter = translator.model, [0]
    step = model.decode_step

    def counted(tokens: Tensor, state: State) -> tuple[Tensor, State]:
        counter[0] += tokens.numel()
        return step(tokens, state)

    model.decode_step = counted  # type: ignore[method-assign,assignment]
    try:
        yield counter
    finally:
        del model.decode_step


def library_case(
    translator: Translator, pairs: tuple[list[str], list[str]], *, beam: int, batch: int
) -> Case:
    """Translator.translate on the source texts of `pairs` with this beam and batch size."""
    texts, references = pairs
    run = lambda: translator.translate(texts, SearchOptions(beam_size=beam), batch_size=batch)  # noqa: E731
    name = f"Translator, {'greedy' if beam == 1 else f'beam {beam}'}, batch {batch}"
    return Case(name, run, texts, references, translator.precision)


def one_model(translator: Translator) -> Seq2Seq:
    """The translator's model: the textbook loop and the FLOP counts need one, not an ensemble."""
    if not isinstance(translator.model, Seq2Seq):
        raise SystemExit("decode_speed measures one model; give it one model file, no ensemble")
    return translator.model


def textbook_case(translator: Translator, pairs: tuple[list[str], list[str]]) -> Case:
    """The one-sentence-at-a-time loop of `bench.plain`, with Translator's length limits."""

    texts, references = pairs

    def run() -> list[str]:
        sources = translator.encode(texts)
        lengths = torch.tensor([max(len(ids), 1) for ids in sources])
        limits = max_lengths(lengths, a=1.5, b=10, cap=256).tolist()
        ids = plain.translate_all(one_model(translator), sources, limits)
        return translator.tokenizers.tgt.decode(ids)

    return Case("textbook loop, greedy, batch 1", run, texts, references)


@contextmanager
def threads(count: int) -> Iterator[None]:
    """Run with `count` torch threads (0: unchanged), restoring the previous setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count or previous)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def timed(case: Case, translator: Translator, *, first: bool) -> float:
    """Seconds of one run of `case` (outside any quiet window, at its thread count).

    The first run also counts decoder rows and keeps the outputs, at no measurable cost.
    """
    wait_for_quiet()
    with counting(translator) as counter, threads(case.threads):
        start = time.perf_counter()
        outputs = case.translate()
        elapsed = time.perf_counter() - start
    if first:
        case.outputs, case.row_steps = outputs, counter[0]
        case.tokens = sum(len(ids) for ids in translator.tokenizers.tgt.encode(outputs))
    return elapsed


def measure(cases: list[Case], translators: dict[str, Translator], repeats: int) -> None:
    """A short warm-up of every precision, then `repeats` interleaved timed runs of each case."""
    for translator in translators.values():
        translator.translate(cases[0].texts[:8], SearchOptions(beam_size=5))
    for index in range(repeats):
        for case in cases:
            translator = translators[case.precision]
            case.times.append(timed(case, translator, first=index == 0))
        print(
            f"repeat {index + 1}/{repeats}: "
            + ", ".join(f"{c.name} {c.times[-1]:.2f}s" for c in cases),
            flush=True,
        )


def startup(path: str) -> tuple[float, float, float]:
    """Import seconds, Translator.load seconds and peak RSS MiB of a fresh process."""
    wait_for_quiet()
    result = subprocess.run(
        [sys.executable, "-c", STARTUP.format(path=path)],
        capture_output=True,
        text=True,
        check=True,
    )
    imported, loaded, rss = (float(x) for x in result.stdout.split()[-3:])
    return imported, loaded, rss


def row(
    case: Case, translator: Translator, fp32_flops: float, textbook: dict[int, float]
) -> list[str]:
    """Time, speed, share of the fp32 matmul ceiling, speed-up over the textbook loop, BLEU.

    The speed-up is against the textbook loop run at the same thread setting.
    """
    time_s = median(case.times)
    src_tokens = sum(len(ids) for ids in translator.encode(case.texts))
    config = one_model(translator).config
    flops = ceiling.decoding_flops(config, src_tokens=src_tokens, row_steps=case.row_steps)
    speed = len(case.texts) / time_s
    return [
        case.name,
        case.precision,
        f"{len(case.texts)}",
        f"{time_s:.2f}",
        f"{speed:,.1f}",
        f"{case.tokens / time_s:,.0f}",
        f"{flops / time_s / 1e9:.0f}",
        f"{flops / time_s / fp32_flops:.0%}",
        f"{speed / textbook[case.threads]:.1f}x",
        f"{bleu(case):.2f}",
    ]


def comparisons(cases: list[Case]) -> str:
    """Speed ratio and BLEU difference of each reduced precision against fp32, case by case."""
    by_key = {(c.name, c.precision): c for c in cases}
    lines = []
    for (name, precision), case in by_key.items():
        base = by_key.get((name, "fp32"))
        if precision == "fp32" or base is None:
            continue
        speed = median([b / t for b, t in zip(base.times, case.times, strict=True)])
        delta = bleu(case) - bleu(base)
        lines.append(
            f"- {precision} vs fp32, {name}: {speed:.2f}x the speed (median of per-repeat "
            f"ratios), BLEU {delta:+.2f}"
        )
    return "\n".join(lines)


def bleu(case: Case) -> float:
    """Corpus BLEU of a case's outputs against its references."""
    return float(sacrebleu.corpus_bleu(case.outputs, [case.references]).score)


def summarise(cases: list[Case], translator: Translator, startup_figures: tuple[float, ...]) -> str:
    """The Markdown body of the section."""
    wait_for_quiet()
    fp32, bf16 = ceiling.matmul_flops(), ceiling.bf16_matmul_flops()
    textbook = {
        c.threads: len(c.texts) / median(c.times) for c in cases if c.name.startswith("textbook")
    }
    header = [
        "case",
        "precision",
        "sentences",
        "seconds",
        "sentences/s",
        "target tok/s",
        "GFLOP/s",
        "% of fp32 ceiling",
        "vs textbook",
        "BLEU",
    ]
    imported, loaded, rss = startup_figures
    config = one_model(translator).config
    return "\n\n".join(
        [
            ceiling.describe(fp32, bf16),
            f"FLOPs counted: {ceiling.encoder_flops(config) / 1e6:.1f} MFLOP per source token, "
            f"{ceiling.decoder_flops(config) / 1e6:.1f} MFLOP per decoder row step "
            "(beams included, "
            "counted in the first run). Batch-1 and textbook rows use the first sentences only; "
            "their speed-up is against the textbook loop at the same thread setting.",
            table(header, [row(c, translator, fp32, textbook) for c in cases]),
            comparisons(cases),
            f"Startup in a fresh process: import {imported:.2f} s, Translator.load {loaded:.2f} s, "
            f"peak RSS after load {rss:,.0f} MiB. Peak RSS of this benchmark process "
            f"({', '.join(PRECISIONS)} loaded): {peak_rss_mb():,.0f} MiB.",
        ]
    )


def build_cases(
    translators: dict[str, Translator], full: tuple[list[str], list[str]], subset: int
) -> list[Case]:
    """Default-batch cases on the whole set, batch-1 cases and the textbook loop on a subset."""
    small = (full[0][:subset], full[1][:subset])
    cases = [textbook_case(translators["fp32"], small)]
    cases.append(textbook_case(translators["fp32"], small))
    cases[-1].name, cases[-1].threads = f"{cases[-1].name}, 1 thread", 1
    for precision in translators:
        for beam in (1, 5):
            cases.append(library_case(translators[precision], full, beam=beam, batch=128))
    cases.append(library_case(translators["fp32"], small, beam=5, batch=1))
    for precision in ("fp32", "int8"):
        cases.append(library_case(translators[precision], small, beam=1, batch=1))
        one_thread = library_case(translators[precision], small, beam=1, batch=1)
        one_thread.name, one_thread.threads = f"{one_thread.name}, 1 thread", 1
        cases.append(one_thread)
    return cases


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="checkpoint (default: the trained model found, see bench/)")
    parser.add_argument("--split", default="test_2016_flickr")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--subset", type=int, default=100, help="sentences for batch-1 cases")
    parser.add_argument("--limit", type=int, help="use only the first N sentences (smoke test)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md")
    args = parser.parse_args()
    data.require(args.split)
    wait_for_quiet()
    path = args.model or str(find_model())
    print(f"model: {path}")
    startup_figures = startup(path)
    translators: dict[str, Translator] = {p: Translator.load(path, "cpu", p) for p in PRECISIONS}
    full = (
        data.read_lines(args.split, "de")[: args.limit],
        data.read_lines(args.split, "en")[: args.limit],
    )
    cases = build_cases(translators, full, args.subset)
    measure(cases, translators, args.repeats)
    body = f"Model: `{path}`, split {args.split}.\n\n" + summarise(
        cases, translators["fp32"], startup_figures
    )
    print(body)
    if not args.no_write:
        report.write_section("Decoding speed", body)


if __name__ == "__main__":
    main()
