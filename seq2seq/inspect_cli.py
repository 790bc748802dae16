"""`seq2seq inspect`: one sentence through the model, gate by gate and unit by unit.

Prints the translation, every decoder step's choice with its likeliest alternatives, and the
units whose cell (or `--signal`) tracks a property of the tokens (`--by`, over the sentence
and the lines of `--pool`); `--out page.html` writes a self-contained page of heatmaps,
`--out heatmap.png` a picture of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from seq2seq.introspect import GRU_SIGNALS, LSTM_SIGNALS, MAX_TOKENS, Inspection
from seq2seq.search import SearchOptions
from seq2seq.translator import Translator
from seq2seq.units import PROPERTIES, UnitCorrelation, check_property, rank_units

SPARKS = "▁▂▃▄▅▆▇█"
SUFFIXES = (".html", ".png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seq2seq inspect`."""
    parser.add_argument("text", help="one sentence in the model's source language")
    parser.add_argument("--model", required=True, help="checkpoint file (.pt)")
    parser.add_argument("--out", help="write a report: page.html (self-contained) or heatmap.png")
    parser.add_argument("--by", default="position", help=f"property: {', '.join(PROPERTIES)}")
    parser.add_argument("--top", type=int, default=10, help="units listed [10]")
    parser.add_argument(
        "--signal",
        choices=sorted({*LSTM_SIGNALS, *GRU_SIGNALS}),
        help="what is ranked and drawn [cell, or hidden for a GRU, which has no cell]",
    )
    parser.add_argument("--beam-size", type=int, default=1, help="1 is greedy search [1]")
    parser.add_argument("--top-k", type=int, default=5, help="alternatives per decoder step [5]")
    parser.add_argument(
        "--max-tokens", type=int, default=MAX_TOKENS, help=f"source subwords at most [{MAX_TOKENS}]"
    )
    parser.add_argument(
        "--pool",
        help="rank units over this file's sentences too (one a line): over one sentence "
        "position and remaining are the same line reversed, over several they differ",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto [cpu]")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads [1]: inspecting runs many small steps, which more threads slow down",
    )


def run(args: argparse.Namespace) -> int:
    """Inspect, print the summary, and write the report if --out asks for one."""
    check_property(args.by)
    if args.top < 1:
        raise ValueError(f"--top must be at least 1, got {args.top}")
    if args.out and Path(args.out).suffix.lower() not in SUFFIXES:
        raise ValueError(f"--out must end in .html or .png, got {args.out!r}")
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    pool = _pool_lines(args.pool) if args.pool else []
    translator = Translator.load(args.model, device=args.device)
    search = SearchOptions(beam_size=args.beam_size)
    how = {"top_k": args.top_k, "max_tokens": args.max_tokens}
    inspection = translator.inspect(args.text, search, **how)
    if args.signal is None:
        args.signal = "cell" if "cell" in inspection.signals else "hidden"
    pooled = [inspection, *(translator.inspect(line, search, **how) for line in pool)]
    units = rank_units(pooled, args.by, signal=args.signal, top=args.top)
    print(summary(inspection, units, by=args.by, signal=args.signal, sentences=len(pooled)))
    if args.out:
        _write(inspection, units, args)
        print(f"wrote {args.out}")
    return 0


def _pool_lines(path: str) -> list[str]:
    """The non-empty lines of `path` (OSError when it cannot be read)."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip()]
    if not lines:
        raise ValueError(f"--pool {path}: no sentences in the file")
    return lines


def _write(inspection: Inspection, units: list[UnitCorrelation], args: argparse.Namespace) -> None:
    from seq2seq.inspect_report import write_html, write_png

    if Path(args.out).suffix.lower() == ".png":
        write_png(inspection, args.out, signal=args.signal)
        return
    model = Path(args.model).name
    write_html(inspection, args.out, units=units, by=args.by, signal=args.signal, model=model)


def summary(
    inspection: Inspection,
    units: Sequence[UnitCorrelation],
    *,
    by: str,
    signal: str,
    sentences: int = 1,
) -> str:
    """The translation, the decoder's choices and the top units table, as plain text."""
    order = "reversed" if inspection.reverse_source else "in order"
    lines = [
        f"source ({len(inspection.encoder.tokens)} subwords, read {order}): {inspection.text}",
        f"translation (beam size {inspection.beam_size}): {inspection.translation}",
        "",
        "decoder steps: read -> chosen (probability) | likeliest next tokens",
    ]
    for number, (read, step) in enumerate(
        zip(inspection.decoder.tokens, inspection.steps, strict=True)
    ):
        others = ", ".join(f"{item.token} {item.probability:.2f}" for item in step.top)
        chosen = f"{step.chosen.token} ({step.chosen.probability:.2f})"
        lines.append(f"{number:4d}  {read:>12} -> {chosen:<18} | {others}")
    over = "this sentence's steps" if sentences == 1 else f"the steps of {sentences} sentences"
    lines += ["", f"units whose {signal} tracks {by!r} (Pearson r over {over}):"]
    lines.append(f"{'rank':>4}  {'side':<8}{'layer':>5}{'unit':>6}{'r':>8}  trace")
    for rank, unit in enumerate(units, start=1):
        trace = sparkline(_trace(inspection, unit, signal))
        lines.append(
            f"{rank:4d}  {unit.side:<8}{unit.layer:5d}{unit.unit:6d}{unit.r:+8.3f}  {trace}"
        )
    return "\n".join(lines)


def _trace(inspection: Inspection, unit: UnitCorrelation, signal: str) -> list[float]:
    side = getattr(inspection, unit.side)
    return [float(value) for value in side.layers[unit.layer][signal][:, unit.unit]]


def sparkline(values: Sequence[float]) -> str:
    """One block character per value, from its minimum (▁) to its maximum (█)."""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARKS[round((value - low) / span * (len(SPARKS) - 1))] for value in values)
