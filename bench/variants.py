"""Model variants at one CPU budget each: GRU, a bidirectional encoder, residual stacks, ensembles.

`python -m bench.variants` trains the Multi30k de->en preset once per variant (`VARIANTS`:
overrides of the preset; the plain preset first, as the reference of the same session), one
after another at `--minutes` (20) each, as `bench.quality` trains (one process using every
core, as README's command), scores each best.pt on val and test_2016_flickr, greedy and beam 5,
and writes one table to the "Model variants (Multi30k de->en)" section of BENCHMARKS.md: BLEU,
steps, target tokens/s, decoding seconds, parameters, and the load average before, during and after
each run. `--ensemble NAME ...` then joins those variants' best.pt into RUN_ROOT/ensemble-*.pt
(what `seq2seq ensemble` writes) and scores it the same way.

Each variant trains in its own quiet window (`bench.quiet`: /tmp/seq2seq-quiet names it;
`--pause PATTERN` stops, e.g., a background trainer meanwhile), `--gap-minutes` apart. All
variants but those that set tokenizer options use the first one's SentencePiece models, so
any of them can join an ensemble. A variant whose run directory holds its scores
(variant.json) is not trained again unless `--retrain`, so an interrupted series resumes
where it stopped. `--ensemble` may be given several times, one ensemble each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import quality
from bench.quiet import Load, quiet_window
from bench.report import write_section
from seq2seq import Translator, save_checkpoint
from seq2seq.checkpoint import load_joined
from training.config import default_data_dir

SECTION = "Model variants (Multi30k de->en)"
SPLITS = ["val", "test_2016_flickr"]
VARIANTS: dict[str, list[str]] = {
    "lstm": [],
    "gru": ["--model.cell=gru"],
    "bidirectional": ["--model.bidirectional_encoder=true"],
    "residual2": ["--model.num_layers=2", "--model.residual=true"],
    "gru_bidirectional": ["--model.cell=gru", "--model.bidirectional_encoder=true"],
    "bidirectional_residual2": [
        "--model.bidirectional_encoder=true",
        "--model.num_layers=2",
        "--model.residual=true",
    ],
    "vocab4000": ["--tokenizer.vocab_size=4000"],
    "vocab8000_4000": ["--tokenizer.src_vocab_size=8000", "--tokenizer.tgt_vocab_size=4000"],
    "dropout1": ["--model.dropout=0.1"],
    "lstm_seed2": ["--seed=2"],
    "lstm_seed3": ["--seed=3"],
    "bf16": ["--train.precision=bf16"],
    "fp32": ["--train.precision=fp32"],
}
"""Name -> overrides of the preset. lstm is the preset itself, measured in the same session;
lstm_seed2 and lstm_seed3 are the preset from other random initialisations and batch orders
(the members of Sutskever et al.'s ensembles differed only so). dropout1 is the preset's
dropout until 2026-12-07: at today's step speed a 20-minute run makes about 27 epochs, and with
0.1 the validation loss rose from the 13th on (the 2026-12-07 series measured it as `lstm`
against `dropout3`, 0.3, which the preset then adopted).
vocab4000 trains its own SentencePiece models (4,000 pieces a language, about the target
vocabulary of the OpenNMT-py comparison), so it cannot join an ensemble of the others.
vocab8000_4000 too: a wider source vocabulary (shorter German sentences: more of them fit a
batch, for one larger embedding) and a narrower target one (a cheaper output layer).
bf16 is the preset trained under bf16 autocast (fp32 weights and Adam state), which needs a
CPU with bfloat16 instructions or a GPU; its checkpoints are fp32 like the others'. The
preset's `train.precision: auto` trains in bf16 where a probe of the step finds it faster (the
table's precision column says what each run chose); fp32 and bf16 pin the precision."""
TOKENIZERS = ("spm.de.model", "spm.en.model")
STALE = ("metrics.jsonl", "best.pt", "last.pt", "variant.json")
"""What an earlier, unfinished run of a variant leaves that a new run must not mix with."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Other --key=value arguments override the preset for every variant.",
    )
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per variant")
    parser.add_argument(
        "--processes", type=int, default=1, help="DDP processes (over 1: 1 thread each)"
    )
    parser.add_argument("--run-root", default="runs/variants", help="one run directory per variant")
    parser.add_argument("--config", default=str(quality.PRESET), help="training preset")
    parser.add_argument(
        "--ensemble",
        nargs="+",
        action="append",
        default=[],
        metavar="NAME",
        help="join these variants (repeat the option to score several ensembles)",
    )
    parser.add_argument("--retrain", action="store_true", help="train variants scored before")
    parser.add_argument("--pause", help="stop processes matching this during each window")
    parser.add_argument("--gap-minutes", type=float, default=10.0, help="between two windows")
    parser.add_argument("--section", default=SECTION, help="BENCHMARKS.md section to write")
    parser.add_argument("--no-report", action="store_true", help="print, leave BENCHMARKS.md")
    args, overrides = parser.parse_known_args()
    if any(not item.startswith("--") or "=" not in item for item in overrides):
        parser.error(f"unrecognized arguments (config overrides are --key=value): {overrides}")
    if unknown := sorted({name for names in args.ensemble for name in names} - set(VARIANTS)):
        parser.error(f"--ensemble: unknown variants {unknown}")
    args.overrides = overrides
    return args


class Windows:
    """Quiet windows one after another, at least `gap_minutes` apart."""

    def __init__(self, pause: str | None, gap_minutes: float) -> None:
        self.pause, self.gap_s = pause, 60.0 * gap_minutes
        self.closed_at: float | None = None

    @contextmanager
    def open(self, name: str, *, minutes: float) -> Iterator[Load]:
        """A quiet window for `name`, once the gap after the previous one has passed."""
        if self.closed_at is not None:
            time.sleep(max(0.0, self.gap_s - (time.monotonic() - self.closed_at)))
        try:
            with quiet_window(name, minutes=minutes, pause=self.pause) as load:
                yield load
        finally:
            self.closed_at = time.monotonic()


def run_variant(
    name: str, args: argparse.Namespace, windows: Windows, *, first: Path | None
) -> dict[str, Any]:
    """Train and score one variant in a quiet window (or read its earlier result)."""
    run_dir = Path(args.run_root) / name
    saved = run_dir / "variant.json"
    if saved.is_file() and not args.retrain:
        return dict(json.loads(saved.read_text(encoding="utf-8")))
    own_tokenizers = any(option.startswith("--tokenizer.") for option in VARIANTS[name])
    prepare_run_dir(run_dir, None if own_tokenizers else first)
    result = {"name": name, **train_and_score(name, run_dir, args, windows)}
    saved.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def train_and_score(
    name: str, run_dir: Path, args: argparse.Namespace, windows: Windows
) -> dict[str, Any]:
    """`bench.quality`'s training of the variant, then its scores, in one quiet window."""
    overrides = [*VARIANTS[name], *args.overrides]
    run = argparse.Namespace(
        config=args.config,
        overrides=overrides,
        run_dir=str(run_dir),
        minutes=args.minutes,
        processes=args.processes,
    )
    with windows.open(f"bench.variants {name}", minutes=args.minutes + 8) as load:
        wall = quality.train(run)
        rows = quality.score_splits(run_dir / "best.pt", SPLITS, "cpu")
    return {
        "overrides": overrides,
        "facts": quality.training_facts(run_dir),
        "rows": rows,
        "wall_s": wall,
        "load": [load.before, run.mean_load, load.after],
        "parameters": Translator.load(run_dir / "best.pt", device="cpu").info()["parameters"],
    }


def prepare_run_dir(run_dir: Path, first: Path | None) -> None:
    """A run directory without an earlier run's results, with the first variant's tokenizers."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in STALE:
        (run_dir / name).unlink(missing_ok=True)
    if first is not None and first != run_dir:
        for name in TOKENIZERS:
            if (first / name).is_file():
                shutil.copyfile(first / name, run_dir / name)


def run_ensemble(names: list[str], args: argparse.Namespace, windows: Windows) -> dict[str, Any]:
    """Join the variants' best.pt into RUN_ROOT/ensemble-NAME+NAME.pt and score it."""
    root = Path(args.run_root)
    path = root / f"ensemble-{'+'.join(names)}.pt"
    save_checkpoint(load_joined([root / name / "best.pt" for name in names]), path)
    with windows.open("bench.variants ensemble", minutes=15) as load:
        rows = quality.score_splits(path, SPLITS, "cpu")
    return {
        "name": f"ensemble: {' + '.join(names)}",
        "rows": rows,
        "load": [load.before, load.after],
        "parameters": Translator.load(path, device="cpu").info()["parameters"],
    }


def table(results: list[dict[str, Any]]) -> list[str]:
    """One row per variant: BLEU greedy / beam 5 per split, training and decoding figures."""
    lines = [
        "| variant | parameters | precision | steps | target tokens/s | val BLEU greedy / beam 5 | "
        "test_2016_flickr BLEU greedy / beam 5 | test decode s greedy / beam 5 | "
        "load before / mean / after |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        lines.append("| " + " | ".join(_cells(result)) + " |")
    return lines


def _cells(result: dict[str, Any]) -> list[str]:
    facts = result.get("facts")
    by_split = {row["split"]: row for row in result["rows"]}
    scores = [
        f"{by_split[s]['beam1']['bleu']:.2f} / {by_split[s]['beam5']['bleu']:.2f}" for s in SPLITS
    ]
    test = by_split[SPLITS[-1]]
    return [
        result["name"],
        f"{result['parameters'] / 1e6:.1f} M",
        facts.get("precision", "fp32") if facts else "",
        f"{facts['steps']:,}" if facts else "",
        f"{facts['tokens_per_s']:,.0f}" if facts else "",
        *scores,
        f"{test['beam1']['seconds']:.0f} / {test['beam5']['seconds']:.0f}",
        " / ".join(f"{value:.1f}" for value in result["load"]),
    ]


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The BENCHMARKS.md section body: what was run, the table, each variant's overrides."""
    extra = " ".join(args.overrides) or "no other overrides"
    lines = [
        f"Preset `{Path(args.config).name}` ({extra}), each variant trained for "
        f"{args.minutes:g} minutes ({quality.hardware(args.processes, 'cpu')}), "
        "one after another, "
        "each in a quiet window of its own; best.pt scored with sacrebleu (13a, cased). "
        "The load average is the 1-minute figure as training started, its mean over the run "
        "(sampled every 30 s) and after scoring (an ensemble: before and after scoring).",
        "",
        *table(results),
        "",
        "Variants (overrides of the preset):",
    ]
    lines += [f"- {name}: `{' '.join(VARIANTS[name]) or 'none'}`" for name in args.variants]
    first = results[0]["rows"][0]["beam1"]
    lines += ["", f"Signatures: `{first['bleu_signature']}`, `{first['chrf_signature']}`."]
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    if not (default_data_dir() / "train.de.gz").exists():
        print(f"Multi30k not found at {default_data_dir()} (set SEQ2SEQ_DATA)", file=sys.stderr)
        return 2
    windows = Windows(args.pause, args.gap_minutes)
    results: list[dict[str, Any]] = []
    first: Path | None = None
    for name in args.variants:
        results.append(run_variant(name, args, windows, first=first))
        first = first or Path(args.run_root) / name
    for names in args.ensemble:
        results.append(run_ensemble(names, args, windows))
    body = report(results, args)
    print(body)
    if not args.no_report:
        write_section(args.section, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
