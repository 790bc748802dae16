"""Shared fixtures: a tiny synthetic language pair and a briefly trained checkpoint of it."""

from __future__ import annotations

import random
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from seq2seq import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    Checkpoint,
    ModelConfig,
    Seq2Seq,
    TokenizerPair,
    Translator,
    save_checkpoint,
)

# Test models are tiny: one thread is faster for them and never oversubscribes the cores.
torch.set_num_threads(1)

GERMAN = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]
ENGLISH = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FRENCH = ["zéro", "un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf"]
NUMBER_WORDS = {"de": GERMAN, "en": ENGLISH, "fr": FRENCH}


def number_pairs(
    count: int, *, seed: int = 0, max_words: int = 5, source: str = "de", target: str = "en"
) -> list[tuple[str, str]]:
    """Number words of `source` and their word-by-word translation into `target`."""
    rng = random.Random(seed)
    words = NUMBER_WORDS[source], NUMBER_WORDS[target]
    pairs = []
    for _ in range(count):
        digits = [rng.randrange(10) for _ in range(rng.randint(1, max_words))]
        pairs.append(tuple(" ".join(side[d] for d in digits) for side in words))
    return pairs  # type: ignore[return-value]


def train_number_model(
    path: Path, *, source: str = "de", target: str = "en", steps: int = 600
) -> Path:
    """A small `source`->`target` model of number words, trained for a few seconds: it
    translates them mostly right. Saved at `path`."""
    tokenizers = TokenizerPair.train(
        number_pairs(400, seed=1, source=source, target=target), vocab_size=40
    )
    torch.manual_seed(0)
    pairs = number_pairs(2000, seed=2, source=source, target=target)
    src = tokenizers.src.encode([s for s, _ in pairs])
    tgt = tokenizers.tgt.encode([t for _, t in pairs])
    config = ModelConfig(
        tokenizers.src.vocab_size,
        tokenizers.tgt.vocab_size,
        embedding_size=32,
        hidden_size=64,
        num_layers=1,
        dropout=0.0,
    )
    model = Seq2Seq(config)
    fit(model, src, tgt, steps=steps)
    checkpoint = Checkpoint.from_model(
        model, tokenizers, src_lang=source, tgt_lang=target, metadata={"step": steps}
    )
    save_checkpoint(checkpoint, path)
    return path


def write_multi30k_mirror(root: Path, splits: dict[str, list[tuple[str, str]]]) -> Path:
    """A directory laid out as the hub's romrawinjp/multi30k is: a dataset card with its
    features and splits, one Parquet file per split with en, cs, de, fr and image columns.

    `splits` maps hub split names to (de, en) pairs; cs and fr hold 'cs: <en>' and 'fr: <en>'.
    """
    import datasets

    columns = {name: datasets.Value("string") for name in ("en", "cs", "de", "fr")}
    features = datasets.Features({**columns, "image": datasets.Image()})
    (root / "data").mkdir(parents=True, exist_ok=True)
    card = ["---", "dataset_info:", "  features:"]
    card += [f"  - name: {name}\n    dtype: string" for name in columns]
    card += ["  - name: image", "    dtype: image", "  splits:"]
    for split, pairs in splits.items():
        rows = {
            "de": [de for de, _ in pairs],
            "en": [en for _, en in pairs],
            "cs": [f"cs: {en}" for _, en in pairs],
            "fr": [f"fr: {en}" for _, en in pairs],
            "image": [{"bytes": b"\x89PNG a photo", "path": None} for _ in pairs],
        }
        parquet = root / "data" / f"{split}-00000-of-00001.parquet"
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(parquet))
        card += [f"  - name: {split}", f"    num_bytes: {parquet.stat().st_size}"]
        card += [f"    num_examples: {len(pairs)}"]
    card += ["configs:", "- config_name: default", "  data_files:"]
    card += [f"  - split: {split}\n    path: data/{split}-*" for split in splits]
    (root / "README.md").write_text("\n".join([*card, "---", "# Multi30k", ""]))
    return root


TINY = Path(__file__).parent / "data" / "tiny_train.yaml"
"""The training config of the test runs: a tiny model, a few steps."""


