"""Serving against OpenNMT-py's REST server: requests/s and latency at concurrency 8 and 32.

Starts `onmt_server` (Flask under waitress, as `../shared/peers/06_serve_onmt.sh` configures
it: CPU, batches of 30, SentencePiece inside the server) and `seq2seq serve` with its
defaults (in fp32, and again with `--precision int8`, each also with `--shortlist`, unless
`--modes` says otherwise),
one at a time, each on a model of the same size (`bench.peer_train`'s), and loads
each with wrk (one C thread) sending one raw German test_2016_flickr sentence per request, in
each server's own request format: `[{"src": ..., "id": 100}]` to `/translator/translate` and
LibreTranslate's `{"q": ..., "source": "de", "target": "en"}` to `/translate`. Each phase
runs `--seconds` after a 3-second warm-up; every server answers greedy, then beam 5.

    python -m bench.peer_serve --concurrency 8 32
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench import peers
from bench.load import WRK_SCRIPT, Phase, run_wrk
from bench.report import publish
from bench.server import free_port
from bench.timing import table, wait_for_quiet

SECTION = "Serving against OpenNMT-py's server (Multi30k de->en)"
HEADER = ["search", "concurrency", "server", "requests/s", "p50 ms", "p99 ms", "errors"]


def onmt_config(folder: Path, model: Path, beam: int) -> Path:
    """The peer server's model configuration (its script's), one model with id 100."""
    (folder / "model.pt").unlink(missing_ok=True)
    (folder / "model.pt").symlink_to(model.resolve())
    options = {"gpu": -1, "beam_size": beam, "batch_size": 30, "max_length": 250}
    tokenizer = {"type": "sentencepiece", "model": str(peers.PEERS / "work/sp/spm.model")}
    entry = {"id": 100, "model": "model.pt", "timeout": -1, "load": True}
    config = {
        "models_root": str(folder),
        "models": [{**entry, "opt": options, "tokenizer": tokenizer}],
    }
    path = folder / "conf.json"
    path.write_text(json.dumps(config))
    return path


@contextmanager
def running(command: list[str], health: str) -> Iterator[None]:
    """`command` started, and stopped on leaving; ready once `health` answers 200."""
    env = peers.script_env(
        {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "SEQ2SEQ_LOG_LEVEL": "warning"}
    )
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while not _healthy(health):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {' '.join(command)}")
            time.sleep(0.5)
        yield
    finally:
        process.terminate()
        process.wait(30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def load(url: str, bodies: list[object], path: str, concurrency: int, seconds: float) -> Phase:
    """A 3-second warm-up, then `seconds` of wrk at `concurrency`."""
    with tempfile.TemporaryDirectory() as folder:
        script, lines = Path(folder) / "load.lua", Path(folder) / "bodies.jsonl"
        script.write_text(WRK_SCRIPT)
        lines.write_text("".join(json.dumps(body) + "\n" for body in bodies))
        run_wrk(url, script, lines, concurrency=concurrency, seconds=3, path=path)
        return run_wrk(url, script, lines, concurrency=concurrency, seconds=seconds, path=path)


def measure_peer(args: argparse.Namespace, beam: int, texts: list[str]) -> list[Phase]:
    """onmt_server at every concurrency."""
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        config = onmt_config(Path(folder), args.peer, beam)
        command = [str(peers.onmt_bin("onmt_server")), "--ip", "127.0.0.1", "--port", str(port),
                   "--model_config", str(config)]  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        with running(command, f"{base}/translator/health"):
            bodies: list[object] = [[{"src": text, "id": 100}] for text in texts]
            return [
                load(base, bodies, "/translator/translate", c, args.seconds)
                for c in args.concurrency
            ]


def measure_ours(
    args: argparse.Namespace, beam: int, texts: list[str], mode: str, model: Path
) -> list[Phase]:
    """seq2seq serve at every concurrency, at `mode` (`peers.MODES`)."""
    port = free_port()
    command = [sys.executable, "-m", "seq2seq.cli", "serve", "--model", str(model),
               "--port", str(port), "--beam-size", str(beam), *peers.mode_flags(mode)]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/ready"):
        bodies: list[object] = [{"q": text, "source": "de", "target": "en"} for text in texts]
        return [load(base, bodies, "/translate", c, args.seconds) for c in args.concurrency]


def rows(
    beam: int, concurrency: list[int], peer: list[Phase], ours: dict[str, list[Phase]]
) -> list[list[object]]:
    """Table rows of one search: per concurrency the peer, then ours at each mode with its
    ratio to the peer."""
    search = "greedy" if beam == 1 else f"beam {beam}"
    out: list[list[object]] = []
    for index, (c, theirs) in enumerate(zip(concurrency, peer, strict=True)):
        out.append(_row(search, c, "onmt_server", theirs))
        for mode, phases in ours.items():
            mine = phases[index]
            out.append(_row(search, c, f"seq2seq serve, {mode}", mine))
            ratio = (mine.sent / mine.seconds) / (theirs.sent / theirs.seconds)
            out.append([search, c, f"**ratio, {mode}**", f"**{ratio:.1f}x**", "", "", ""])
    return out


def _row(search: str, concurrency: int, server: str, phase: Phase) -> list[object]:
    rate = phase.sent / phase.seconds
    return [search, concurrency, server, f"{rate:.1f}", f"{phase.p50:.0f}", f"{phase.p99:.0f}",
            phase.errors]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", type=Path, default=peers.OUR_MODEL)
    parser.add_argument("--peer", type=Path, default=peers.PEER_MODEL)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each load phase")
    parser.add_argument(
        "--modes", nargs="+", default=peers.MODES, choices=peers.MODES,
        help="our server's --precision, and +shortlist for --shortlist (the peer: fp32)",
    )  # fmt: skip
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    reason = peers.missing() or ("" if args.peer.is_file() and args.ours.is_file() else "no models")
    if reason:
        print(f"skipped: {reason} (run python -m bench.peer_train)")
        return 0
    texts = (peers.PEERS / "work" / "raw" / "test_2016_flickr.de").read_text().splitlines()
    wait_for_quiet()
    load_before, table_rows = os.getloadavg()[0], []
    with tempfile.TemporaryDirectory() as scratch:
        shortlisted, seconds = args.ours, 0.0
        if any("+" in mode for mode in args.modes):
            shortlisted, seconds = peers.add_shortlist(args.ours, Path(scratch))
        for beam in args.beams:
            peer = measure_peer(args, beam, texts)
            models = {mode: shortlisted if "+" in mode else args.ours for mode in args.modes}
            ours = {mode: measure_ours(args, beam, texts, mode, models[mode]) for mode in models}
            table_rows += rows(beam, args.concurrency, peer, ours)
    body = "\n".join(
        [
            f"Models: ours `{args.ours}`, the peer's `{args.peer}`. {args.seconds:.0f} s of wrk "
            f"per phase after 3 s of warm-up; one raw sentence per request. "
            f"{peers.SHORTLIST_NOTE.format(seconds=seconds)}. Load average "
            f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after.",
            "",
            table(HEADER, table_rows),
        ]
    )
    publish(SECTION, body, write=args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
