"""Decoding speed against OpenNMT-py: whole `translate` commands on test_2016_flickr, back to back.

Times `seq2seq translate` (fp32 and int8, each also with `--shortlist`, unless `--modes` says
otherwise; the shortlist is learnt from the training text first, outside the timings) and
`onmt_translate` (through the peer venv of `../shared/peers/`) as users run them, process
start to exit, each with its defaults (batch sizes: ours 128 sentences, the peer's 30), greedy
and beam 5, on models of the same size trained by `bench.peer_train` for the same minutes.
The commands take turns, and each figure is the best of `--repeats`. The peer reads subwords
encoded beforehand and writes subwords (its SentencePiece work is outside its timing); ours
reads and writes plain text. BLEU of both outputs is beside the times, so a fast command is
not a short one.

    python -m bench.peer_decode --ours runs/peer_train/preset-ours-0/best.pt \
        --peer runs/peer_train/preset-peer-0/final.pt
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sacrebleu
import sentencepiece as spm

from bench import peers
from bench.report import publish
from bench.timing import table, wait_for_quiet

SECTION = "Decoding speed against OpenNMT-py (test_2016_flickr de->en)"
TEST = "test_2016_flickr"
HEADER = ["search", "ours at", "onmt_translate s", "seq2seq translate s", "speed-up",
          "BLEU peer", "BLEU ours"]  # fmt: skip


def ours_command(model: Path, beam: int, output: Path, mode: str) -> list[str]:
    """`seq2seq translate` on the raw German test set, at `mode` (`peers.MODES`)."""
    source = peers.PEERS / "work" / "raw" / f"{TEST}.de"
    return [sys.executable, "-m", "seq2seq.cli", "translate", "--model", str(model),
            "--input", str(source), "--output", str(output), "--beam-size", str(beam),
            *peers.mode_flags(mode)]  # fmt: skip


def peer_command(model: Path, beam: int, output: Path) -> list[str]:
    """`onmt_translate` on the test set in the peer's subwords."""
    source = peers.PEERS / "work" / "sp" / f"{TEST}.sp.de"
    return [str(peers.onmt_bin("onmt_translate")), "-model", str(model), "-src", str(source),
            "-output", str(output), "-beam_size", str(beam), "-gpu", "-1"]  # fmt: skip


def timed(command: list[str]) -> float:
    """Seconds from start to exit of `command` (its output discarded, its failure raised)."""
    env = peers.script_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def bleu(output: Path, *, pieces: bool) -> float:
    """BLEU of an output file against the English references (the peer's pieces decoded)."""
    lines = output.read_text().splitlines()
    if pieces:
        model = spm.SentencePieceProcessor(model_file=str(peers.PEERS / "work/sp/spm.model"))
        lines = [model.decode(line.split()) for line in lines]
    references = (peers.PEERS / "work" / "raw" / f"{TEST}.en").read_text().splitlines()
    return float(sacrebleu.corpus_bleu(lines, [references]).score)


def measure(
    args: argparse.Namespace, beam: int, scratch: Path, shortlisted: Path | None
) -> list[list[object]]:
    """Best-of-repeats seconds and BLEU of the peer's command and ours at each of
    `args.modes`, at `beam`, taking turns."""
    peer_out = scratch / f"peer.{beam}.sp"
    outputs = {mode: scratch / f"ours.{beam}.{mode}.txt" for mode in args.modes}
    ours: dict[str, list[float]] = {mode: [] for mode in args.modes}
    peer = []
    for _ in range(args.repeats):
        for mode, output in outputs.items():
            model = shortlisted if shortlisted and "shortlist" in mode else args.ours
            ours[mode].append(timed(ours_command(model, beam, output, mode)))
        peer.append(timed(peer_command(args.peer, beam, peer_out)))
    best_peer, peer_bleu = min(peer), bleu(peer_out, pieces=True)
    search = "greedy" if beam == 1 else f"beam {beam}"
    rows: list[list[object]] = []
    for precision, output in outputs.items():
        best = min(ours[precision])
        rows.append([search, precision, f"{best_peer:.2f}", f"{best:.2f}",
                     f"**{best_peer / best:.2f}x**", f"{peer_bleu:.2f}",
                     f"{bleu(output, pieces=False):.2f}"])  # fmt: skip
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", type=Path, default=peers.OUR_MODEL)
    parser.add_argument("--peer", type=Path, default=peers.PEER_MODEL)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command; best kept")
    parser.add_argument(
        "--modes", nargs="+", default=peers.MODES, choices=peers.MODES,
        help="our translate's --precision, and +shortlist for --shortlist (the peer: fp32)",
    )  # fmt: skip
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    reason = peers.missing() or ("" if args.peer.is_file() else f"no peer model at {args.peer}")
    if reason or not args.ours.is_file():
        print(f"skipped: {reason or f'no model at {args.ours}'} (run python -m bench.peer_train)")
        return 0
    wait_for_quiet()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as scratch:
        shortlisted, seconds = None, 0.0
        if any("shortlist" in mode for mode in args.modes):
            shortlisted, seconds = peers.add_shortlist(args.ours, Path(scratch))
        rows = [row for beam in (1, 5) for row in measure(args, beam, Path(scratch), shortlisted)]
    body = "\n".join(
        [
            f"Models: ours `{args.ours}`, the peer's `{args.peer}` (same size, trained for the "
            f"same minutes by `bench.peer_train`). 1,000 sentences on the CPU, 2 threads, the "
            "peer in fp32 and ours in each mode (int8: dynamic quantisation of the LSTM "
            "and linear weights, `--precision int8`; "
            f"{peers.SHORTLIST_NOTE.format(seconds=seconds)}); "
            f"best of {args.repeats}, taking turns. "
            f"Load average {load:.2f} before, {os.getloadavg()[0]:.2f} after.",
            "",
            table(HEADER, rows),
        ]
    )
    publish(SECTION, body, write=args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
