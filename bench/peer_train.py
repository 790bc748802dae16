"""Training speed against OpenNMT-py, back to back: same architecture, data, batch size and minutes.

For each size (the preset, 1 LSTM layer a side of width 256, and 2 layers of 512) it trains
OpenNMT-py 3.5.1 through `../shared/peers/03_train_onmt.sh` (no attention, the preset's
dropout 0.3, label smoothing 0.1, 1,600-token batches, Adam) and then this project with the
README's command, `seq2seq train training/configs/multi30k_de_en.yaml`, for the same minutes,
one job at a time on a quiet machine (`--rounds` repeats the pair, alternating which goes
first). Both read
Multi30k's 29,000 training pairs. It reports optimizer steps, training sentences and target
tokens per second over each training loop (ours includes its validations and checkpoints;
the peer's, as configured by its scripts, does neither), and validation perplexity per target
token at the end (each toolkit's own subwords: 15.7 tokens a sentence for both).
Target tokens a sentence show what each toolkit trained on: with OpenNMT-py's default
`bucket_size` (262,144 examples, 9 passes over Multi30k) its batcher keeps one copy of a
source sentence a batch and drops most copies of the longer sentences, so its sentences are
shorter than the corpus's; `--peer-bucket 29000` sorts one pass at a time, as ours does.
Each run's matrix multiplies are counted (`bench.ceiling`) and set against this machine's
matmul rate, to show what a faster step would have to reach. `--precisions fp32 bf16` adds a
run of ours under bf16 autocast after each of its fp32 runs (on CPUs with bfloat16
instructions), set against the same run of the peer, which trains in fp32 on a CPU;
`auto` runs the preset's own `train.precision: auto` (bf16 where its probe finds bf16 faster).

    python -m bench.peer_train --minutes 5 --sizes preset 2x512
    python -m bench.peer_train --minutes 5 --sizes preset --peer-bucket 29000 --work runs/pb
    python -m bench.peer_train --peer-bucket 29000 --precisions fp32 bf16 --work runs/pb16
    python -m bench.peer_train --peer-bucket 29000 --precisions fp32 auto --work runs/pba
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from bench import ceiling, peers
from bench.peers import SIZES, Size
from bench.report import publish
from bench.timing import table, wait_for_quiet
from seq2seq import ModelConfig, load_checkpoint
from seq2seq.precision import cpu_bf16_autocast_works
from training.config import load_config

SECTION = "Training speed against OpenNMT-py (Multi30k de->en)"
PRESET = peers.REPO / "training/configs/multi30k_de_en.yaml"
CORPUS = 29_000
"""Multi30k's training pairs."""
BUCKET = 262_144
"""OpenNMT-py's default `bucket_size`: the examples it sorts into batches at a time. On
Multi30k that is 9 passes over the corpus, and its batcher keeps one copy of a source
sentence a batch, so most copies of the longer, rarer sentences are dropped. 29,000 (one
pass a bucket) trains on what ours does."""


