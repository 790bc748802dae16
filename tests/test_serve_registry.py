"""The registry: routes (direct, through a pivot, the one model), what it says it translates,
and loading: on demand, at most `max_loaded`, unloading when idle, failing for one pair only."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from seq2seq import CheckpointError, SearchOptions, TextCodec
from serve.batching import Ranked
from serve.registry import Model, ModelUnavailable, NoRoute, Registry, open_models


class FakeBatcher:
    """Stands in for a loaded model: counts its jobs."""

    def __init__(self) -> None:
        self.jobs, self.stopped, self.alive, self.depth = 0, False, True, 0

    async def start(self) -> None:
        pass

    async def submit(self, sources: list[list[int]], options: SearchOptions) -> Ranked:
        self.jobs += 1
        return [["x"] for _ in sources]

    async def stop(self) -> None:
        self.stopped = True


def models(codec: TextCodec, *pairs: str) -> list[Model]:
    made = []
    for pair in pairs:
        source, target = pair.split("-")
        copy = TextCodec(codec.tokenizers, src_lang=source, tgt_lang=target)
        made.append(Model(Path(f"{source}_{target}.pt"), copy))
    return made


@pytest.fixture(scope="module")
def codec(tiny_checkpoint_path: Path) -> TextCodec:
    return TextCodec.load(tiny_checkpoint_path)


def registry(codec: TextCodec, *pairs: str, fail: set[str] = frozenset(), **kw: Any) -> Registry:  # type: ignore[assignment]
    async def start(model: Model) -> tuple[Any, dict[str, Any]]:
        if model.id in fail:
            raise RuntimeError(f"cannot load {model.id}\nsecond line")
        return FakeBatcher(), {"device": "cpu", "precision": "fp32"}

    return Registry(models(codec, *pairs), start, **kw)


def test_routes_direct_through_a_pivot_and_english_first(codec: TextCodec) -> None:
    found = registry(codec, "de-en", "en-fr", "de-cs", "cs-fr", "fr-en", "en-de")
    assert [m.id for m in found.route("de", "en").legs] == ["de_en.pt"]
    route = found.route("de", "fr")
    assert route.pivot == "en" and [m.id for m in route.legs] == ["de_en.pt", "en_fr.pt"]
    assert found.route("fr", "de").pivot == "en"
    with pytest.raises(NoRoute, match="unsupported language pair cs->de"):
        found.route("cs", "de")
    with pytest.raises(NoRoute, match="target language needed"):
        found.route("de", None)


def test_one_model_needs_no_languages(codec: TextCodec) -> None:
    only = registry(codec, "de-en")
    for source, target in ((None, None), ("de", None), (None, "en"), ("de", "en")):
        assert only.route(source, target).legs == (only.models[0],)
    with pytest.raises(NoRoute, match="unsupported language pair de->fr"):
        only.route(None, "fr")


def test_what_it_translates(codec: TextCodec) -> None:
    found = registry(codec, "de-en", "en-fr", "fr-en")
    assert found.sources == ["de", "en", "fr"]
    assert found.targets("de") == ["en", "fr"] and found.targets("fr") == ["en"]
    assert found.describe_pairs() == "de->en, en->fr, fr->en (through a pivot: de->fr)"


def test_open_models_refuses_two_files_for_one_pair(tiny_checkpoint_path: Path) -> None:
    with pytest.raises(CheckpointError, match="both translate de->en"):
        open_models([tiny_checkpoint_path, tiny_checkpoint_path])


def test_models_load_on_demand_and_at_most_max_loaded(codec: TextCodec) -> None:
    found = registry(codec, "de-en", "en-fr", "fr-en", max_loaded=2)

    async def main() -> list[list[str]]:
        await found.start()
        states = [[m.state for m in found.models]]
        for model in (found.models[2], found.models[1], found.models[0]):
            async with found.using(model) as batcher:
                await batcher.submit([[5]], SearchOptions())
            states.append([m.state for m in found.models])
        await found.stop()
        return states

    assert asyncio.run(main()) == [
        ["loaded", "loaded", "unloaded"],
        ["unloaded", "loaded", "loaded"],  # de-en was the one unused for longest
        ["unloaded", "loaded", "loaded"],
        ["loaded", "loaded", "unloaded"],  # fr-en: en-fr was used after it
    ]


def test_idle_models_are_unloaded_but_never_while_in_use(codec: TextCodec) -> None:
    found = registry(codec, "de-en", "en-fr", idle_unload_s=0.2)

    async def main() -> tuple[str, str, str]:
        await found.start()
        async with found.using(found.models[0]):
            await asyncio.sleep(0.5)  # idle by the clock, but in use
            busy = found.models[0].state
        await asyncio.sleep(0.5)
        idle = found.models[0].state
        async with found.using(found.models[0]):
            again = found.models[0].state
        await found.stop()
        return busy, idle, again

    assert asyncio.run(main()) == ("loaded", "unloaded", "loaded")


def test_a_model_that_fails_to_load_fails_alone_and_is_retried_later(codec: TextCodec) -> None:
    found = registry(codec, "de-en", "en-fr", fail={"en_fr.pt"}, retry_after_s=0.2, max_loaded=1)

    async def main() -> list[str]:
        await found.start()
        errors = []
        for _ in range(2):
            with pytest.raises(ModelUnavailable) as caught:
                async with found.using(found.models[1]):
                    pass
            errors.append(str(caught.value))
        async with found.using(found.models[0]) as batcher:  # the other pair serves
            await batcher.submit([[5]], SearchOptions())
        await asyncio.sleep(0.3)
        with pytest.raises(ModelUnavailable):
            async with found.using(found.models[1]):
                pass
        await found.stop()
        return [*errors, found.models[1].describe()["state"]]

    first, second, state = asyncio.run(main())
    assert first == second == "en_fr.pt could not be loaded: cannot load en_fr.pt"
    assert state == "failed"


def test_concurrent_requests_for_an_unloaded_model_wait_for_one_load(codec: TextCodec) -> None:
    loads = []

    async def start(model: Model) -> tuple[Any, dict[str, Any]]:
        loads.append(model.id)
        await asyncio.sleep(0.2)
        return FakeBatcher(), {}

    found = Registry(models(codec, "de-en", "en-fr"), start, max_loaded=1)

    async def use() -> int:
        async with found.using(found.models[1]) as batcher:
            return len(await batcher.submit([[5]], SearchOptions()))

    async def main() -> list[int]:
        await found.start()
        answers = await asyncio.gather(*(use() for _ in range(5)))
        await found.stop()
        return list(answers)

    assert asyncio.run(main()) == [1] * 5
    assert loads == ["de_en.pt", "en_fr.pt"]
