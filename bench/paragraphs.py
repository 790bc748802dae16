"""Paragraph input: BLEU of texts of several sentences, translated whole or sentence by sentence.

Multi30k has one sentence a line, so its scores cannot tell whether a service copes with the
paragraphs that users paste. This script joins every `--group` consecutive sentences of a
split (and of its references) into one text, translates the texts with sentence splitting on
(the default everywhere) and off, and scores both against the joined references.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench.report import write_section
from seq2seq import SearchOptions, Translator
from training.config import default_data_dir
from training.data import read_lines
from training.metrics import corpus_scores

SECTION = "Paragraph input"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/multi30k_de_en.pt", help="checkpoint")
    parser.add_argument("--split", default="test_2016_flickr", help="Multi30k split")
    parser.add_argument("--group", type=int, nargs="+", default=[1, 3, 5], help="sentences/text")
    parser.add_argument("--beam-size", type=int, default=1, help="1 is greedy search")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    if not Path(args.model).is_file():
        parser.error(f"model {args.model} not found (train one, or pass --model)")
    return args


def grouped(lines: list[str], size: int) -> list[str]:
    """Every `size` consecutive lines joined by a space."""
    return [" ".join(lines[start : start + size]) for start in range(0, len(lines), size)]


def score(
    translator: Translator, sources: list[str], refs: list[str], *, beam_size: int, split: bool
) -> str:
    """'BLEU / chrF (seconds)' of translating `sources`, sentence by sentence or whole."""
    started = time.monotonic()
    options = SearchOptions(beam_size=beam_size)
    hypotheses = translator.translate(sources, options, split_sentences=split, batch_size=64)
    scores = corpus_scores(hypotheses, refs)
    return f"{scores['bleu']:.2f} / {scores['chrf']:.2f} ({time.monotonic() - started:.0f} s)"


def main() -> None:
    args = parse_args()
    translator = Translator.load(args.model, device="cpu")
    langs = (translator.src_lang, translator.tgt_lang)
    files = [default_data_dir() / f"{args.split}.{lang}.gz" for lang in langs]
    if missing := [str(path) for path in files if not path.is_file()]:
        print(f"bench.paragraphs: error: not found: {', '.join(missing)}", file=sys.stderr)
        sys.exit(2)
    sources, references = (read_lines(path) for path in files)
    lines = [
        f"Model `{args.model}`, {args.split} ({len(sources)} sentences), beam size "
        f"{args.beam_size}; every text joins that many consecutive sentences (references "
        "likewise). BLEU / chrF (decode seconds):",
        "",
        "| sentences per text | texts | sentence by sentence (default) | whole (`--no-split`) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for size in args.group:
        texts, refs = grouped(sources, size), grouped(references, size)
        split = score(translator, texts, refs, beam_size=args.beam_size, split=True)
        whole = score(translator, texts, refs, beam_size=args.beam_size, split=False)
        lines.append(f"| {size} | {len(texts)} | {split} | {whole} |")
        print(lines[-1], flush=True)
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
