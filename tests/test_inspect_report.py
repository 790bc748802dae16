"""Reports: a self-contained HTML page (checked in Chromium when present) and PNG heatmaps."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import matplotlib.image
import pytest
import torch

from seq2seq import ModelConfig, SearchOptions, Seq2Seq, TokenizerPair, Translator
from seq2seq.inspect_report import page_html, write_html, write_png
from seq2seq.introspect import Inspection
from seq2seq.units import rank_units

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def two_layers(tiny_tokenizers: TokenizerPair) -> Inspection:
    """An inspection of an untrained two-layer model over the tiny vocabularies."""
    torch.manual_seed(0)
    sizes = {"embedding_size": 8, "hidden_size": 12, "num_layers": 2, "dropout": 0.0}
    vocab = (tiny_tokenizers.src.vocab_size, tiny_tokenizers.tgt.vocab_size)
    translator = Translator(Seq2Seq(ModelConfig(*vocab, **sizes)), tiny_tokenizers, device="cpu")
    return translator.inspect(
        'eins "zwei" </script><!-- drei', SearchOptions(beam_size=1, max_length=6)
    )


def embedded_data(page: str) -> dict[str, object]:
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert match is not None
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def test_the_page_is_self_contained_and_carries_the_inspection(two_layers: Inspection) -> None:
    units = rank_units(two_layers, "position", top=3)
    page = page_html(two_layers, units=units, by="position", model="m.pt")
    assert not re.search(r"https?://|<link|<img|src=|@import", page)
    assert page.count("</script>") == 2  # the text's own "</script>" stays inside the data
    data = embedded_data(page)
    assert data["inspection"] == json.loads(json.dumps(two_layers.to_dict(decimals=2)))
    assert data["units"] == [unit.to_dict() for unit in units]
    assert (data["by"], data["signal"], data["model"]) == ("position", "cell", "m.pt")
    assert "<title>Inside the model: eins &quot;zwei&quot; &lt;/script&gt;" in page


def test_png_has_a_row_of_heatmaps_per_layer(two_layers: Inspection, tmp_path: Path) -> None:
    one_layer = replace(
        two_layers,
        encoder=replace(two_layers.encoder, layers=two_layers.encoder.layers[:1]),
        decoder=replace(two_layers.decoder, layers=two_layers.decoder.layers[:1]),
    )
    heights = []
    for name, item in (("one.png", one_layer), ("two.png", two_layers)):
        write_png(item, tmp_path / name, signal="forget")
        heights.append(matplotlib.image.imread(tmp_path / name).shape[0])
    assert heights[1] > 1.5 * heights[0]
    with pytest.raises(ValueError, match="unknown signal"):
        write_png(two_layers, tmp_path / "bad.png", signal="reset")


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver")
def test_the_page_draws_hovers_and_plots_offline(two_layers: Inspection, tmp_path: Path) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    path = tmp_path / "page.html"
    write_html(two_layers, path, units=rank_units(two_layers, "remaining", top=3), by="remaining")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(path.as_uri())
        width = driver.execute_script("return document.querySelector('[data-part=encoder]').width")
        assert width == 34 + 18 * len(two_layers.encoder.tokens) + 4
        first = driver.find_elements("css selector", "tr.unit")[0]
        assert "selected" in first.get_attribute("class")  # the best unit is plotted at once
        assert driver.find_elements("css selector", "[data-part=trace] polyline")
        canvas = driver.find_element("css selector", "[data-part=decoder]")
        script = "arguments[0].dispatchEvent(new MouseEvent('mousemove', arguments[1]))"
        box = driver.execute_script("return arguments[0].getBoundingClientRect()", canvas)
        event = {"clientX": box["left"] + 34 + 9, "clientY": box["top"] + 80 + 1}
        driver.execute_script(script, canvas, event)
        tip = driver.find_element("css selector", "[data-part=tip]").text
        assert tip.startswith("decoder step 0 “<s>” · layer 0 unit 0 · cell = ")
    finally:
        driver.quit()
