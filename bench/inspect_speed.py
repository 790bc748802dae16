"""Inspecting the model: time and answer size of `Translator.inspect`, and translation's speed.

For every Multi30k test sentence of exactly `--length` source subwords: the time of
`inspect` (the search plus reading every layer), of `translate` alone on the same sentence,
of `to_dict` + `json.dumps`, and the JSON size at 1 and 2 decimals. Then two ratios of
translation time, each from interleaved rounds of one run: a translator after `inspect`
against one that never inspected (nothing stays behind), and, with `--against REV`, this
tree's `seq2seq` against that git revision's (the translation path costs what it did).
Run: python -m bench.inspect_speed [--model PATH] [--against REV] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from bench import data, report
from bench.timing import median, table, wait_for_quiet
from seq2seq import SearchOptions, Translator
from seq2seq.introspect import Inspection
from training.config import REPO

SECTION = "Inspecting the model"
GREEDY = SearchOptions(beam_size=1)
TIMED = (
    "import sys, time, torch; torch.set_num_threads(1); import seq2seq; "
    "t = seq2seq.Translator.load(sys.argv[1], device='cpu'); "
    "texts = open(sys.argv[2]).read().split('\\n'); "
    "new = hasattr(seq2seq, 'SearchOptions'); "
    "run = lambda x: t.translate(x, seq2seq.SearchOptions(beam_size=1)) if new else "
    "t.translate(x, beam_size=1); "
    "run(texts[:20]); s = time.perf_counter(); run(texts); "
    "print(seq2seq.__file__, time.perf_counter() - s)"
)
"""A fresh process translating the texts of a file once (after a warm-up): its seconds."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/multi30k_de_en.pt", help="checkpoint")
    parser.add_argument("--length", type=int, default=20, help="source subwords per sentence")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per ratio")
    parser.add_argument("--against", help="git revision whose seq2seq translates for comparison")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    if not Path(args.model).is_file():
        parser.error(f"model {args.model} not found (train one, or pass --model)")
    return args


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of `repeats` calls, in milliseconds (the others met a busy core)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def per_sentence(translator: Translator, texts: list[str]) -> dict[str, list[float]]:
    """Times (ms) and JSON sizes (kB) of each sentence."""
    rows: dict[str, list[float]] = {name: [] for name in ROWS}
    for text in texts:
        inspection = translator.inspect(text)
        rows["inspect"].append(best_of(partial(translator.inspect, text)))
        rows["translate"].append(best_of(partial(translator.translate, [text], GREEDY)))
        rows["json"].append(best_of(partial(_to_json, inspection)))
        rows["steps"].append(len(inspection.encoder.ids) + len(inspection.decoder.ids))
        for decimals in (1, 2):
            size = len(json.dumps(inspection.to_dict(decimals), separators=(",", ":")))
            rows[f"kb{decimals}"].append(size / 1000)
    return rows


def _to_json(inspection: Inspection) -> str:
    return json.dumps(inspection.to_dict())


ROWS = {
    "inspect": "`inspect`: search + every layer's gates, ms",
    "translate": "`translate` of the same sentence alone, ms",
    "json": "`to_dict()` + `json.dumps`, ms",
    "steps": "encoder + decoder steps",
    "kb1": "JSON, kB, `to_dict()` (1 decimal, the default)",
    "kb2": "JSON, kB, `to_dict(decimals=2)`",
}


def after_inspect_ratio(path: str, texts: list[str], rounds: int) -> float:
    """Time of translating `texts` with a translator that inspected, over one that never did."""
    fresh, used = (Translator.load(path, device="cpu") for _ in range(2))
    used.inspect(texts[0])
    times: dict[str, list[float]] = {"fresh": [], "used": []}
    for _ in range(rounds):
        for name, translator in (("fresh", fresh), ("used", used)):
            times[name].append(best_of(partial(translator.translate, texts, GREEDY), 1))
    return median(times["used"]) / median(times["fresh"])


def against_ratio(path: str, texts: list[str], revision: str, rounds: int) -> float:
    """Translation time of this tree's seq2seq over `revision`'s, fresh processes in turn."""
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", revision, "seq2seq"],
            check=True,
            capture_output=True,
        )
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        lines = Path(folder) / "texts.txt"
        lines.write_text("\n".join(texts))
        model = str(Path(path).resolve())
        trees = {"this": str(REPO), "then": folder}
        times: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(rounds):
            for name, tree in trees.items():
                times[name].append(_timed_process(tree, model, str(lines)))
    return median(times["this"]) / median(times["then"])


def _timed_process(tree: str, model: str, lines: str) -> float:
    environment = {**os.environ, "PYTHONPATH": tree}
    done = subprocess.run(
        [sys.executable, "-c", TIMED, model, lines],
        cwd=tree,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
    )
    where, seconds = done.stdout.split()[-2:]
    if not where.startswith(tree):
        raise RuntimeError(f"the timed process imported {where}, not the tree under {tree}")
    return float(seconds)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    wait_for_quiet()
    translator = Translator.load(args.model, device="cpu")
    source = translator.src_lang or "de"
    data.require("test_2016_flickr", langs=(source,))
    texts = data.read_lines("test_2016_flickr", source)
    chosen = [text for text in texts if len(translator.encode([text])[0]) == args.length]
    if not chosen:
        sys.exit(f"no test_2016_flickr sentence has exactly {args.length} subwords")
    load_before = Path("/proc/loadavg").read_text().split()[0]
    rows = per_sentence(translator, chosen)
    ratios = [
        (
            "translate after `inspect` / never inspected (same process)",
            after_inspect_ratio(args.model, texts[:300], args.rounds),
        )
    ]
    if args.against:
        ratio = against_ratio(args.model, texts[:300], args.against, args.rounds)
        ratios.append((f"translate, this tree's seq2seq / `{args.against}`'s", ratio))
    load_after = Path("/proc/loadavg").read_text().split()[0]
    body = render(args, rows, ratios, len(chosen), (load_before, load_after))
    print(body)
    if args.write:
        report.write_section(SECTION, body)


def render(
    args: argparse.Namespace,
    rows: dict[str, list[float]],
    ratios: list[tuple[str, float]],
    count: int,
    load: tuple[str, str],
) -> str:
    """The section: per-sentence medians and maxima, then the translation-time ratios."""
    lines = [
        f"Model `{Path(args.model).name}` on the CPU, one thread, greedy; the {count} "
        f"test_2016_flickr sentences of exactly {args.length} source subwords; each time is "
        f"the best of 3 calls. Load average {load[0]} before, {load[1]} after.",
        "",
        table(
            ["per sentence", "median", "max"],
            [
                [label, f"{statistics.median(rows[key]):.1f}", f"{max(rows[key]):.1f}"]
                for key, label in ROWS.items()
            ],
        ),
        "",
        table(
            [
                f"translation time of 300 sentences (median of {args.rounds} interleaved rounds)",
                "ratio",
            ],
            [[label, f"{ratio:.3f}"] for label, ratio in ratios],
        ),
    ]
    if args.against:
        lines += [
            "",
            f"The second ratio times the same translation in fresh processes, alternately with "
            f"this tree's `seq2seq` and with `git archive {args.against} seq2seq`'s.",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
