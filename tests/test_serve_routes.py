"""A server of several language pairs over HTTP: the routing matrix (direct, pivot, detected,
unknown), pivots equal to chaining the models by hand, detection, the model list, batches
that never mix models, and models unloaded when idle and loaded again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import served_translator
from fastapi.testclient import TestClient

from seq2seq import SearchOptions, Translator
from serve.app import create_app
from serve.settings import Settings

pytestmark = pytest.mark.slow

GREEDY = SearchOptions(beam_size=1)


def settings(directory: Path, **overrides: Any) -> Settings:
    return Settings(**{"models": str(directory), "device": "cpu", "max_wait_ms": 2, **overrides})


@pytest.fixture(scope="module")
def translators(models_dir: Path) -> dict[str, Translator]:
    return {path.stem: Translator.load(path, device="cpu") for path in models_dir.glob("*.pt")}


@pytest.fixture(scope="module")
def client(models_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings(models_dir))) as client:
        yield client


def translate(client: TestClient, **body: Any) -> Any:
    response = client.post("/translate", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_languages_list_direct_and_pivoted_targets(client: TestClient) -> None:
    assert client.get("/languages").json() == [
        {"code": "de", "name": "German", "targets": ["en", "fr"]},
        {"code": "en", "name": "English", "targets": ["de", "fr"]},
        {"code": "fr", "name": "French", "targets": ["de", "en"]},
    ]


def test_direct_pairs_translate_with_their_own_model(
    client: TestClient, translators: dict[str, Translator]
) -> None:
    for pair, text in (("de_en", "drei eins vier"), ("en_fr", "three one"), ("fr_en", "deux")):
        source, target = pair.split("_")
        body = translate(client, q=text, source=source, target=target)
        assert body["translatedText"] == translators[pair].translate([text], GREEDY)[0]
        assert body["model"] == f"{pair}.pt" and "pivot" not in body


def test_a_pivot_equals_chaining_the_two_models_by_hand(
    client: TestClient, translators: dict[str, Translator]
) -> None:
    texts = ["trois un quatre", "neuf. huit sept", "<b>deux</b> zéro"]
    body = translate(client, q=texts[:2], source="fr", target="de", beam_size=3, alternatives=2)
    english = translators["fr_en"].translate(texts[:2], GREEDY)
    last = SearchOptions(beam_size=3, n_best=3)
    expected = translators["en_de"].translate_ranked(english, last)
    assert body["translatedText"] == [ranked[0] for ranked in expected]
    assert body["alternatives"] == [list(dict.fromkeys(r))[1:3] for r in expected]
    assert body["pivot"] == "en" and body["model"] == "fr_en.pt > en_de.pt"
    html = translate(client, text=texts[2], source="fr", target="de", format="html")
    chained = translators["en_de"].translate(
        translators["fr_en"].translate(texts[2:], GREEDY, html=True), GREEDY, html=True
    )
    assert html["translation"] == chained[0] and html["translation"].startswith("<b>")


def test_the_source_is_detected_when_auto_or_left_out(
    client: TestClient, translators: dict[str, Translator]
) -> None:
    body = translate(client, q=["un deux trois", "quatre"], source="auto", target="de")
    assert [found["language"] for found in body["detectedLanguage"]] == ["fr", "fr"]
    assert body["detectedLanguage"][0]["confidence"] > 50 and body["pivot"] == "en"
    body = translate(client, text="eins zwei drei", target="en")
    assert body["detectedLanguage"]["language"] == "de"
    assert body["translation"] == translators["de_en"].translate(["eins zwei drei"], GREEDY)[0]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"q": "eins", "source": "de", "target": "cs"}, 400, "unsupported language pair de->cs"),
        ({"q": "eins", "source": "cs", "target": "en"}, 400, "this server translates de->en, "),
        ({"q": "eins", "source": "de"}, 422, "target: 'target' is required: this server"),
        ({"q": "  ", "source": "auto", "target": "en"}, 422, "cannot detect the language"),
        ({"q": "eins", "source": "de", "target": "de"}, 400, "unsupported language pair de->de"),
    ],
)
def test_what_cannot_be_routed_says_why(
    client: TestClient, body: dict[str, Any], status: int, reason: str
) -> None:
    response = client.post("/translate", json=body)
    assert response.status_code == status and reason in response.json()["error"], response.text
    if status == 400:
        assert "(through a pivot: de->fr, fr->de)" in response.json()["error"]


def test_detect_ranks_the_served_languages(client: TestClient) -> None:
    ranked = client.post("/detect", json={"q": "un deux trois quatre"}).json()
    assert ranked[0]["language"] == "fr" and len(ranked) == 3
    assert ranked == sorted(ranked, key=lambda found: -found["confidence"])
    form = client.post("/detect", data={"q": "eins zwei drei"}).json()
    assert form[0]["language"] == "de"
    empty = client.post("/detect", json={"q": " \n"})
    assert empty.status_code == 422 and "no text" in empty.json()["error"]


def test_models_lists_every_model(client: TestClient, models_dir: Path) -> None:
    listed = {model["id"]: model for model in client.get("/models").json()}
    assert set(listed) == {"de_en.pt", "en_de.pt", "en_fr.pt", "fr_en.pt"}
    assert all(model["state"] == "loaded" and model["device"] == "cpu" for model in listed.values())
    assert listed["en_fr.pt"]["file"] == str(models_dir / "en_fr.pt")
    answer = client.get("/model")
    assert answer.status_code == 404 and "holds 4 models: see /models" in answer.json()["error"]


def test_concurrent_mixed_pairs_each_batch_holds_one_models_requests(models_dir: Path) -> None:
    app = create_app(settings(models_dir, max_wait_ms=30))
    pairs = [("de", "en", "eins zwei"), ("en", "fr", "three four"), ("fr", "en", "cinq six")]
    seen: dict[str, list[list[list[int]]]] = {}

    async def main() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            for index, model in enumerate(app.state.registry.models):
                seen[model.id] = record_sources(model.batcher, served_translator(app, index))
            bodies = [
                {"q": f"{text} {i % 10}", "source": source, "target": target}
                for i in range(12)
                for source, target, text in pairs
            ]
            return list(await asyncio.gather(*(client.post("/translate", json=b) for b in bodies)))

    responses = asyncio.run(main())
    assert all(response.status_code == 200 for response in responses)
    by_model = {"de_en.pt": [], "en_fr.pt": [], "fr_en.pt": []}  # type: dict[str, list[str]]
    for response in responses:
        by_model[response.json()["model"]].append(response.json()["translatedText"])
    translators = {p.name: Translator.load(p, device="cpu") for p in models_dir.glob("*.pt")}
    for (_, _, text), (model, answers) in zip(pairs, by_model.items(), strict=True):
        texts = [f"{text} {i % 10}" for i in range(12)]
        assert answers == translators[model].translate(texts, GREEDY)  # every answer its own
        sent = sorted(map(tuple, translators[model].encode(texts)))
        batches = seen[model]
        assert sorted(tuple(ids) for batch in batches for ids in batch) == sent
        assert max(len(batch) for batch in batches) > 1  # batched, but only with its own


def record_sources(batcher: Any, translator: Translator) -> list[list[list[int]]]:
    """Wrap the batcher's translate call so that it records each batch's sources."""
    batches: list[list[list[int]]] = []
    call = batcher.translate

    def recording(sources: list[list[int]], *rest: Any) -> Any:
        batches.append(list(sources))
        return call(sources, *rest)

    batcher.translate = recording
    return batches


def test_idle_models_unload_and_load_again(models_dir: Path, tmp_path: Path) -> None:
    directory = tmp_path / "models"
    directory.mkdir()
    for name in ("de_en.pt", "en_fr.pt"):
        (directory / name).write_bytes((models_dir / name).read_bytes())
    with TestClient(create_app(settings(directory, idle_unload_s=0.3, retry_after_s=0))) as client:
        first = translate(client, q="eins", source="de", target="en")
        time.sleep(1.0)
        states = {model["id"]: model["state"] for model in client.get("/models").json()}
        assert states == {"de_en.pt": "unloaded", "en_fr.pt": "unloaded"}
        assert translate(client, q="eins", source="de", target="en") == {**first, "time_ms": any_ms}
        time.sleep(1.0)
        (directory / "en_fr.pt").write_bytes(b"gone bad while unloaded")
        failed = client.post("/translate", json={"q": "one", "source": "en", "target": "fr"})
        assert failed.status_code == 503 and failed.headers["retry-after"] == "0"
        assert "en_fr.pt could not be loaded" in failed.json()["error"]
        assert translate(client, q="eins", source="de", target="en")["translatedText"] == "one"
        ready = client.get("/ready").json()
        assert ready == {"status": "ready", "unavailable": ["en_fr.pt"]}


class AnyMs(float):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, float)

    __hash__ = float.__hash__


any_ms = AnyMs()


def test_inspect_reads_the_model_of_the_pair(client: TestClient) -> None:
    found = client.post("/inspect", json={"text": "un deux", "source": "auto", "target": "en"})
    assert found.status_code == 200 and found.json()["model"] == "fr_en.pt"
    assert found.json()["inspection"]["encoder"]["tokens"]
    pivot = client.post("/inspect", json={"text": "un deux", "source": "fr", "target": "de"})
    assert pivot.status_code == 400 and "goes through en" in pivot.json()["error"]
    unknown = client.post("/inspect", json={"text": "un", "source": "fr", "by": "colour"})
    assert unknown.status_code == 422 and unknown.json()["error"].startswith("by: String should")
