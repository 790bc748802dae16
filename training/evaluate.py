"""`seq2seq evaluate`: corpus BLEU and chrF (sacrebleu, 13a, cased) with their signatures.

Three ways in:
- `--model M --src F --ref F`: translate a source file and score it;
- `--model M [--data DIR] --split NAME [--split ...]`: score splits of a `{split}.{lang}[.gz]`
  directory, languages from the checkpoint (or `--src-lang/--tgt-lang`); without `--data`,
  Multi30k as training finds it: $SEQ2SEQ_DATA, ../shared/data/multi30k, else the hub;
- `--hyp F --ref F`: score existing translations, no model needed.
Translations go through `seq2seq.Translator`, the object the server uses; several `--model`s
translate as their ensemble.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq import Translator
from seq2seq.arguments import UsageError, add_decoding_arguments, search_options
from training.config import DataConfig
from training.data import describe_source, iter_pairs, read_lines
from training.metrics import corpus_scores
from training.mirrors import MULTI30K


@dataclass(frozen=True)
class Job:
    """One set to score: its name, source lines (None when hypotheses are given) and references."""

    name: str
    sources: list[str] | None
    references: list[str]
    hypotheses: list[str] | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seq2seq evaluate`."""
    parser.add_argument(
        "--model",
        action="append",
        help="checkpoint to translate with (.pt); repeat it to score the ensemble of several "
        "models (they must share their tokenizers)",
    )
    parser.add_argument("--src", help="source file, one sentence a line (plain or .gz)")
    parser.add_argument("--ref", help="reference translations, aligned with --src or --hyp")
    parser.add_argument("--hyp", help="score these translations instead of running a model")
    parser.add_argument(
        "--data",
        help="directory in the {split}.{lang}[.gz] layout (default: $SEQ2SEQ_DATA, else "
        "../shared/data/multi30k, else Multi30k from the Hugging Face hub)",
    )
    parser.add_argument("--split", action="append", help="split of --data (repeatable)")
    parser.add_argument("--src-lang", help="source language of --data (default: the model's)")
    parser.add_argument("--tgt-lang", help="target language of --data (default: the model's)")
    add_decoding_arguments(
        parser,
        precision_help="fp32 as trained, bf16, or int8 (CPU only): score the model as it will "
        "be served",
    )
    parser.add_argument("--hyp-out", help="write translations here ('{split}' is replaced)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")


def run(args: argparse.Namespace) -> int:
    """Score every requested set and print the results."""
    _check(args)
    translator = (
        Translator.load_ensemble(
            args.model, device=args.device, precision=args.precision, shortlist=args.shortlist
        )
        if args.model
        else None
    )
    results = [score(job, translator, args) for job in jobs(args, translator)]
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
    else:
        for result in results:
            print(
                f"{result['set']}: BLEU {result['bleu']:.2f}  chrF {result['chrf']:.2f}  "
                f"({result['sentences']} sentences)"
            )
            print(f"  {result['bleu_signature']}\n  {result['chrf_signature']}")
    return 0


def _check(args: argparse.Namespace) -> None:
    if args.hyp and (args.model or args.data or args.split):
        raise UsageError(
            "--hyp scores existing translations: give --ref, not --model, --data or --split"
        )
    if not args.hyp and not args.model:
        raise UsageError("give --model (with --src/--ref or --split) or --hyp with --ref")
    if args.data and not args.split:
        raise UsageError("--data needs at least one --split (e.g. --split test_2016_flickr)")
    if not args.split and not args.ref:
        raise UsageError("--ref is required unless --split is given")
    if args.model and not args.split and not args.src:
        raise UsageError("--model needs --src and --ref, or --split (and --data)")
    search_options(args)  # checks them
    if args.hyp_out and args.split and len(args.split) > 1 and "{split}" not in args.hyp_out:
        raise UsageError("with several --split, --hyp-out must contain '{split}'")


def jobs(args: argparse.Namespace, translator: Translator | None) -> list[Job]:
    """The sets named on the command line, with their lines read."""
    if args.hyp:
        return [
            _aligned(
                Job(
                    Path(args.hyp).name,
                    None,
                    read_lines(Path(args.ref)),
                    read_lines(Path(args.hyp)),
                ),
                args.hyp,
                args.ref,
            )
        ]
    if args.src:
        job = Job(Path(args.src).name, read_lines(Path(args.src)), read_lines(Path(args.ref)))
        return [_aligned(job, args.src, args.ref)]
    src_lang = args.src_lang or (translator.src_lang if translator else None)
    tgt_lang = args.tgt_lang or (translator.tgt_lang if translator else None)
    if not src_lang or not tgt_lang:
        raise UsageError("the model names no languages: give --src-lang and --tgt-lang")
    config = DataConfig(
        path=args.data, hub_fallback=MULTI30K.name, src_lang=src_lang, tgt_lang=tgt_lang
    )
    print(f"data: {describe_source(config)}", file=sys.stderr)
    found = []
    for split in args.split:
        pairs = list(iter_pairs(config, split))  # line counts are checked as the files are read
        found.append(Job(split, [src for src, _ in pairs], [tgt for _, tgt in pairs]))
    return found


def _aligned(job: Job, first: str, reference: str) -> Job:
    lines = job.hypotheses if job.sources is None else job.sources
    if lines is not None and len(lines) != len(job.references):
        raise ValueError(
            f"{first} has {len(lines)} lines but {reference} has "
            f"{len(job.references)}; they must be aligned line by line"
        )
    return job


def score(job: Job, translator: Translator | None, args: argparse.Namespace) -> dict[str, Any]:
    """Translate (if needed), write hypotheses (if asked) and score one set."""
    hypotheses = job.hypotheses
    if hypotheses is None:
        assert translator is not None and job.sources is not None
        hypotheses = translator.translate(
            job.sources,
            search_options(args),
            split_sentences=args.split_sentences,
            batch_size=args.batch_size,
        )
        if args.hyp_out:
            out = Path(args.hyp_out.replace("{split}", job.name))
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(f"{line}\n" for line in hypotheses), encoding="utf-8")
    result = {"set": job.name, **corpus_scores(hypotheses, job.references)}
    if translator is not None:
        result["beam_size"], result["length_penalty"] = args.beam_size, args.length_penalty
        result["max_length"] = args.max_length
        result["precision"] = args.precision
        result["split_sentences"] = args.split_sentences
        result["models"] = args.model
    return result
