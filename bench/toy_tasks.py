"""The toy tasks of `bench.neurons`, trained with the same pipeline users run (`training.train`).

Counting: the source is n a's, the target n b's. The decoder sees only the encoder's final
state, so the model must count the a's into it and count down while writing the b's.
Copying: the target is the source, a string over {a, b, c}.

Letters are written with spaces between them ("a a a"), so the project's SentencePiece
tokenizer, left as it is, makes one subword ("▁a") per letter: a character-level model
without a special tokenizer. Pairs go into `{split}.src` / `{split}.tgt` files in a temporary
directory, read by `data.format: parallel` like any corpus.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seq2seq import ModelSizes, SearchOptions, Translator
from training.config import DataConfig, LoopConfig, OptimConfig, TokenizerConfig, TrainConfig
from training.train import train

Pair = tuple[str, str]


def counting(n: int, _rng: random.Random) -> Pair:
    """n a's -> n b's."""
    return " ".join("a" * n), " ".join("b" * n)


def copying(n: int, rng: random.Random) -> Pair:
    """A random string of n letters over {a, b, c}, and itself."""
    text = " ".join(rng.choice("abc") for _ in range(n))
    return text, text


@dataclass(frozen=True)
class Task:
    """A toy task: its pairs, the lengths it trains on, its model and its training budget."""

    name: str
    make: Callable[[int, random.Random], Pair]
    longest: int
    """Training lengths are 1..longest; longer ones test generalisation."""
    sizes: ModelSizes
    steps: int
    lr: float

    def pairs(self, count: int, *, seed: int, lengths: range | None = None) -> list[Pair]:
        """`count` pairs with lengths drawn uniformly from `lengths` (default 1..longest)."""
        rng = random.Random(seed)
        lengths = lengths or range(1, self.longest + 1)
        return [self.make(rng.choice(lengths), rng) for _ in range(count)]


COUNTING = Task(
    name="counting",
    make=counting,
    longest=30,
    sizes=ModelSizes(embedding_size=8, hidden_size=16, num_layers=1, dropout=0.0),
    steps=900,
    lr=0.01,
)
COPYING = Task(
    name="copying",
    make=copying,
    longest=8,
    sizes=ModelSizes(embedding_size=16, hidden_size=64, num_layers=1, dropout=0.0),
    steps=2000,
    lr=0.005,
)


def write_split(folder: Path, split: str, pairs: list[Pair]) -> None:
    """`{split}.src` and `{split}.tgt`, one sentence a line, as `data.format: parallel` reads."""
    (folder / f"{split}.src").write_text("".join(f"{src}\n" for src, _ in pairs))
    (folder / f"{split}.tgt").write_text("".join(f"{tgt}\n" for _, tgt in pairs))


def train_task(task: Task, folder: Path, *, seed: int = 1) -> Translator:
    """Write the task's data into `folder`, train on it with `training.train`, load best.pt."""
    folder.mkdir(parents=True, exist_ok=True)
    write_split(folder, "train", task.pairs(20_000, seed=seed))
    write_split(folder, "val", task.pairs(100, seed=seed + 1))
    config = TrainConfig(
        run_dir=str(folder / "run"),
        seed=seed,
        data=DataConfig(path=str(folder), src_lang="src", tgt_lang="tgt"),
        tokenizer=TokenizerConfig(vocab_size=16),  # an upper bound: 7 to 11 pieces are made
        model=task.sizes,
        optim=OptimConfig(lr=task.lr, schedule="constant", warmup_steps=50),
        train=LoopConfig(
            batch_tokens=1500,
            max_steps=task.steps,  # a step count, not minutes: the same model on any machine
            eval_every=task.steps // 3,
            threads=1,
            progress=False,
            log_every=100,
        ),
    )
    return Translator.load(train(config).best, device="cpu")


def exact_match(translator: Translator, pairs: list[Pair]) -> float:
    """Share of pairs translated exactly (greedy), the sources given as ids, unsplit."""
    sources = translator.encode([src for src, _ in pairs])
    outputs = translator.translate_ids(sources, SearchOptions(beam_size=1))
    return sum(out[0] == tgt for out, (_, tgt) in zip(outputs, pairs, strict=True)) / len(pairs)
