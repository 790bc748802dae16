"""Profile OpenNMT-py's own training step: run by the peer venv's Python for `bench.peer_profile`.

    $PEERS/onmt/bin/python bench/onmt_profile_hook.py STEPS WARMUP OUT.json -- -config CONFIG

Wraps `onmt.trainer.Trainer._gradient_accumulation` (its forward, loss, backward, clipping
and optimizer step; batches are read outside it) so that steps WARMUP+1 .. WARMUP+STEPS run
under `torch.profiler`, writes the operators' self CPU time and the steps' wall time to
OUT.json, and ends the process. Nothing else in OpenNMT-py is changed, and this file
imports nothing of this project (it runs in the peer's environment).
"""

import json
import os
import sys
import time
from typing import Any

import onmt.bin.train
import onmt.trainer
from torch.profiler import ProfilerActivity, profile

STEPS, WARMUP, OUT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ORIGINAL = onmt.trainer.Trainer._gradient_accumulation
STATE: dict[str, Any] = {"calls": 0, "profiler": None, "started": 0.0, "seconds": 0.0}


def report() -> None:
    """Write the profile and leave: the run has served its purpose."""
    profiler = STATE["profiler"]
    events = [
        {"key": event.key, "self_us": event.self_cpu_time_total, "count": event.count}
        for event in profiler.key_averages()
    ]
    with open(OUT, "w") as out:
        json.dump({"steps": STEPS, "seconds": STATE["seconds"], "events": events}, out)
    os._exit(0)  # no final checkpoint: nothing to keep


def profiled_step(self: Any, *args: Any, **kwargs: Any) -> Any:
    """One step of OpenNMT-py, profiled from WARMUP on."""
    if STATE["calls"] == WARMUP:
        STATE["profiler"] = profile(activities=[ProfilerActivity.CPU])
        STATE["profiler"].__enter__()
        STATE["started"] = time.perf_counter()
    result = ORIGINAL(self, *args, **kwargs)
    STATE["calls"] += 1
    if STATE["calls"] == WARMUP + STEPS:
        STATE["seconds"] = time.perf_counter() - STATE["started"]
        STATE["profiler"].__exit__(None, None, None)
        report()
    return result


onmt.trainer.Trainer._gradient_accumulation = profiled_step
sys.argv = ["onmt_train", *sys.argv[sys.argv.index("--") + 1 :]]
onmt.bin.train.main()
