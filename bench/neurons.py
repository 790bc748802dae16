"""Reading LSTM units, after Edwin Chen's "Exploring LSTMs" (2017): which cell counts?

`python -m bench.neurons` trains the counting and copying tasks of `bench.toy_tasks` with
`training.train` (about a minute on one core), reports exact-match accuracy within and beyond
the trained lengths and the units whose cell tracks the count (through `seq2seq.units`), then
reads the Multi30k model (`--model`, default models/multi30k_de_en.pt; skipped with a line
when absent) for the units that track source position and remaining target length. It draws
the figures into docs/ and replaces the results block of docs/lstm-units.md; `--no-write`
only prints.
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from pathlib import Path

import torch

from bench import toy_tasks
from bench.data import DATA_DIR, read_lines
from bench.report import command
from bench.unit_plot import plot_units
from seq2seq import Translator
from seq2seq.introspect import Inspection
from seq2seq.units import UnitCorrelation, pearson, rank_units
from training.config import REPO

DOCS = REPO / "docs"
PAGE = DOCS / "lstm-units.md"
MARKERS = ("<!-- neurons:results -->", "<!-- /neurons:results -->")
NO_RNG = random.Random(0)  # counting() draws nothing


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "models" / "multi30k_de_en.pt"))
    parser.add_argument("--split", default="test_2016_flickr", help="Multi30k sentences read")
    parser.add_argument("--sentences", type=int, default=300, help="of the split, at most")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    return parser.parse_args()


def units_text(units: list[UnitCorrelation]) -> str:
    """'unit 7 (r = +1.0000), unit 3 (-0.9962)'."""
    parts = [f"unit {item.unit} ({item.r:+.4f})" for item in units]
    return parts[0].replace("(", "(r = ", 1) + "".join(f", {part}" for part in parts[1:])


def count_pairs(lengths: range) -> list[toy_tasks.Pair]:
    """One counting pair per length."""
    return [toy_tasks.counting(n, NO_RNG) for n in lengths]


def counting(translator: Translator) -> tuple[list[str], Inspection, int]:
    """Accuracy and the counting units; the example and the unit to draw."""
    within = toy_tasks.exact_match(translator, count_pairs(range(1, 31)))
    beyond = toy_tasks.exact_match(translator, count_pairs(range(31, 61)))
    failures = [
        pair for pair in count_pairs(range(1, 101)) if toy_tasks.exact_match(translator, [pair]) < 1
    ]
    pool = [translator.inspect(src) for src, _ in count_pairs(range(2, 31))]
    up = rank_units(pool, "position", side="encoder", top=3)
    down = rank_units(pool, "remaining", side="decoder", top=3)
    example = translator.inspect(count_pairs(range(20, 21))[0][0])
    first = (
        f"first failure at n = {len(failures[0][0].split())}"
        if failures
        else "no failure up to n = 100"
    )
    lines = [
        f"- exact match: n = 1-30 (trained) {within:.0%}, n = 31-60 {beyond:.0%}; {first}",
        f"- the encoder cells that best follow the a's read: {units_text(up)}",
        f"- the decoder cells that best follow the b's still to write: {units_text(down)}",
        *_counter(example, up[0].unit, pool),
    ]
    return lines, example, up[0].unit


def _counter(example: Inspection, unit: int, pool: list[Inspection]) -> list[str]:
    """How the encoder's counting unit counts, and what the decoder does with it."""
    encoder, decoder = example.encoder.layers[0], example.decoder.layers[0]
    back = rank_units(pool, "remaining", side="decoder", top=1000)
    r = next(item.r for item in back if item.unit == unit)
    return [
        f"- unit {unit} over the 20 a's of one example: its cell changes by "
        f"{_step(encoder['cell'][:, unit])} per a, its input gate is "
        f"{_spread(encoder['input'][1:, unit])} and its candidate "
        f"{_spread(encoder['candidate'][1:, unit])} after the first a (`count += 1`); the "
        f"decoder starts from that state and changes the same cell by "
        f"{_step(decoder['cell'][:, unit])} per b (candidate "
        f"{_spread(decoder['candidate'][1:, unit])}; r with the b's left {r:+.4f})",
        f"- its hidden state h = o·tanh(c) is {_spread(encoder['hidden'][3:, unit])} from the "
        "fourth a on: the count lives in the cell, the hidden state saturates",
    ]


def _step(values: torch.Tensor) -> str:
    return f"{float(values.diff().mean()):+.3f}"


