"""The default model's speed against another git revision: greedy decoding and a training step.

New model options must not slow the default model (one LSTM layer a side, the preset's sizes).
`python -m bench.path_speed --against REV` times the same work in fresh processes, taking
turns between this tree's `seq2seq` and `git archive REV seq2seq`'s: greedy search over 64
random sentences in one batch and over 16 one at a time, and one training step (forward with
the real target positions, backward, Adam) on a 64 x 25 batch. The weights come from the same
seed in both trees, so both decode the same ids (checked). Ratios are this tree over REV, of
medians over `--rounds` interleaved rounds; one CPU thread; in a quiet window (`bench.quiet`;
`--pause PATTERN` stops a background job meanwhile) with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from bench import report
from bench.quiet import quiet_window
from bench.timing import median, table
from training.config import REPO

SECTION = "Default model speed against an earlier tree"
TIMED = """
import json, sys, time, torch
torch.set_num_threads(1)
import seq2seq
from seq2seq import ModelConfig, Seq2Seq
from seq2seq.search import greedy_search, max_lengths
torch.manual_seed(0)
config = ModelConfig(5000, 5000, embedding_size=256, hidden_size=256, num_layers=1, dropout=0.1)
model = Seq2Seq(config).eval()
g = torch.Generator().manual_seed(1)
src_len = torch.randint(5, 26, (64,), generator=g)
src = torch.randint(4, 5000, (64, 25), generator=g)
src[torch.arange(25) >= src_len.unsqueeze(1)] = 0
limit = max_lengths(src_len, a=1.5, b=10, cap=256)
def best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter(); out = fn(); times.append(time.perf_counter() - start)
    return min(times), out
batch_s, ids = best(lambda: greedy_search(model, src, src_len, max_len=limit), 3)
def ones():
    for i in range(16):
        n = int(src_len[i])
        greedy_search(model, src[i : i + 1, :n], src_len[i : i + 1], max_len=limit[i : i + 1])
one_s, _ = best(ones, 3)
tgt = torch.randint(4, 5000, (64, 25), generator=g)
tgt_in = torch.cat([torch.full((64, 1), 2), tgt[:, :-1]], 1)
full = torch.full((64,), 25)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
def step():
    model.train()
    logits = model(src, full, tgt_in, positions=tgt > 0)
    loss = torch.nn.functional.cross_entropy(logits, tgt[tgt > 0])
    optimizer.zero_grad(); loss.backward(); optimizer.step()
step()
train_s, _ = best(step, 5)
print(seq2seq.__file__, json.dumps({"greedy_batch": batch_s, "greedy_one": one_s,
      "train_step": train_s, "ids": hash(str(ids))}))
"""
"""One fresh process: its seq2seq's file, then its best times (s) and a hash of its ids."""
MEASURES = {
    "greedy_batch": "greedy search, 64 sentences in one batch",
    "greedy_one": "greedy search, 16 sentences one at a time",
    "train_step": "training step, 64 x 25 tokens (forward, backward, Adam)",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", required=True, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--pause", help="stop processes matching this while measuring")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    return parser.parse_args()


def timed_process(tree: str) -> dict[str, float]:
    """The figures of one fresh process importing `tree`'s seq2seq."""
    done = subprocess.run(
        [sys.executable, "-c", TIMED],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": tree, "PYTHONHASHSEED": "0"},
        check=True,
        capture_output=True,
        text=True,
    )
    where, figures = done.stdout.strip().split(" ", 1)
    if not where.startswith(tree):
        raise RuntimeError(f"the timed process imported {where}, not the tree under {tree}")
    return dict(json.loads(figures))


def compare(revision: str, rounds: int) -> dict[str, list[dict[str, float]]]:
    """Every round's figures of this tree ('this') and of `revision` ('then'), in turn."""
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", revision, "seq2seq"],
            check=True,
            capture_output=True,
        )
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        trees = {"this": str(REPO), "then": folder}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(rounds):
            for name, tree in trees.items():
                runs[name].append(timed_process(tree))
    return runs


def render(args: argparse.Namespace, runs: dict[str, list[dict[str, float]]], load: str) -> str:
    """The section: per measure the medians of both trees and their ratio."""
    rows = []
    for key, label in MEASURES.items():
        this, then = (median([run[key] for run in runs[name]]) for name in ("this", "then"))
        rows.append([label, f"{1000 * then:.1f}", f"{1000 * this:.1f}", f"{this / then:.3f}"])
    same = {run["ids"] for run in runs["this"] + runs["then"]}
    return "\n".join(
        [
            f"The preset's model shape (embedding 256, hidden 256, one LSTM layer a side, "
            f"5000 subwords), random weights from one seed, one CPU thread; fresh processes "
            f"alternately with this tree's `seq2seq` and `git archive {args.against} seq2seq`'s, "
            f"{args.rounds} rounds, each figure the best of 3 to 5 calls in a process, then the "
            f"median over rounds. {load}. Both decoded "
            f"{'the same ids' if len(same) == 1 else 'DIFFERENT ids'}.",
            "",
            table(["ms (median)", f"`{args.against}`", "this tree", "ratio"], rows),
        ]
    )


def main() -> None:
    args = parse_args()
    with quiet_window("bench.path_speed", minutes=10, pause=args.pause) as load:
        runs = compare(args.against, args.rounds)
    body = render(
        args, runs, f"Load average (1 minute) {load.before:.2f} before, {load.after:.2f} after"
    )
    print(body)
    if args.write:
        report.write_section(SECTION, body)


if __name__ == "__main__":
    main()
