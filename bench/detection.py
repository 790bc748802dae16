"""Language detection as the server does it (`serve.detect`): accuracy on Multi30k's
test_2016_flickr sentences in en, de, fr and cs, the candidates restricted to those four, and
time per sentence. Candidate libraries that are installed beside it are measured the same way
(lingua-language-detector in its high- and low-accuracy modes), so the choice can be
checked; fasttext-langdetect downloads its model at run time and is not measured.

    python -m bench.detection
"""

from __future__ import annotations

import argparse
import gzip
import time
from collections import Counter
from collections.abc import Callable

from bench.report import write_section
from bench.timing import table, wait_for_quiet
from serve.detect import Detector
from training.config import default_data_dir

SECTION = "Language detection"
LANGUAGES = ("en", "de", "fr", "cs")
DetectFn = Callable[[str], str | None]


def sentences(language: str) -> list[str]:
    path = default_data_dir() / f"test_2016_flickr.{language}.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [line.strip() for line in lines if line.strip()]


def ours() -> DetectFn:
    detector = Detector(LANGUAGES)

    def detect(text: str) -> str | None:
        found = detector.detect(text)
        return found.language if found else None

    return detect


def lingua(low_accuracy: bool) -> DetectFn | None:
    try:
        from lingua import Language, LanguageDetectorBuilder
    except ImportError:
        return None
    codes = {
        Language.ENGLISH: "en",
        Language.GERMAN: "de",
        Language.FRENCH: "fr",
        Language.CZECH: "cs",
    }
    builder = LanguageDetectorBuilder.from_languages(*codes)
    detector = (builder.with_low_accuracy_mode() if low_accuracy else builder).build()
    return lambda text: codes.get(detector.detect_language_of(text))  # type: ignore[arg-type]


def measure(name: str, detect: DetectFn, data: dict[str, list[str]]) -> list[object]:
    """One row: accuracy overall and per language, the commonest confusion, µs per sentence."""
    right: Counter[str] = Counter()
    wrong: Counter[tuple[str, str | None]] = Counter()
    started = time.perf_counter()
    for language, texts in data.items():
        for text in texts:
            found = detect(text)
            right[language] += found == language
            wrong[(language, found)] += found != language
    seconds = time.perf_counter() - started
    total = sum(len(texts) for texts in data.values())
    confusion = ", ".join(f"{a}→{b}: {n}" for (a, b), n in wrong.most_common(3) if n) or "none"
    per_language = [f"{100 * right[lang] / len(data[lang]):.1f}%" for lang in data]
    accuracy = f"{100 * sum(right.values()) / total:.2f}%"
    return [name, accuracy, *per_language, confusion, f"{seconds / total * 1e6:.0f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    wait_for_quiet()
    data = {language: sentences(language) for language in LANGUAGES}
    candidates = [
        ("py3langid (the server's)", ours()),
        ("lingua, high accuracy", lingua(False)),
        ("lingua, low accuracy", lingua(True)),
    ]
    rows = [measure(name, detect, data) for name, detect in candidates if detect is not None]
    header = ["detector", "accuracy", *LANGUAGES, "commonest mistakes", "µs per sentence"]
    counts = ", ".join(f"{len(texts)} {language}" for language, texts in data.items())
    body = (
        f"{sum(len(texts) for texts in data.values())} test_2016_flickr sentences ({counts}), "
        "candidates restricted to en, de, fr and cs (as a server of those languages restricts "
        "them); one process, one thread.\n\n" + table(header, rows)
    )
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