def _spread(values: torch.Tensor) -> str:
    return f"{float(values.mean()):.3f} ± {float(values.std()):.3f}"


def copying(translator: Translator) -> tuple[list[str], Inspection, int]:
    """Accuracy by length, the length unit, and whether units hold the letter read or next."""
    task = toy_tasks.COPYING
    within = toy_tasks.exact_match(translator, task.pairs(400, seed=7))
    beyond = {
        n: toy_tasks.exact_match(translator, task.pairs(200, seed=n, lengths=range(n, n + 1)))
        for n in (9, 10, 11)
    }
    pool = [translator.inspect(src) for src, _ in task.pairs(150, seed=8, lengths=range(3, 9))]
    down = rank_units(pool, "remaining", side="decoder", top=3)
    now, upcoming = _letter_units(pool)
    lines = [
        f"- exact match: lengths 1-8 (trained) {within:.0%}; "
        + ", ".join(f"length {n} {share:.0%}" for n, share in beyond.items()),
        f"- the decoder cell that best follows the letters still to write: {units_text(down)}",
        f"- decoder hidden states and the letter: best |r| with the letter just read "
        f"{now:.3f}, with the letter about to be written {upcoming:.3f} (mean over a, b, c)",
    ]
    return lines, max(pool, key=lambda item: len(item.encoder.ids)), down[0].unit


def _letter_units(pool: list[Inspection]) -> tuple[float, float]:
    """Mean over the letters of the best |r| of a decoder hidden unit with 'read x' and with
    'writes x next' (Chen: units tended to predict the next character, not hold the current)."""
    values = torch.cat([item.decoder.layers[0]["hidden"] for item in pool])  # [N, H]
    read = [token for item in pool for token in item.decoder.tokens]
    written = [step.chosen.token for item in pool for step in item.steps]
    scores = []
    for tokens in (read, written):
        best = [
            float(pearson(values, torch.tensor([t == f"▁{x}" for t in tokens])).abs().max())
            for x in "abc"
        ]
        scores.append(sum(best) / len(best))
    return scores[0], scores[1]


def multi30k(path: Path, split: str, count: int) -> tuple[list[str], Inspection | None, list[int]]:
    """Units of the translation model that track position and remaining length."""
    if not path.is_file():
        return [f"No Multi30k model at `{path}`: this part was skipped (pass --model)."], None, []
    translator = Translator.load(path, device="cpu")
    language = translator.src_lang or "de"
    if not (DATA_DIR / f"{split}.{language}.gz").is_file():
        return [f"No Multi30k data in `{DATA_DIR}`: this part was skipped."], None, []
    texts = [text for text in read_lines(split, language) if text][:count]
    pool = [translator.inspect(text) for text in texts if len(translator.encode([text])[0]) <= 64]
    lines = [
        f"Model `{path.name}`, greedy, the first {len(pool)} sentences of {split} "
        f"({sum(len(item.encoder.ids) for item in pool)} encoder and "
        f"{sum(len(item.decoder.ids) for item in pool)} decoder steps). The encoder reads "
        "the source reversed, so its `position` counts from the sentence's end and its "
        "`remaining` is the position from the sentence's start.",
        "",
        *_table(pool),
        "",
        _saturation(pool),
    ]
    unit, line = _crossing(pool)
    lines += ["", line]
    example = next((item for item in pool if 10 <= len(item.encoder.ids) <= 14), pool[0])
    best = [
        rank_units(pool, "position", side="encoder", top=1)[0].unit,
        rank_units(pool, "remaining", side="decoder", top=1)[0].unit,
    ]
    return lines, example, list(dict.fromkeys([unit, *best]))


def _crossing(pool: list[Inspection]) -> tuple[int, str]:
    """The unit that best counts up through the source and down through the translation:
    the largest min(|r|) of its cell with source tokens read and with target tokens left,
    both of one sign (the counting task's cell, on real sentences)."""
    read = {item.unit: item.r for item in rank_units(pool, "position", side="encoder", top=10**6)}
    left = {item.unit: item.r for item in rank_units(pool, "remaining", side="decoder", top=10**6)}
    agreeing = [unit for unit in read if read[unit] * left[unit] > 0]
    unit = max(agreeing, key=lambda unit: min(abs(read[unit]), abs(left[unit])))
    return unit, (
        f"Unit {unit} does both, like the counting cell: r = {read[unit]:+.4f} with the source "
        f"tokens read in the encoder and {left[unit]:+.4f} with the target tokens left in the "
        "decoder, so its cell moves one way through the source and back through the translation."
    )