def write_corpus(directory: Path, count: int = 400) -> Path:
    """Number-word train and val splits in the parallel-files layout."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, size, seed in (("train", count, 10), ("val", 20, 11)):
        pairs = number_pairs(size, seed=seed)
        for lang, lines in (("de", [s for s, _ in pairs]), ("en", [t for _, t in pairs])):
            (directory / f"{split}.{lang}").write_text("".join(f"{x}\n" for x in lines))
    return directory


def tiny_overrides(tmp_path: Path, run: str, **extra: object) -> list[str]:
    """Overrides of `TINY` for a run in `tmp_path/run` on a corpus written there once;
    `extra` keys use `__` for the dot (`train__max_steps=4`)."""
    data = tmp_path / "data"
    if not data.exists():
        write_corpus(data)
    settings = {"run_dir": tmp_path / run, "data.path": data, **extra}
    return [f"--{key.replace('__', '.')}={value}" for key, value in settings.items()]


def make_batch(
    src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Padded src [B, S], src_len [B], tgt_in [B, T] (BOS + target), tgt_out [B, T] (+ EOS)."""
    src_t = pad_sequence([torch.tensor(s) for s in src], batch_first=True, padding_value=PAD_ID)
    src_len = torch.tensor([len(s) for s in src])
    tgt_in = pad_sequence(
        [torch.tensor([BOS_ID, *t]) for t in tgt], batch_first=True, padding_value=PAD_ID
    )
    tgt_out = pad_sequence(
        [torch.tensor([*t, EOS_ID]) for t in tgt], batch_first=True, padding_value=PAD_ID
    )
    return src_t, src_len, tgt_in, tgt_out


def fit(
    model: Seq2Seq,
    src: Sequence[Sequence[int]],
    tgt: Sequence[Sequence[int]],
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
) -> float:
    """Teacher-forced Adam steps on random minibatches; returns the last loss.

    Pass `optimizer` to continue an earlier `fit` with its Adam moments.
    """
    generator = random.Random(seed)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=PAD_ID)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        rows = generator.sample(range(len(src)), min(batch_size, len(src)))
        src_b, src_len, tgt_in, tgt_out = make_batch([src[r] for r in rows], [tgt[r] for r in rows])
        logits = model(src_b, src_len, tgt_in)  # [B, T, V]
        loss = loss_fn(logits.flatten(0, 1), tgt_out.flatten())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    return loss.item()


@pytest.fixture(scope="session")
def tiny_tokenizers() -> TokenizerPair:
    """Separate source/target SentencePiece models of the number-word language."""
    return TokenizerPair.train(number_pairs(400, seed=1), vocab_size=40)


@pytest.fixture(scope="session")
def tiny_checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small de->en model trained for a few seconds: it translates number words mostly right."""
    return train_number_model(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint_path: Path) -> Path:
    """Number-word models for de->en, en->de, en->fr and fr->en, as a server's models/ holds
    them (fr<->de only through English)."""
    directory = tmp_path_factory.mktemp("models")
    shutil.copyfile(tiny_checkpoint_path, directory / "de_en.pt")
    for source, target in (("en", "de"), ("en", "fr"), ("fr", "en")):
        train_number_model(directory / f"{source}_{target}.pt", source=source, target=target)
    return directory


def random_model(seed: int, *, eos_bias: float = 0.0) -> Seq2Seq:
    """An untrained 30-word model; `eos_bias` makes END more (or less) likely."""
    torch.manual_seed(seed)
    model = Seq2Seq(ModelConfig(30, 30, embedding_size=8, hidden_size=16, dropout=0.0))
    with torch.no_grad():
        model.decoder.output.bias[EOS_ID] += eos_bias
    return model.eval()


def random_batch(seed: int, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Random padded sources for `random_model`: src [B, S], src_len [B]."""
    generator = torch.Generator().manual_seed(seed)
    src_len = torch.randint(1, 9, (size,), generator=generator)  # [B]
    src = torch.randint(4, 30, (size, int(src_len.max())), generator=generator)  # [B, S]
    src[torch.arange(src.size(1)) >= src_len.unsqueeze(1)] = 0
    return src, src_len


def slow_down(translator: Translator, seconds: float) -> None:
    """Every decoder step of `translator`'s model takes `seconds` longer (both batchings)."""
    step = translator.model.decode_step

    def slow_step(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return step(*args, **kwargs)

    translator.model.decode_step = slow_step  # type: ignore[method-assign,assignment]


def served_translator(app: Any, index: int = 0) -> Translator:
    """The `Translator` behind model `index` of a running app (thread inference)."""
    return app.state.registry.models[index].batcher.translate.translator  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(settings: Any) -> Iterator[str]:
    """The app with `settings`, served by uvicorn as `seq2seq serve` does, on a free loopback
    port in a thread; yields its URL."""
    import uvicorn

    from serve.app import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(settings.model_copy(update={"port": port})),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_s,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture()
def server_url(tiny_checkpoint_path: Path) -> Iterator[str]:
    """The app on the tiny model, served by uvicorn on a free loopback port in a thread."""
    from serve.settings import Settings

    with running_server(Settings(model=[str(tiny_checkpoint_path)], device="cpu")) as url:
        yield url
