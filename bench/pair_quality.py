"""BLEU and chrF of every language-pair model a server would serve, on the same test set.

Scores each `MODELS_DIR/multi30k_*.pt` (`seq2seq train-models` makes them) on Multi30k's
test_2016_flickr and val, greedy and beam 5, through `Translator` as the server decodes, and
lists how each was trained (steps, best validation BLEU from its checkpoint).

    python -m bench.pair_quality --models models
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.report import write_section
from bench.timing import table, wait_for_quiet
from seq2seq import SearchOptions, Translator
from training.config import DataConfig
from training.data import iter_pairs
from training.metrics import corpus_scores
from training.mirrors import MULTI30K

SECTION = "Translation quality, language pairs (Multi30k)"
SPLITS = ("test_2016_flickr", "val")


def score(translator: Translator, split: str) -> list[str]:
    """'BLEU / chrF' greedy and beam 5 on `split`, and the decoding seconds."""
    config = DataConfig(
        hub_fallback=MULTI30K.name,
        src_lang=translator.src_lang or "",
        tgt_lang=translator.tgt_lang or "",
    )
    pairs = list(iter_pairs(config, split))
    sources, references = [src for src, _ in pairs], [tgt for _, tgt in pairs]
    cells, seconds = [], []
    for beam in (1, 5):
        started = time.monotonic()
        hypotheses = translator.translate(sources, SearchOptions(beam_size=beam), batch_size=64)
        seconds.append(time.monotonic() - started)
        scores = corpus_scores(hypotheses, references)
        cells.append(f"{scores['bleu']:.2f} / {scores['chrf']:.2f}")
    return [*cells, " / ".join(f"{s:.0f}" for s in seconds)]


def row(path: Path) -> list[Any]:
    translator = Translator.load(path, device="cpu")
    metadata = translator.metadata
    pair = f"{translator.src_lang}→{translator.tgt_lang}"
    minutes = metadata.get("elapsed_s", float("nan")) / 60
    facts = [
        metadata.get("step", "?"),
        f"{minutes:.1f}",
        f"{metadata.get('best_val_bleu', float('nan')):.2f}",
    ]
    return [pair, *facts, *(cell for split in SPLITS for cell in score(translator, split))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="models", help="directory of pair models")
    parser.add_argument("--notes", default="", help="how the models were trained")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    paths = sorted(Path(args.models).glob("multi30k_*.pt"))
    if not paths:
        parser.error(f"no multi30k_*.pt in {args.models} (seq2seq train-models makes them)")
    wait_for_quiet()
    rows = []
    for path in paths:
        rows.append(row(path))
        print(rows[-1], flush=True)
    header = ["pair", "steps", "minutes", "best val BLEU (400, greedy)"]
    for split in SPLITS:
        header += [f"{split} greedy BLEU / chrF", f"{split} beam 5", f"{split} decode s"]
    body = (
        "Each model is its preset (`training/configs/multi30k_<pair>.yaml`: 1 LSTM layer a "
        "side, hidden 256, 5,000 subwords per language) trained by `seq2seq train-models`; "
        "steps and minutes are those of the best checkpoint, the one served; "
        "decoded on the CPU through `Translator`, batch 64, sentence by sentence. BLEU: "
        f"sacrebleu, 13a tokenization, cased. {args.notes}\n\n" + table(header, rows)
    )
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
