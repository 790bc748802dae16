"""LibreTranslate clients: form-encoded bodies, `api_key` in the body, and `GET /languages`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import running_server
from fastapi.testclient import TestClient

from seq2seq import SearchOptions, Translator
from serve.app import create_app
from serve.settings import Settings

FORM = {"content-type": "application/x-www-form-urlencoded"}
GREEDY = SearchOptions(beam_size=1)


@pytest.fixture(scope="module")
def translator(tiny_checkpoint_path: Path) -> Translator:
    return Translator.load(tiny_checkpoint_path, device="cpu")


@pytest.fixture(scope="module")
def client(tiny_checkpoint_path: Path) -> Iterator[TestClient]:
    settings = Settings(model=str(tiny_checkpoint_path), device="cpu", max_wait_ms=2, max_texts=4)
    with TestClient(create_app(settings)) as client:
        yield client


def test_form_body_translates_like_json(client: TestClient, translator: Translator) -> None:
    fields = {"q": "eins zwei", "source": "de", "target": "en", "format": "text"}
    body = client.post("/translate", data=fields).json()  # how libretranslatepy sends it
    assert (
        body["translatedText"] == translator.translate(["eins zwei"], SearchOptions(beam_size=1))[0]
    )
    assert body == {**client.post("/translate", json=fields).json(), "time_ms": body["time_ms"]}


def test_repeated_q_is_a_list_in_order(client: TestClient, translator: Translator) -> None:
    form = urlencode([("q", "drei"), ("q", "eins zwei"), ("beam_size", "2")])
    body = client.post("/translate", content=form, headers=FORM).json()
    assert body["translatedText"] == translator.translate(
        ["drei", "eins zwei"], SearchOptions(beam_size=2)
    )
    assert body["beam_size"] == 2


def test_unescaped_utf8_form_as_curl_sends_it(client: TestClient, translator: Translator) -> None:
    response = client.post("/translate", content="q=Ein Hund läuft.".encode(), headers=FORM)
    assert response.status_code == 200, response.text
    assert (
        response.json()["translatedText"]
        == translator.translate(["Ein Hund läuft."], SearchOptions(beam_size=1))[0]
    )


def test_bad_forms_are_422_with_a_reason(client: TestClient) -> None:
    cases = [
        (b"q=%FF%FE", "form body not readable: not UTF-8"),
        (b"q=\xff", "form body not readable: not UTF-8"),
        (b"source=de", "give exactly one of 'text', 'texts' or 'q'"),
        (b"q=eins&beam_size=many", "beam_size"),
        (b"q=eins&beam_size=99", "beam_size"),
        (b"q=eins&target=fr", "unsupported language pair de->fr: this server translates de->en"),
    ]
    for content, reason in cases:
        response = client.post("/translate", content=content, headers=FORM)
        assert response.status_code in (400, 422), (content, response.text)
        assert reason in response.json()["error"], (content, response.json())


def test_json_with_curls_default_type_and_other_types(client: TestClient) -> None:
    sent_by_curl_d = client.post("/translate", content=b'{"text": "eins"}', headers=FORM)
    assert (
        sent_by_curl_d.json()["translation"]
        == client.post("/translate", json={"text": "eins"}).json()["translation"]
    )
    for media_type in ("text/plain", "multipart/form-data; boundary=x"):
        response = client.post(
            "/translate", content=b"q=eins", headers={"content-type": media_type}
        )
        assert response.status_code == 415
        assert f"unsupported content type {media_type.split(';')[0]}" in response.json()["error"]


def test_api_key_in_the_body(tiny_checkpoint_path: Path) -> None:
    settings = Settings(model=str(tiny_checkpoint_path), device="cpu", api_key="sesame")
    with TestClient(create_app(settings)) as client:
        assert client.post("/translate", data={"q": "eins", "api_key": "sesame"}).is_success
        assert client.post("/translate", json={"q": "eins", "api_key": "sesame"}).is_success
        wrong = client.post("/translate", data={"q": "eins", "api_key": "open"})
        assert wrong.status_code == 403
        missing = client.post("/translate", data={"q": "eins"})
        assert missing.status_code == 401 and "api_key" in missing.json()["error"]


def test_html_format_translates_between_the_tags(
    client: TestClient, translator: Translator
) -> None:
    page = '<p class="a">eins zwei <b>drei</b></p><code>vier</code>'
    fields = {"q": page, "source": "de", "target": "en", "format": "html"}
    body = client.post("/translate", data=fields).json()
    first, second = translator.translate(["eins zwei", "drei"], SearchOptions(beam_size=1))
    assert body["translatedText"] == f'<p class="a">{first} <b>{second}</b></p><code>vier</code>'
    as_text = client.post("/translate", json={**fields, "format": "text"}).json()
    assert as_text["translatedText"] == translator.translate([page], SearchOptions(beam_size=1))[0]


def candidates(translator: Translator, text: str, n_best: int) -> list[str]:
    """The distinct translations of a beam as wide as `n_best`, best first."""
    options = SearchOptions(beam_size=n_best, n_best=n_best)
    return list(dict.fromkeys(translator.translate_ranked([text], options)[0]))


def test_alternatives_are_the_beams_other_translations(
    client: TestClient, translator: Translator
) -> None:
    texts = ["eins zwei drei", "vier"]
    body = client.post("/translate", data={"q": texts[0], "alternatives": "2"}).json()
    ranked = candidates(translator, texts[0], 3)
    assert body["beam_size"] == 3  # the server's greedy default widened to give two more
    assert [body["translatedText"], *body["alternatives"]] == ranked[:3]
    listed = client.post("/translate", json={"q": texts, "alternatives": 2}).json()
    assert listed["translatedText"][0] == body["translatedText"]
    assert listed["alternatives"] == [candidates(translator, text, 3)[1:3] for text in texts]
    ours = client.post("/translate", json={"texts": texts, "alternatives": 2}).json()
    assert ours["alternatives"] == listed["alternatives"]
    assert "alternatives" not in client.post("/translate", json={"q": texts[0]}).json()


def test_alternatives_of_html_keep_the_markup(client: TestClient, translator: Translator) -> None:
    body = {"q": "<b>eins zwei</b> drei", "format": "html", "alternatives": 2}
    answer = client.post("/translate", json=body).json()
    ranked = translator.translate_ranked(
        [body["q"]],
        SearchOptions(beam_size=3, n_best=3),
        html=True,  # type: ignore[list-item]
    )[0]
    assert answer["translatedText"] == ranked[0]
    assert answer["alternatives"] == list(dict.fromkeys(ranked))[1:3]
    assert all(text.startswith("<b>") and "</b> " in text for text in answer["alternatives"])


def test_alternatives_need_a_beam_wide_enough(client: TestClient) -> None:
    cases = [
        ({"q": "eins", "alternatives": 8}, "less than or equal to 7"),
        ({"q": "eins", "alternatives": -1}, "greater than or equal to 0"),
    ]
    for payload, reason in cases:
        response = client.post("/translate", json=payload)
        assert response.status_code == 422 and reason in response.json()["error"], response.text


def test_languages(client: TestClient) -> None:
    assert client.get("/languages").json() == [
        {"code": "de", "name": "German", "targets": ["en"]},
        {"code": "en", "name": "English", "targets": []},
    ]
    assert "/languages" in client.get("/openapi.json").json()["paths"]


def test_the_libretranslate_python_client(server_url: str, translator: Translator) -> None:
    """libretranslatepy, LibreTranslate's own client, unchanged, against a live server."""
    from libretranslatepy import LibreTranslateAPI

    client = LibreTranslateAPI(server_url + "/")
    expected = translator.translate(["eins zwei drei"], SearchOptions(beam_size=1))[0]
    assert client.translate("eins zwei drei", source="de", target="en") == expected
    assert [language["code"] for language in client.languages()] == ["de", "en"]


@pytest.mark.slow
def test_the_libretranslate_client_between_two_non_english_languages(models_dir: Path) -> None:
    """libretranslatepy lists a multi-pair server's languages, detects, and translates French
    into German, which the server does through English."""
    from libretranslatepy import LibreTranslateAPI

    fr_en, en_de = (
        Translator.load(models_dir / name, device="cpu") for name in ("fr_en.pt", "en_de.pt")
    )
    with running_server(Settings(models=str(models_dir), device="cpu")) as url:
        client = LibreTranslateAPI(url + "/")
        listed = {language["code"]: language["targets"] for language in client.languages()}
        assert listed == {"de": ["en", "fr"], "en": ["de", "fr"], "fr": ["de", "en"]}
        expected = en_de.translate(fr_en.translate(["trois un quatre"], GREEDY), GREEDY)[0]
        assert client.translate("trois un quatre", source="fr", target="de") == expected
        assert client.detect("un deux trois")[0]["language"] == "fr"
