"""Lexical shortlists: BLEU and search time with and without one, on every Multi30k test set.

Learns a shortlist from the training text (as `seq2seq shortlist` does) for each `--best`
size, then translates each split greedy and with beam 5, over the whole vocabulary and over
each shortlist, at `translate`'s default batches (64 sentences at most with a shortlist):
BLEU, how many outputs are the same, the pieces a batch decodes over, and the search's
seconds, best of `--repeats`. In one process, so the times are the search's, without
`import torch`. Then the model alone, greedy, in batches of 8 sentences, as a server decodes
at concurrency 8, at fp32 and int8, whole and shortlisted.

    python -m bench.shortlist --model runs/quality/best.pt
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from bench.report import publish
from bench.timing import table, wait_for_quiet
from seq2seq import SearchOptions, Translator
from seq2seq.checkpoint import Checkpoint, load_checkpoint
from seq2seq.shortlist import Shortlist
from seq2seq.translator import SHORTLIST_BATCH, length_batches
from training.config import default_data_dir
from training.data import read_lines, split_file
from training.metrics import corpus_scores
from training.shortlist import shortlist_from_text

SECTION = "Lexical shortlist (Multi30k de->en)"
HEADER = ["split", "search", "vocabulary", "pieces a batch", "BLEU", "chrF", "same output",
          "search s", "speed-up"]  # fmt: skip
SPLITS = ["val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco"]


def learn(path: Path, data: Path, best: int, frequent: int) -> tuple[Shortlist, float]:
    """The shortlist of `best` pieces a source piece from the training text, and its seconds."""
    started = time.perf_counter()
    tokenizers = load_checkpoint(path, weights=False).tokenizers
    sources = read_lines(split_file(data, "train.de"))
    targets = read_lines(split_file(data, "train.en"))
    shortlist = shortlist_from_text(tokenizers, sources, targets, best=best, frequent=frequent)
    return shortlist, time.perf_counter() - started


def timed_search(translator: Translator, sources: list[list[int]], beam: int) -> float:
    """Seconds of one `Translator.search` of `sources`."""
    started = time.perf_counter()
    translator.search(sources, SearchOptions(beam_size=beam))
    return time.perf_counter() - started


def list_size(translator: Translator, sources: list[list[int]], beam: int) -> float:
    """Mean pieces a batch decodes over, in the batches `Translator.search` makes."""
    if translator.shortlist is None:
        return float(translator.model.config.tgt_vocab_size)
    batches = length_batches(sources, batch_size=SHORTLIST_BATCH, batch_tokens=6000 // beam)
    sizes = [len(translator.shortlist.vocab([sources[i] for i in batch])) for batch in batches]
    return sum(sizes) / len(sizes)


def measure_split(
    translators: dict[str, Translator], data: Path, split: str, repeats: int
) -> list[list[object]]:
    """Rows of one split: each translator at greedy and beam 5, against the whole vocabulary."""
    sources = read_lines(split_file(data, f"{split}.de"))
    references = read_lines(split_file(data, f"{split}.en"))
    whole = translators["whole"]
    ids = whole.prepare(sources, split=False).sources
    rows: list[list[object]] = []
    for beam in (1, 5):
        times = {name: min(timed_search(t, ids, beam) for _ in range(repeats))
                 for name, t in translators.items()}  # fmt: skip
        outputs = {name: t.translate(sources, SearchOptions(beam_size=beam), split_sentences=False)
                   for name, t in translators.items()}  # fmt: skip
        for name, translator in translators.items():
            scores = corpus_scores(outputs[name], references)
            same = sum(a == b for a, b in zip(outputs[name], outputs["whole"], strict=True))
            rows.append([split, "greedy" if beam == 1 else f"beam {beam}", name,
                         f"{list_size(translator, ids, beam):.0f}", f"{scores['bleu']:.2f}",
                         f"{scores['chrf']:.2f}", f"{100 * same / len(sources):.1f}%",
                         f"{times[name]:.2f}", f"{times['whole'] / times[name]:.2f}x"])  # fmt: skip
    return rows


def small_batches(
    checkpoint: Checkpoint, data: Path, repeats: int, size: int = 8
) -> list[list[object]]:
    """Greedy sentences/s of the model alone on test_2016_flickr in batches of `size` (what a
    server decodes at concurrency `size`), at fp32 and int8, whole and shortlisted."""
    sources = read_lines(split_file(data, "test_2016_flickr.de"))
    rows: list[list[object]] = []
    for precision in ("fp32", "int8"):
        for shortlist in (False, True):
            translator = Translator.from_checkpoint(
                checkpoint, device="cpu", precision=precision, shortlist=shortlist
            )
            ids = translator.prepare(sources, split=False).sources
            batches = [ids[start : start + size] for start in range(0, len(ids), size)]
            seconds = min(
                sum(timed_search(translator, batch, 1) for batch in batches) for _ in range(repeats)
            )
            vocabulary = "shortlist" if shortlist else "whole"
            rows.append([precision, vocabulary, f"{1000 * seconds / len(ids):.2f}",
                         f"{len(ids) / seconds:.0f}"])  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/quality/best.pt"))
    parser.add_argument("--best", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--frequent", type=int, default=100)
    parser.add_argument("--splits", nargs="+", default=SPLITS)
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    data = default_data_dir()
    if not args.model.is_file() or not (data / "train.de.gz").is_file():
        print(f"skipped: needs {args.model} and Multi30k at {data} (set SEQ2SEQ_DATA)")
        return 0
    checkpoint = load_checkpoint(args.model)
    translators = {"whole": Translator.from_checkpoint(checkpoint, device="cpu",
                                                       precision=args.precision)}  # fmt: skip
    learnt = []
    for best in args.best:
        checkpoint.shortlist, seconds = learn(args.model, data, best, args.frequent)
        learnt.append(f"{best}: {seconds:.1f} s")
        translators[f"shortlist {best}"] = Translator.from_checkpoint(
            checkpoint, device="cpu", precision=args.precision, shortlist=True
        )
    wait_for_quiet()
    load = os.getloadavg()[0]
    rows = [row for split in args.splits for row in measure_split(translators, data, split,
                                                                   args.repeats)]  # fmt: skip
    checkpoint.shortlist, _ = learn(args.model, data, args.best[len(args.best) // 2], args.frequent)
    small = small_batches(checkpoint, data, args.repeats)
    body = "\n".join([
        f"Model `{args.model}` in {args.precision} on the CPU ({torch.get_num_threads()} "
        f"threads). \"shortlist N\": each source piece's N likeliest target pieces (IBM Model 1 "
        f"on the training text) and the {args.frequent} commonest; learning each took "
        f"{', '.join(learnt)} (best N: seconds). Lines translated whole; \"same output\" is the "
        f"share of lines translated exactly as over the whole vocabulary; search seconds are the "
        f"best of {args.repeats}. Load average {load:.2f} before, {os.getloadavg()[0]:.2f} "
        "after.",
        "",
        table(HEADER, rows),
        "",
        f"The model alone at batches of 8 test_2016_flickr sentences, greedy (what a server "
        f"decodes at concurrency 8), whole and with the shortlist of "
        f"{args.best[len(args.best) // 2]}, best of {args.repeats}:",
        "",
        table(["precision", "vocabulary", "ms a sentence", "sentences/s"], small),
    ])  # fmt: skip
    publish(SECTION, body, write=args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
