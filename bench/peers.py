"""Where the peer toolkit (OpenNMT-py, installed by `../shared/peers/`) lives, and how to call it.

The peer's scripts install it into `$PEERS` (default /tmp/peers): a venv in `onmt/`, and in
`work/` the Multi30k files encoded with its joint SentencePiece model. The side-by-side
benchmarks (`bench.peer_train`, `bench.peer_decode`) run it through those scripts and entry
points, so it is measured as its users run it, and skip with the reason when it is absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = Path(os.environ.get("SEQ2SEQ_PEERS_SCRIPTS", REPO.parent / "shared" / "peers"))
"""The peer scripts (01_install.sh ... 06_serve_onmt.sh)."""
PEERS = Path(os.environ.get("PEERS", "/tmp/peers"))
"""Their venvs, encoded data and runs (the scripts' `$PEERS`)."""

PRESET_ENV = {
    "ONMT_DROPOUT": "0.3",
    "ONMT_LR": "0.002",
    "ONMT_LS": "0.1",
    "ONMT_BATCH_TYPE": "tokens",
    "ONMT_BATCH": "1600",
}
"""The peer's settings for this project's preset (its README): dropout 0.3, label smoothing
0.1, batches of 1,600 tokens, Adam; layers and width are set per size."""


@dataclass(frozen=True)
class Size:
    """A model size both toolkits train: LSTM layers a side and their width."""

    name: str
    layers: int
    hidden: int

    def our_overrides(self) -> list[str]:
        """`seq2seq train` overrides for this size."""
        return [f"--model.num_layers={self.layers}", f"--model.hidden_size={self.hidden}"]

    def peer_env(self) -> dict[str, str]:
        """`03_train_onmt.sh` environment for this size."""
        return {**PRESET_ENV, "ONMT_LAYERS": str(self.layers), "ONMT_HIDDEN": str(self.hidden)}


RUNS = Path("runs/peer_train")
"""Where `bench.peer_train` keeps its runs, from the repository root (where every bench runs);
the other side-by-side benchmarks take their models, the first preset pair, from there."""
OUR_MODEL = RUNS / "preset-ours-0" / "best.pt"
PEER_MODEL = RUNS / "preset-peer-0" / "final.pt"

SIZES = {"preset": Size("preset", 1, 256), "2x512": Size("2x512", 2, 512)}


MODES = ["fp32", "int8", "fp32+shortlist", "int8+shortlist"]
"""How ours decodes beside the peer: a precision, and with `+shortlist` through a shortlist."""


def mode_flags(mode: str) -> list[str]:
    """`translate` / `serve` flags of a `MODES` entry."""
    precision, _, shortlist = mode.partition("+")
    return ["--precision", precision, *(["--shortlist"] if shortlist else [])]


def add_shortlist(model: Path, folder: Path) -> tuple[Path, float]:
    """A copy of `model` in `folder` with a lexical shortlist learnt from the training text by
    `seq2seq shortlist` (its defaults), and the seconds that command took."""
    raw, output = PEERS / "work" / "raw", folder / f"{model.stem}-shortlist.pt"
    command = [sys.executable, "-m", "seq2seq.cli", "shortlist", "--model", str(model),
               "--source", str(raw / "train.de"), "--target", str(raw / "train.en"),
               "-o", str(output)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return output, time.perf_counter() - started


SHORTLIST_NOTE = (
    "+shortlist: `--shortlist`, decoding over a lexical shortlist (each source piece's 10 "
    "likeliest target pieces by IBM Model 1, and the 100 commonest) that `seq2seq shortlist` "
    "learnt from the training text in {seconds:.1f} s, outside the timings"
)


def onmt_bin(name: str) -> Path:
    """An OpenNMT-py entry point (onmt_train, onmt_translate, onmt_server) in the peer venv."""
    return PEERS / "onmt" / "bin" / name


def missing() -> str:
    """Why the peer cannot run here ('' when it can): its scripts, venv or encoded data."""
    if not (SCRIPTS / "03_train_onmt.sh").is_file():
        return f"no peer scripts at {SCRIPTS}"
    if not onmt_bin("onmt_translate").is_file():
        return f"OpenNMT-py is not installed in {PEERS}/onmt: run {SCRIPTS}/01_install.sh"
    if not (PEERS / "work" / "sp" / "train.sp.de").is_file():
        return f"no encoded data in {PEERS}/work: run {SCRIPTS}/02_preprocess.sh"
    return ""


def script_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a peer script: this one, `$PEERS`, and `extra`."""
    return {**os.environ, "PEERS": str(PEERS), **extra}


def onmt_report_lines(log: Path) -> list[dict[str, float]]:
    """OpenNMT-py's training report lines (every 25 steps): step, sentences and target tokens
    in the window, and seconds since its training loop began."""
    pattern = re.compile(r"Step (\d+)/\s*\d+;.*?sents:\s*(\d+); bsz: \d+/(\d+)/\d+;.*?(\d+) sec;")
    rows = []
    for line in log.read_text().splitlines():
        match = pattern.search(line)
        if match:
            step, sents, tgt_per_step, sec = (float(group) for group in match.groups())
            rows.append({"step": step, "sentences": sents, "tgt": tgt_per_step, "seconds": sec})
    return rows


def onmt_steady_rates(rows: list[dict[str, float]]) -> dict[str, float]:
    """Steps, sentences and target tokens per second from its first report to its last: the
    first window also holds its reading of the corpus (about 18 s), which ours does before
    its loop begins, so neither toolkit's data preparation is counted."""
    first, last = rows[0], rows[-1]
    seconds = last["seconds"] - first["seconds"]
    window = last["step"] - rows[-2]["step"] if len(rows) > 1 else 25.0
    later = rows[1:]
    return {
        "steps_per_s": (last["step"] - first["step"]) / seconds,
        "sentences_per_s": sum(row["sentences"] for row in later) / seconds,
        "tokens_per_s": sum(row["tgt"] * window for row in later) / seconds,
    }