def _table(pool: list[Inspection]) -> list[str]:
    """The best cells, and the best hidden state, for position and remaining on each side."""
    rows = ["| side | property | cells: best units (Pearson r) | hidden: best abs(r) |"]
    rows.append("|---|---|---|---:|")
    for side, by in (
        ("encoder", "position"),
        ("encoder", "remaining"),
        ("decoder", "remaining"),
        ("decoder", "position"),
    ):
        cells = rank_units(pool, by, side=side, top=3)
        hidden = rank_units(pool, by, side=side, signal="hidden", top=1)[0]
        rows.append(f"| {side} | {by} | {units_text(cells)} | {abs(hidden.r):.4f} |")
    return rows


def _saturation(pool: list[Inspection]) -> str:
    """Share of (unit, step) values of each gate below 0.1 or above 0.9, encoder and decoder."""
    parts = []
    for side in ("encoder", "decoder"):
        for gate in ("input", "forget", "output"):
            values = torch.cat([getattr(item, side).layers[0][gate].flatten() for item in pool])
            parts.append(
                f"{side} {gate} {float(((values < 0.1) | (values > 0.9)).double().mean()):.0%}"
            )
    return "Saturated gate values (< 0.1 or > 0.9): " + ", ".join(parts) + "."


def trained(task: toy_tasks.Task, folder: Path) -> tuple[Translator, str]:
    """The task's model and a line saying how it was trained."""
    started = time.monotonic()
    translator = toy_tasks.train_task(task, folder)
    sizes = task.sizes
    return translator, (
        f"Model: {sizes.num_layers} LSTM layer, {sizes.hidden_size} units, embeddings of "
        f"{sizes.embedding_size}; {task.steps} steps of `training.train` (Adam {task.lr}, "
        f"batches of 1500 tokens) in {time.monotonic() - started:.0f} s."
    )


def toy_sections(figures: Path) -> list[str]:
    """Train both toy tasks in a temporary directory, read them, draw them."""
    sections = []
    with tempfile.TemporaryDirectory() as folder:
        translator, how = trained(toy_tasks.COUNTING, Path(folder) / "counting")
        lines, example, unit = counting(translator)
        title = f"Counting, n = 20: unit {unit}, 20 a's read, then 20 b's written"
        plot_units(figures / "lstm-units-counting.png", example, [unit], title=title)
        sections += ["### Counting: n a's, then n b's", "", how, "", *lines, ""]
        sections += ["![the counting cell](lstm-units-counting.png)", ""]
        translator, how = trained(toy_tasks.COPYING, Path(folder) / "copying")
        lines, example, unit = copying(translator)
        title = f"Copying: unit {unit}, the decoder cell that best follows the letters left"
        plot_units(figures / "lstm-units-copying.png", example, [unit], title=title)
        sections += ["### Copying a string over {a, b, c}", "", how, "", *lines, ""]
        sections += ["![the copy task's length unit](lstm-units-copying.png)", ""]
    return sections


def translation_section(args: argparse.Namespace, figures: Path) -> list[str]:
    """The Multi30k model's position and remaining-length units, with a figure."""
    lines, example, units = multi30k(Path(args.model), args.split, args.sentences)
    sections = ["### The Multi30k translation model", "", *lines, ""]
    if example is not None:
        title = f"One sentence: units {', '.join(map(str, units))} (the first counts both ways)"
        plot_units(figures / "lstm-units-multi30k.png", example, units, title=title)
        sections += ["![position and remaining-length units](lstm-units-multi30k.png)", ""]
    return sections


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    figures = DOCS if args.write else Path(tempfile.mkdtemp())
    load = Path("/proc/loadavg").read_text().split()[0]
    started = time.monotonic()
    sections = [*toy_sections(figures), *translation_section(args, figures)]
    header = (
        f"Measured with `{command()}` in {time.monotonic() - started:.0f} s "
        f"(one thread, load average {load} at the start)."
    )
    body = "\n".join([header, "", *sections])
    print(body)
    if args.write:
        write_results(body)


def write_results(body: str) -> None:
    """Replace the results block of docs/lstm-units.md."""
    text = PAGE.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{PAGE}: no {MARKERS[0]} ... {MARKERS[1]} block to fill")
    block = f"{MARKERS[0]}\n{body.strip()}\n{MARKERS[1]}"
    PAGE.write_text(pattern.sub(lambda _: block, text), encoding="utf-8")


if __name__ == "__main__":
    main()
