"""Translation quality on a CPU budget: train the Multi30k de->en preset, then score it.

`python -m bench.quality --minutes 20` trains `training/configs/multi30k_de_en.yaml` for that
many wall-clock minutes, as README's command does (one process using every core; on a 2-core
CPU it made 5,933 steps in 20 minutes against 4,024 for two single-threaded DDP processes of
half the batch each, the same tokens a step), then reports BLEU and chrF (sacrebleu 13a,
cased) on val and the three test sets, greedy and beam 5, in the "Translation quality
(Multi30k de->en)" section of BENCHMARKS.md. On a machine with a GPU the preset's
`train.device: auto` trains and scores there (e.g. `--train.precision=bf16`;
`bench/gpu_run.sh` does so for the full preset).
While it runs, /tmp/seq2seq-quiet exists so that other heavy jobs can wait.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from bench.report import write_section
from seq2seq import SearchOptions, Translator, save_checkpoint
from training.average import average_checkpoints
from training.config import REPO, default_data_dir, load_config
from training.data import parallel_files, read_lines
from training.metrics import corpus_scores
from training.trainer import step_checkpoints

SECTION = "Translation quality (Multi30k de->en)"
PRESET = REPO / "training" / "configs" / "multi30k_de_en.yaml"
SPLITS = ("val", "test_2016_flickr", "test_2017_flickr", "test_2017_mscoco")
QUIET = Path("/tmp/seq2seq-quiet")
NOTES = Path(__file__).with_name("quality_notes.md")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Other --key=value arguments override the preset.",
    )
    parser.add_argument("--minutes", type=float, default=20.0, help="training wall-clock budget")
    parser.add_argument(
        "--processes", type=int, default=1, help="DDP processes (over 1: CPU 1 thread each)"
    )
    parser.add_argument("--run-dir", default="runs/quality", help="fresh or reused run directory")
    parser.add_argument("--config", default=str(PRESET), help="training preset")
    parser.add_argument("--skip-training", action="store_true", help="only score RUN_DIR/best.pt")
    parser.add_argument(
        "--no-report", action="store_true", help="print, do not touch BENCHMARKS.md"
    )
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), help="sets to score")
    parser.add_argument(
        "--average",
        type=int,
        default=0,
        metavar="N",
        help="also score the mean of the last N validated checkpoints (seq2seq average); "
        "sets --train.keep_checkpoints=N (default: 0, off)",
    )
    parser.add_argument(
        "--section", default=SECTION, help="BENCHMARKS.md section to write (default: %(default)s)"
    )
    parser.add_argument(
        "--notes",
        default=str(NOTES),
        help="Markdown appended to the report: tuning runs and what they showed "
        "(default: %(default)s; '' for none)",
    )
    args, overrides = parser.parse_known_args()
    if any(not item.startswith("--") or "=" not in item for item in overrides):
        parser.error(f"unrecognized arguments (config overrides are --key=value): {overrides}")
    if args.average == 1 or args.average < 0:
        parser.error("--average needs at least 2 checkpoints (or 0: off)")
    if args.average:
        overrides.append(f"--train.keep_checkpoints={args.average}")
    args.overrides = overrides
    return args


def train(args: argparse.Namespace) -> float:
    """Run `seq2seq train` (under torchrun when --processes > 1); returns wall seconds."""
    budget = load_config(args.config, args.overrides).train.batch_tokens
    overrides = [
        f"--run_dir={args.run_dir}",
        f"--train.max_minutes={args.minutes}",
        "--train.progress=false",
        *args.overrides,
        f"--train.batch_tokens={budget // args.processes}",
    ]
    command = [sys.executable, "-m", "seq2seq.cli", "train", args.config, *overrides]
    if args.processes > 1:
        command[1:3] = [
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={args.processes}",
            "-m",
            "seq2seq.cli",
        ]
    started = time.monotonic()
    threads = {"OMP_NUM_THREADS": "1"} if args.processes > 1 else {}
    with LoadSampler() as load:
        subprocess.run(command, check=True, env={**os.environ, **threads})
    args.mean_load = load.mean()
    return time.monotonic() - started


class LoadSampler:
    """Samples the 1-minute load average every 30 s: other jobs on the machine slow training."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stop.wait(30.0):
            self.samples.append(os.getloadavg()[0])

    def mean(self) -> float:
        """Mean of the samples (0 when none)."""
        return sum(self.samples) / max(len(self.samples), 1)

    def __enter__(self) -> LoadSampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()


