"""Where a training step goes, in OpenNMT-py and here: torch.profiler operator tables side by side.

Profiles `--steps` steps of each toolkit at the preset's size after `--warmup` steps, one after
the other: OpenNMT-py's own trainer (`bench/onmt_profile_hook.py` in its venv, with the
configuration `bench.peer_train` wrote) and this project's step (`bench.step_profile`, as
`seq2seq train` takes it). Both read Multi30k's training batches of 1,600 tokens; the table
lists each operator's self CPU time per step in both, largest first.

    python -m bench.peer_profile
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from bench import peers, step_profile
from bench.report import publish
from bench.timing import table, wait_for_quiet
from seq2seq.allocator import keep_freed_memory
from training.config import load_config

SECTION = "Training step profile against OpenNMT-py (preset size)"
HOOK = Path(__file__).resolve().parent / "onmt_profile_hook.py"


def onmt_profile(config: Path, steps: int, warmup: int) -> tuple[float, dict[str, float]]:
    """OpenNMT-py's ms per step and each operator's self ms per step."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "profile.json"
        command = [str(peers.onmt_bin("python")), str(HOOK), str(steps), str(warmup), str(out),
                   "--", "-config", str(config)]  # fmt: skip
        env = peers.script_env({"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
        subprocess.run(command, env=env, check=True, capture_output=True)
        data = json.loads(out.read_text())
    per_step = {e["key"]: e["self_us"] / 1000 / steps for e in data["events"]}
    return data["seconds"] * 1000 / steps, per_step


def our_profile(model: Path, steps: int, warmup: int) -> tuple[float, dict[str, float]]:
    """This project's ms per step and each operator's self ms per step."""
    keep_freed_memory()
    config = load_config(step_profile.PRESET, [])
    args = argparse.Namespace(model=str(model), steps=steps, warmup=warmup)
    run = step_profile.profiled(args, config)
    events = run.prof.key_averages()
    per_step = {
        e.key: e.self_cpu_time_total / 1000 / steps
        for e in events
        if e.key not in step_profile.PHASES
    }
    return run.seconds * 1000 / steps, per_step


def rows(peer: dict[str, float], ours: dict[str, float], top: int) -> list[list[object]]:
    """The operators among either toolkit's `top` largest, with both self times and shares."""
    keys = sorted(peer, key=peer.__getitem__, reverse=True)[:top]
    keys += [k for k in sorted(ours, key=ours.__getitem__, reverse=True)[:top] if k not in keys]
    total_peer, total_ours = sum(peer.values()) or 1.0, sum(ours.values()) or 1.0
    out: list[list[object]] = []
    for key in sorted(keys, key=lambda k: -(peer.get(k, 0.0) + ours.get(k, 0.0))):
        mine, theirs = ours.get(key, 0.0), peer.get(key, 0.0)
        out.append([f"`{key}`", f"{theirs:.1f} ({theirs / total_peer:.0%})",
                    f"{mine:.1f} ({mine / total_ours:.0%})"])  # fmt: skip
    out.append(["all operators", f"{total_peer:.1f}", f"{total_ours:.1f}"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-config", type=Path, default=peers.PEER_MODEL.parent / "config.yaml")
    parser.add_argument("--model", type=Path, default=peers.OUR_MODEL)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    reason = peers.missing()
    if reason or not args.peer_config.is_file() or not args.model.is_file():
        print(f"skipped: {reason or 'no runs of bench.peer_train to take the setup from'}")
        return 0
    wait_for_quiet()
    load = os.getloadavg()[0]
    peer_ms, peer = onmt_profile(args.peer_config, args.steps, args.warmup)
    ours_ms, ours = our_profile(args.model, args.steps, args.warmup)
    body = "\n".join(
        [
            f"{args.steps} steps each after {args.warmup} of warm-up, fp32, 2 threads, under the "
            f"profiler: OpenNMT-py {peer_ms:.0f} ms a step, seq2seq {ours_ms:.0f} ms. Self CPU "
            f"ms per step (share of all operator time). Load average {load:.2f} before, "
            f"{os.getloadavg()[0]:.2f} after.",
            "",
            table(["operator", "OpenNMT-py", "seq2seq"], rows(peer, ours, args.top)),
        ]
    )
    publish(SECTION, body, write=args.write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
