"""Does bf16 autocast train the same model as fp32? Loss curves at equal steps, not equal time.

`python -m bench.precision_curve --steps 1500` trains the Multi30k de->en preset three times
for the same optimizer steps, one run at a time: fp32, bf16 (autocast: the LSTMs and the
output layer multiply in bf16; weights, Adam's state and the loss stay fp32) and fp32 from
another seed. The rate schedule decays over the steps rather than over minutes, so the three
runs see the same learning rate at every step, and fp32 and bf16 also see the same batches
and dropout masks. It writes the training loss per block of steps and the validation
perplexity and BLEU at every evaluation side by side, with how far bf16's curve lies from
fp32's against how far another seed's lies: the scale of a difference that does not matter.
Needs a CPU with bfloat16 instructions (or a GPU); elsewhere it says so and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from bench import quality, variants
from bench.report import publish
from bench.timing import table, wait_for_quiet
from seq2seq.precision import cpu_bf16_autocast_works
from training.config import REPO, default_data_dir

SECTION = "bf16 against fp32 at equal steps (Multi30k de->en)"
PRESET = REPO / "training/configs/multi30k_de_en.yaml"
RUNS = {"fp32": ["--train.precision=fp32"], "bf16": ["--train.precision=bf16"],
        "fp32 seed 2": ["--train.precision=fp32", "--seed=2"]}  # fmt: skip
BLOCKS = 10
"""Blocks of steps the training loss is averaged over, for the table."""
SETTLED = 0.2
"""The share of the steps left out of the curve distances (the first fall of the loss)."""


def train(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train the preset as `RUNS[name]` says for `args.steps` steps; its metrics.jsonl records."""
    run_dir = args.work / name.replace(" ", "-")
    metrics = run_dir / "metrics.jsonl"
    if not (run_dir / "done").is_file():
        shutil.rmtree(run_dir, ignore_errors=True)
        variants.prepare_run_dir(run_dir, args.work / "fp32")  # fp32's subwords for every run
        steps = [f"--train.max_steps={args.steps}", f"--train.eval_every={args.eval_every}"]
        run = argparse.Namespace(
            config=str(PRESET), run_dir=str(run_dir), minutes=0, processes=1,
            overrides=[*steps, "--train.shortlist=false", *RUNS[name]],
        )  # fmt: skip
        wait_for_quiet()
        load = os.getloadavg()[0]
        quality.train(run)  # `seq2seq train`; minutes=0: the rate decays over the steps
        (run_dir / "done").write_text(json.dumps({"load": [load, os.getloadavg()[0]]}))
    return [json.loads(line) for line in metrics.read_text().splitlines()]


def blocks(records: list[dict[str, Any]], steps: int) -> list[float]:
    """The mean training loss of each of `BLOCKS` equal blocks of steps."""
    windows = [r for r in records if "train_loss" in r]
    size = steps / BLOCKS
    means = []
    for block in range(BLOCKS):
        inside = [
            r["train_loss"] for r in windows if block * size < r["step"] <= (block + 1) * size
        ]
        means.append(sum(inside) / len(inside))
    return means


def distance(curve: list[float], reference: list[float]) -> float:
    """Mean absolute difference of two block curves after the first `SETTLED` of the steps."""
    start = round(BLOCKS * SETTLED)
    pairs = list(zip(curve[start:], reference[start:], strict=True))
    return sum(abs(a - b) for a, b in pairs) / len(pairs)


def loss_rows(curves: dict[str, list[float]], steps: int) -> list[list[object]]:
    """One row per block: its steps and each run's mean training loss."""
    size = steps // BLOCKS
    return [
        [f"{block * size + 1}-{(block + 1) * size}", *(f"{c[block]:.3f}" for c in curves.values())]
        for block in range(BLOCKS)
    ]


def validation_rows(records: dict[str, list[dict[str, Any]]]) -> list[list[object]]:
    """One row per evaluation: each run's validation perplexity, then its BLEU."""
    evals = {name: {r["step"]: r for r in rs if "val_ppl" in r} for name, rs in records.items()}
    rows: list[list[object]] = []
    for step in sorted(evals["fp32"]):
        cells = [evals[name].get(step) for name in records]
        rows.append(
            [step]
            + [f"{c['val_ppl']:.2f}" if c else "" for c in cells]
            + [f"{c['val_bleu']:.2f}" if c else "" for c in cells]
        )
    return rows


def report(records: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> str:
    """The section: the setting, both tables and the distances between the curves."""
    curves = {name: blocks(rs, args.steps) for name, rs in records.items()}
    loads = {
        name: json.loads((args.work / name.replace(" ", "-") / "done").read_text())["load"]
        for name in records
    }
    ends = {name: next(r for r in reversed(rs) if "stopped" in r) for name, rs in records.items()}
    names = list(records)
    bf16, seed = (
        distance(curves["bf16"], curves["fp32"]),
        distance(curves[names[2]], curves["fp32"]),
    )
    return "\n".join(
        [
            f"The preset, {args.steps} optimizer steps each (`--train.max_minutes=0`: the rate "
            "decays over the steps, so every run has the same rate at the same step), "
            f"validated every {args.eval_every} steps on the whole of val (loss) and 400 "
            "sentences (greedy BLEU), one run at a time on the CPU (2 threads). fp32 and bf16 "
            "share the seed, hence the initial weights, batches and dropout masks; the third "
            "run is fp32 from seed 2. Training loss: label-smoothed cross-entropy per target "
            f"token, mean of each block of {args.steps // BLOCKS} steps.",
            "",
            table(["steps", *names], loss_rows(curves, args.steps)),
            "",
            table(
                ["step", *(f"val ppl {n}" for n in names), *(f"val BLEU {n}" for n in names)],
                validation_rows(records),
            ),
            "",
            f"Mean distance of the training-loss curves over the last {1 - SETTLED:.0%} of the "
            f"steps: bf16 from fp32 **{bf16:.3f}** nats, seed 2 from seed 1 **{seed:.3f}**. "
            "Seconds in the training loop (validations included): "
            + ", ".join(f"{n} {ends[n]['elapsed_s']:.0f}" for n in names)
            + " (steps/s "
            + ", ".join(f"{n} {args.steps / ends[n]['elapsed_s']:.2f}" for n in names)
            + "). Load average before / after: "
            + ", ".join(f"{n} {a:.2f} / {b:.2f}" for n, (a, b) in loads.items())
            + ".",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps a run")
    parser.add_argument("--eval-every", type=int, default=300, help="steps between validations")
    parser.add_argument("--work", type=Path, default=Path("runs/precision_curve"))
    parser.add_argument("--section", default=SECTION, help="BENCHMARKS.md section to write")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    if args.steps < BLOCKS * 25:
        parser.error(f"--steps must be at least {BLOCKS * 25} (a logged window a block)")
    if not (default_data_dir() / "train.de.gz").exists():
        print(f"skipped: Multi30k not found at {default_data_dir()} (set SEQ2SEQ_DATA)")
        return 0
    if not cpu_bf16_autocast_works():
        print("skipped: bf16 needs a CPU with bfloat16 instructions, and this one has none")
        return 0
    records = {name: train(name, args) for name in RUNS}
    publish(args.section, report(records, args), write=args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