def train_peer(size: Size, minutes: int, run_dir: Path, bucket: int = BUCKET) -> dict[str, Any]:
    """Train OpenNMT-py for `minutes` through its script, sorting `bucket` examples at a time;
    its figures and validation ppl."""
    settings = {"ONMT_RUN_DIR": str(run_dir.resolve()), "TRAIN_MINUTES": str(minutes)}
    env = peers.script_env({**size.peer_env(), **settings, "ONMT_BUCKET_SIZE": str(bucket)})
    load = os.getloadavg()[0]
    subprocess.run(
        ["bash", str(peers.SCRIPTS / "03_train_onmt.sh")],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    stats = json.loads((run_dir / "train_stats.json").read_text())
    rates = peers.onmt_steady_rates(peers.onmt_report_lines(run_dir / "stdout.log"))
    return {
        "toolkit": "OpenNMT-py",
        "size": size.name,
        "steps": stats["steps"],
        "seconds": stats["train_loop_s"],
        **rates,
        "val_ppl": onmt_val_ppl(run_dir / "final.pt"),
        "load": (load, os.getloadavg()[0]),
        "bucket": bucket,
    }


def onmt_val_ppl(model: Path) -> float:
    """OpenNMT-py's perplexity of the validation references per target token (EOS included).

    `onmt_translate -tgt` prints the references' mean log-likelihood per sentence as its GOLD
    SCORE (and, in 3.5.1, exponentiates that per-sentence figure as its GOLD PPL); this divides
    it by the references' subwords instead."""
    sp = peers.PEERS / "work" / "sp"
    result = subprocess.run(
        [str(peers.onmt_bin("onmt_translate")), "-model", str(model), "-src", str(sp / "val.sp.de"),
         "-tgt", str(sp / "val.sp.en"), "-output", os.devnull, "-gpu", "-1", "-beam_size", "1"],
        env=peers.script_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    match = re.search(r"GOLD SCORE:\s*(-?[\d.]+)", result.stdout + result.stderr)
    if match is None:
        raise RuntimeError(f"onmt_translate printed no GOLD SCORE: {result.stderr[-300:]}")
    lines = (sp / "val.sp.en").read_text().splitlines()
    tokens = sum(len(line.split()) + 1 for line in lines)  # + EOS
    return math.exp(-float(match.group(1)) * len(lines) / tokens)


def train_ours(
    size: Size,
    minutes: int,
    run_dir: Path,
    overrides: tuple[str, ...] = (),
    precision: str = "fp32",
) -> dict[str, Any]:
    """Train this project for `minutes` with the README's command (and `overrides`, each
    "section.key=value") at `precision`; its figures, with the precision `auto` chose."""
    command = [
        sys.executable, "-m", "seq2seq.cli", "train", str(PRESET), f"--run_dir={run_dir}",
        f"--train.max_minutes={minutes}", "--train.progress=false", *size.our_overrides(),
        *(f"--{override}" for override in overrides), f"--train.precision={precision}",
    ]  # fmt: skip
    load = os.getloadavg()[0]
    run_dir.mkdir(parents=True)
    with (run_dir / "stderr.log").open("w") as log:
        subprocess.run(command, check=True, stderr=log)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    end = next(record for record in reversed(records) if "stopped" in record)
    final = next(record for record in reversed(records) if "val_ppl" in record)
    return {
        "toolkit": "seq2seq",
        "requested": precision,
        "precision": end.get("precision", precision),
        "size": size.name,
        "steps": end["step"],
        "seconds": end["elapsed_s"],
        "steps_per_s": end["step"] / end["elapsed_s"],
        "sentences_per_s": end["sentences"] / end["elapsed_s"],
        "tokens_per_s": end["tokens"] / end["elapsed_s"],
        "val_ppl": final["val_ppl"],
        "load": (load, os.getloadavg()[0]),
    }


def run_size(size: Size, args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    """`args.rounds` back-to-back series of runs at `size` (the peer's, then ours at each of
    `args.precisions`), alternating which goes first."""
    results = []
    jobs: list[tuple[str, Any]] = [("peer", functools.partial(train_peer, bucket=args.peer_bucket))]
    for precision in args.precisions:
        job = functools.partial(train_ours, overrides=tuple(args.override), precision=precision)
        jobs.append((our_name(precision), job))
    for round_ in range(args.rounds):
        for name, job in jobs if round_ % 2 == 0 else jobs[::-1]:
            wait_for_quiet()
            run_dir = scratch / f"{size.name}-{name}-{round_}"
            results.append(earlier(run_dir, args) or measured(job, size, args.minutes, run_dir))
    return results


def our_name(precision: str) -> str:
    """Our runs' folder name at `precision` (fp32's without a suffix, as before bf16 runs)."""
    return "ours" if precision == "fp32" else f"ours-{precision}"


def run_name(result: dict[str, Any]) -> str:
    """The folder name of a run's result."""
    if result["toolkit"] != "seq2seq":
        return "peer"
    return our_name(result.get("requested", result.get("precision", "fp32")))


def precision_label(result: dict[str, Any]) -> str:
    """How a run of ours was asked to train, and what `auto` chose ("auto: bf16")."""
    precision = result.get("precision", "fp32")
    requested = result.get("requested", precision)
    return precision if requested == precision else f"{requested}: {precision}"


def earlier(run_dir: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    """The result a finished run of this series left (an interrupted series resumes)."""
    saved = run_dir / "result.json"
    if args.retrain or not saved.is_file():
        return None
    result = dict(json.loads(saved.read_text()))
    if result["toolkit"] == "OpenNMT-py" and result.get("bucket", BUCKET) != args.peer_bucket:
        return None
    return result


def measured(job: Any, size: Size, minutes: int, run_dir: Path) -> dict[str, Any]:
    """Run `job` in a fresh `run_dir` and keep its result there."""
    shutil.rmtree(run_dir, ignore_errors=True)
    result: dict[str, Any] = job(size, minutes, run_dir)
    (run_dir / "result.json").write_text(json.dumps(result))
    print(json.dumps(result), flush=True)
    return result


def output_rows(result: dict[str, Any], work: Path) -> int:
    """The width of a run's output layer: its target vocabulary, read from its model (the
    first round's: every round of a series has the same)."""
    name = run_name(result)
    return _model_rows(work / f"{result['size']}-{name}-0", name != "peer")


@functools.cache
def _model_rows(run_dir: Path, ours: bool) -> int:
    if ours:
        config = load_checkpoint(run_dir / "best.pt", weights=False).config
        assert isinstance(config, ModelConfig)
        return config.tgt_vocab_size
    saved = torch.load(run_dir / "final.pt", map_location="cpu", weights_only=False, mmap=True)
    return int(saved["generator"]["weight"].shape[0])


def matmul_rate(result: dict[str, Any], work: Path) -> float:
    """FLOP/s of the run's matrix multiplies (`bench.ceiling`'s count: the LSTMs and the
    output layer, forward and backward), counting as many source tokens as target tokens."""
    size, rows = SIZES[result["size"]], output_rows(result, work)
    config = ModelConfig(
        src_vocab_size=rows, tgt_vocab_size=rows, embedding_size=256,
        hidden_size=size.hidden, num_layers=size.layers,
    )  # fmt: skip
    per_token = ceiling.training_flops(config, src_tokens=1, tgt_tokens=1)
    return per_token * float(result["tokens_per_s"])


def ceiling_note(results: list[dict[str, Any]], work: Path, peak: float) -> str:
    """What 1.3x the peer's sentences/s would take of this machine's matmul rate, per size."""
    needs = []
    for size in dict.fromkeys(result["size"] for result in results):
        ours = [r for r in results if r["size"] == size and run_name(r) == "ours"]
        peer = [r for r in results if r["size"] == size and r["toolkit"] == "OpenNMT-py"]
        if not ours or not peer:
            continue
        scale = 1.3 * _mean(peer, "sentences_per_s") / _mean(ours, "sentences_per_s")
        need = scale * sum(matmul_rate(r, work) for r in ours) / len(ours)
        needs.append(f"{size} {need / 1e9:.0f} GFLOP/s ({need / peak:.0%})")
    ceiling_line = (
        "Matmul ceiling (`bench.ceiling`, a 2048^3 fp32 multiply through oneDNN where torch has "
        "it, as the model's layers multiply, best of 3 medians, measured "
        f"as this section was written): {peak / 1e9:.0f} GFLOP/s."
    )
    if not needs:  # no fp32 run of ours in this series
        return ceiling_line
    return (
        f"{ceiling_line} At the same batches, 1.3x the peer's sentences/s in fp32 would need "
        "our matrix multiplies to run at " + ", ".join(needs) + " of it."
    )


def _mean(results: list[dict[str, Any]], key: str) -> float:
    return sum(float(r[key]) for r in results) / len(results)


def ratio_rows(results: list[dict[str, Any]]) -> list[list[object]]:
    """Per size and our precision, ours over the peer's: steps/s, sentences/s and target
    tokens/s (means of rounds)."""
    rows: list[list[object]] = []
    for size in dict.fromkeys(result["size"] for result in results):
        peer = [r for r in results if r["size"] == size and r["toolkit"] == "OpenNMT-py"]
        for name in dict.fromkeys(run_name(r) for r in results if r["toolkit"] == "seq2seq"):
            ours = [r for r in results if r["size"] == size and run_name(r) == name]
            if not ours or not peer:
                continue
            cells: list[object] = [size, precision_label(ours[0])]
            for key in ("steps_per_s", "sentences_per_s", "tokens_per_s"):
                cells.append(f"**{_mean(ours, key) / _mean(peer, key):.2f}x**")
            rows.append(cells)
    return rows


def overrides(args: argparse.Namespace) -> str:
    """The clause naming our runs' preset overrides, if any."""
    if not args.override:
        return ""
    return ", with " + ", ".join(f"`--{override}`" for override in args.override)


def bucket_note(bucket: int) -> str:
    """What the peer's bucket size means for the sentences it trains on."""
    if bucket > CORPUS:
        return (
            f" ({bucket / CORPUS:.0f} passes over the corpus a bucket, and one copy of a source "
            "sentence a batch: the longer sentences' copies are mostly dropped, so its sentences "
            "are shorter than the corpus's and more of them fit a batch)"
        )
    return " (no more than one pass over the corpus a bucket: every pair trains once a pass)"


def run_row(result: dict[str, Any], work: Path, peaks: dict[str, float]) -> list[object]:
    """One run as a table row; its matmul rate set against the ceiling of its precision."""
    load, rate = result["load"], matmul_rate(result, work)
    precision = result.get("precision", "fp32")
    label = precision_label(result) if result["toolkit"] == "seq2seq" else "fp32"
    toolkit = result["toolkit"] + ("" if label == "fp32" else f" {label}")
    return [
        result["size"],
        toolkit,
        result["steps"],
        f"{result['seconds']:.0f}",
        f"{result['steps_per_s']:.2f}",
        f"{result['sentences_per_s']:.0f}",
        f"{result['tokens_per_s']:,.0f}",
        f"{result['tokens_per_s'] / result['sentences_per_s']:.2f}",
        f"{result['val_ppl']:.2f}",
        output_rows(result, work),
        f"{rate / 1e9:.0f} ({rate / peaks[precision]:.0%})",
        f"{load[0]:.2f} / {load[1]:.2f}",
    ]


RUN_HEADER = ["size", "toolkit", "steps", "loop s", "steps/s", "sentences/s", "target tokens/s",
              "target tokens a sentence", "val ppl", "output rows", "matmul GFLOP/s (of ceiling)",
              "load before / after"]  # fmt: skip
RATIO_HEADER = ["size", "ours in", "steps/s ours/peer", "sentences/s", "target tokens/s"]


def report(results: list[dict[str, Any]], args: argparse.Namespace, peaks: dict[str, float]) -> str:
    """The section: the setting, every run, the ratios, then what 1.3x would take."""
    return "\n".join(
        [
            f"{args.minutes} minutes of training each, one job at a time, on the CPU "
            f"(2 threads each), {precision_note(args.precisions, peaks)}. Sizes: preset = 1 "
            "LSTM layer a side, embeddings and hidden 256; 2x512 = 2 layers of 512, "
            "embeddings 256. Ours: rates over its whole training loop, its validations "
            f"(every {load_config(PRESET, []).train.eval_every} steps) and "
            f"checkpoints included{overrides(args)}. OpenNMT-py: from its "
            "first progress report to its last, which leaves out its reading of the corpus "
            "(ours reads it before the loop); its scripts validate and save only at the end; "
            f"`bucket_size: {args.peer_bucket}`{bucket_note(args.peer_bucket)}. "
            "Perplexity: validation references, per target subword of each toolkit (about "
            "15.7 a sentence in both).",
            "",
            table(RUN_HEADER, [run_row(result, args.work, peaks) for result in results]),
            "",
            table(RATIO_HEADER, ratio_rows(results)),
            "",
            ceiling_note(results, args.work, peaks["fp32"]),
            *(["", args.notes] if args.notes else []),
        ]
    )


def precision_note(precisions: list[str], peaks: dict[str, float]) -> str:
    """Which precisions ran, and the bf16 ceiling where it did."""
    if precisions == ["fp32"]:
        return "fp32"
    bf16 = (
        f", whose bf16 matmul ceiling measured {peaks['bf16'] / 1e9:.0f} GFLOP/s"
        if "bf16" in peaks
        else ""
    )
    auto = (
        "; auto is the preset's `train.precision: auto`, which times a few fp32 and bf16 steps "
        "as the run starts and takes bf16 if it is at least 1.1x faster"
        if "auto" in precisions
        else ""
    )
    return (
        "the peer in fp32, ours in " + " and ".join(precisions) + " (`--train.precision`; "
        "bf16 is autocast, with fp32 weights and optimizer state, on a CPU with bfloat16 "
        f"instructions{bf16}{auto}; each run's matmul rate below is set against the ceiling "
        "of the precision it trained at)"
    )


def ceilings(precisions: list[str]) -> dict[str, float]:
    """This machine's matmul rate at each precision, best of 3 (its speed wanders)."""
    peaks = {"fp32": max(ceiling.matmul_flops() for _ in range(3))}
    if {"bf16", "auto"} & set(precisions):  # None where the CPU has no bf16 instructions
        bf16 = [rate for _ in range(3) if (rate := ceiling.bf16_matmul_flops()) is not None]
        if bf16:
            peaks["bf16"] = max(bf16)
    return peaks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=5, help="training minutes per run")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--rounds", type=int, default=1, help="back-to-back pairs per size")
    parser.add_argument("--work", type=Path, default=peers.RUNS, help="where the runs stay")
    parser.add_argument("--notes", default="", help="a sentence added to the section")
    parser.add_argument(
        "--override", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="a preset setting for our runs only, e.g. tokenizer.vocab_size=4000 (repeatable; "
        "give another --work so earlier runs are not reused)",
    )  # fmt: skip
    parser.add_argument(
        "--peer-bucket", type=int, default=BUCKET,
        help=f"OpenNMT-py's bucket_size (default {BUCKET}, its own; {CORPUS}: one pass a bucket)",
    )  # fmt: skip
    parser.add_argument(
        "--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16", "auto"],
        help="our runs' train.precision, each against the same peer run (bf16 needs a CPU with "
        "bfloat16 instructions; auto is the preset's own choice)",
    )  # fmt: skip
    parser.add_argument("--section", default=SECTION, help="BENCHMARKS.md section to write")
    parser.add_argument("--retrain", action="store_true", help="rerun runs that have results")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    reason = peers.missing()
    if reason:
        print(f"skipped: {reason}")
        return 0
    if "bf16" in args.precisions and not cpu_bf16_autocast_works():
        print("skipped: bf16 needs a CPU with bfloat16 instructions, and this one has none")
        return 0
    results = [r for name in args.sizes for r in run_size(SIZES[name], args, args.work)]
    wait_for_quiet()
    peaks = ceilings(args.precisions)
    body = report(results, args, peaks)
    publish(args.section, body, write=args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
