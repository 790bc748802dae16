"""Training metrics: sacrebleu scores with signatures, the JSONL log across resumes, the curves."""

from __future__ import annotations

from pathlib import Path

from training.metrics import MetricsLog, corpus_scores

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_corpus_scores_are_sacrebleu_with_signatures() -> None:
    references = ["A dog runs in the park.", "Two men are talking."]
    same = corpus_scores(references, references)
    assert (same["bleu"], same["chrf"], same["sentences"]) == (100.0, 100.0, 2)
    assert "tok:13a" in same["bleu_signature"] and "case:mixed" in same["bleu_signature"]
    assert same["chrf_signature"].startswith("nrefs:1|case:mixed")
    worse = corpus_scores(["A cat sleeps.", "Two men are talking."], references)
    assert 0.0 < worse["bleu"] < 100.0 and 0.0 < worse["chrf"] < 100.0


def test_log_appends_across_instances_as_a_resumed_run_does(tmp_path: Path) -> None:
    assert MetricsLog(tmp_path).records() == []
    MetricsLog(tmp_path).write({"step": 1, "train_loss": 5.0})
    resumed = MetricsLog(tmp_path)
    resumed.write({"step": 2, "train_loss": 4.0, "val_loss": 4.5, "val_bleu": 1.5})
    assert [record["step"] for record in resumed.records()] == [1, 2]
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 2


def test_curves_are_drawn_to_a_png_without_leaving_a_temp_file(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    log.plot()  # no records yet: empty axes, not an error
    for step in range(1, 5):
        log.write({"step": step, "train_loss": 5.0 / step})
    log.write({"step": 4, "val_loss": 2.0, "val_bleu": 3.0})
    log.plot()
    assert (tmp_path / "curves.png").read_bytes().startswith(PNG_MAGIC)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["curves.png", "metrics.jsonl"]