def training_facts(run_dir: Path) -> dict[str, Any]:
    """Steps, epochs, throughput and best validation BLEU from metrics.jsonl."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logs = [r for r in records if "tokens_per_s" in r]
    end = [r for r in records if "stopped" in r][-1]
    return {
        "steps": end["step"],
        "epochs": logs[-1]["epoch"] if logs else 0,
        "tokens_per_s": sum(r["tokens_per_s"] for r in logs) / max(len(logs), 1),
        "elapsed_s": end["elapsed_s"],
        "stopped": end["stopped"],
        "best_val_bleu": end["best_val_bleu"],
        "precision": end.get("precision", "fp32"),  # runs before train.precision: auto
    }


def score_splits(model: Path, splits: list[str], device: str = "cpu") -> list[dict[str, Any]]:
    """BLEU/chrF of greedy and beam-5 translations of every split."""
    translator = Translator.load(model, device=device)
    config = load_config(PRESET).data
    rows = []
    for split in splits:
        src_path, ref_path = parallel_files(config, split)
        sources, references = read_lines(src_path), read_lines(ref_path)
        row: dict[str, Any] = {"split": split}
        for beam in (1, 5):
            started = time.monotonic()
            hypotheses = translator.translate(sources, SearchOptions(beam_size=beam), batch_size=64)
            row[f"beam{beam}"] = {
                **corpus_scores(hypotheses, references),
                "seconds": round(time.monotonic() - started, 1),
            }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def average_run(run_dir: Path, count: int) -> list[int]:
    """Average the run's last `count` step-<step>.pt models into RUN_DIR/averaged.pt.

    Returns the steps averaged."""
    kept = step_checkpoints(run_dir)
    if len(kept) < 2:
        raise SystemExit(f"--average: {run_dir} holds {len(kept)} step-*.pt checkpoint(s)")
    averaged = average_checkpoints(kept[-count:])
    save_checkpoint(averaged, run_dir / "averaged.pt")
    return list(averaged.metadata["averaged"]["steps"])


def score_average(
    run_dir: Path, args: argparse.Namespace
) -> tuple[list[int], list[dict[str, Any]]]:
    """Average the last --average checkpoints and score the result like best.pt."""
    steps = average_run(run_dir, args.average)
    return steps, score_splits(run_dir / "averaged.pt", args.splits, args.device)


def table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown table of greedy and beam-5 scores per split."""
    lines = [
        "| set | sentences | BLEU greedy | chrF greedy | BLEU beam 5 | chrF beam 5 | "
        "decode s (greedy / beam 5) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        greedy, beam = row["beam1"], row["beam5"]
        lines.append(
            f"| {row['split']} | {greedy['sentences']} | {greedy['bleu']:.2f} | "
            f"{greedy['chrf']:.2f} | {beam['bleu']:.2f} | {beam['chrf']:.2f} | "
            f"{greedy['seconds']:.0f} / {beam['seconds']:.0f} |"
        )
    return lines


def averaged_report(steps: list[int], rows: list[dict[str, Any]]) -> list[str]:
    """The averaged model's paragraph and table."""
    return [
        "",
        f"The mean of the last {len(steps)} validated checkpoints (steps "
        f"{', '.join(map(str, steps))}; `seq2seq average`), scored the same way:",
        "",
        *table(rows),
    ]


def report(
    args: argparse.Namespace,
    facts: dict[str, Any],
    rows: list[dict[str, Any]],
    wall: float | None,
    averaged: tuple[list[int], list[dict[str, Any]]] | None = None,
) -> str:
    """The BENCHMARKS.md section body."""
    config = load_config(args.config, [f"--run_dir={args.run_dir}", *args.overrides])
    model = config.model
    lines = [
        f"Preset `{Path(args.config).name}` ({' '.join(args.overrides) or 'no overrides'}): "
        f"embedding {model.embedding_size}, hidden {model.hidden_size}, {model.num_layers} "
        f"layer{'s' if model.num_layers > 1 else ''} a side, vocab "
        f"{config.tokenizer.vocab_size} per language, reversed source, no attention.",
        f"Training: {hardware(args.processes, config.train.device, facts['precision'])}, "
        f"budget {args.minutes:g} min; "
        f"stopped by {facts['stopped']} after {facts['steps']} steps "
        f"(epoch {facts['epochs']}), {facts['elapsed_s'] / 60:.1f} min in the loop"
        + (f", {wall / 60:.1f} min wall with data and tokenizer preparation" if wall else "")
        + (
            f", mean load average {args.mean_load:.1f} on {os.cpu_count()} cores"
            if getattr(args, "mean_load", 0)
            else ""
        )
        + f"; mean {facts['tokens_per_s']:.0f} target tokens/s; "
        f"best validation BLEU (greedy, {config.train.eval_sentences or 'all'} sentences) "
        f"{facts['best_val_bleu']:.2f}.",
        "",
        *table(rows),
    ]
    if averaged:
        lines += averaged_report(*averaged)
    first = rows[0]["beam1"]
    lines += [
        "",
        f"Signatures: `{first['bleu_signature']}`, `{first['chrf_signature']}`.",
    ]
    return "\n".join(lines)


def hardware(processes: int, device: str, precision: str | None = None) -> str:
    """Where training ran (CPU processes and threads, or the GPU), and at what precision."""
    if device != "cpu" and torch.cuda.is_available():
        place = f"{processes} process(es) on {torch.cuda.get_device_name(0)}"
    elif processes == 1:
        place = f"1 process x {torch.get_num_threads()} threads"
    else:
        place = f"{processes} processes x 1 thread"
    return place if precision is None else f"{place}, {precision}"


def main() -> int:
    args = parse_args()
    args.device = load_config(args.config, args.overrides).train.device
    if not (default_data_dir() / "train.de.gz").exists():
        print(f"Multi30k not found at {default_data_dir()} (set SEQ2SEQ_DATA)", file=sys.stderr)
        return 2
    QUIET.touch()
    try:
        wall = None if args.skip_training else train(args)
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        rows = score_splits(Path(args.run_dir) / "best.pt", args.splits, args.device)
        averaged = score_average(Path(args.run_dir), args) if args.average else None
    finally:
        QUIET.unlink(missing_ok=True)
    body = report(args, training_facts(Path(args.run_dir)), rows, wall, averaged)
    if args.notes:
        body += "\n\n" + Path(args.notes).read_text(encoding="utf-8").strip()
    print(body)
    if not args.no_report:
        write_section(args.section, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
