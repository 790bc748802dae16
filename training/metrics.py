"""Training metrics: one JSON object a line in `metrics.jsonl`, and `curves.png` drawn from it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sacrebleu.metrics.bleu import BLEU
from sacrebleu.metrics.chrf import CHRF


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict[str, Any]:
    """sacrebleu corpus BLEU (13a, cased) and chrF with their signatures."""
    bleu, chrf = BLEU(), CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    chrf_score = chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": round(bleu_score.score, 2),
        "chrf": round(chrf_score.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "sentences": len(hypotheses),
    }


class MetricsLog:
    """Appends records to `run_dir/metrics.jsonl` (kept across resumes)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.curves = run_dir / "curves.png"

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to disk."""
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        """Every record so far."""
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def plot(self) -> None:
        """Draw training/validation loss and validation BLEU against steps into curves.png."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = self.records()
        train = [(r["step"], r["train_loss"]) for r in records if "train_loss" in r]
        valid = [(r["step"], r["val_loss"], r["val_bleu"]) for r in records if "val_bleu" in r]
        figure, (loss_axis, bleu_axis) = plt.subplots(1, 2, figsize=(11, 4))
        if train:
            loss_axis.plot(*zip(*train, strict=True), label="train", linewidth=0.8)
        if valid:
            steps, losses, bleus = zip(*valid, strict=True)
            loss_axis.plot(steps, losses, "o-", label="validation")
            bleu_axis.plot(steps, bleus, "o-", color="tab:green")
        loss_axis.set(xlabel="step", ylabel="cross-entropy", title="loss")
        if train or valid:
            loss_axis.legend()
        bleu_axis.set(xlabel="step", ylabel="BLEU", title="validation BLEU")
        figure.tight_layout()
        temp = self.curves.with_name(f".{self.curves.name}.tmp.png")
        figure.savefig(temp, dpi=90)
        plt.close(figure)
        os.replace(temp, self.curves)
