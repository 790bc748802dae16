"""The web page in a real headless Chromium: type a sentence, press Translate, see the answer."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import running_server

from seq2seq import SearchOptions, Translator
from serve.settings import Settings

GREEDY = SearchOptions(beam_size=1)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
        "chromium-driver)",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def url(models_dir: Path) -> Iterator[str]:
    """A server of de->en, en->de, en->fr and fr->en, with an API key."""
    settings = Settings(models=str(models_dir), device="cpu", api_key="sesame")
    with running_server(settings) as url:
        yield url


def test_page_translates_direct_pivoted_and_detected(
    url: str, browser: Any, models_dir: Path
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException as Stale
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    de_en, fr_en, en_de = (
        Translator.load(models_dir / f"{pair}.pt", device="cpu")
        for pair in ("de_en", "fr_en", "en_de")
    )
    driver, wait = browser, WebDriverWait(browser, 20, ignored_exceptions=[Stale])
    driver.get(url + "/")
    wait.until(lambda d: "3 source language(s)" in d.find_element(By.ID, "model-info").text)
    assert not driver.find_element(By.ID, "key-label").is_displayed()  # no key asked yet
    source, target = (
        Select(driver.find_element(By.ID, "from")),
        Select(driver.find_element(By.ID, "to")),
    )
    assert [o.get_attribute("value") for o in source.options] == ["auto", "de", "en", "fr"]

    driver.find_element(By.ID, "source").send_keys("zwei drei. neun")  # two sentences, one line
    source.select_by_value("de")
    target.select_by_value("en")
    driver.find_element(By.ID, "translate").click()
    wait.until(lambda d: d.find_element(By.ID, "key-label").is_displayed())  # 401: asks for it
    driver.find_element(By.ID, "api-key").send_keys("sesame")
    driver.find_element(By.ID, "translate").click()
    wait.until(lambda d: d.find_element(By.ID, "result").text.strip())
    assert (
        driver.find_element(By.ID, "result").text == de_en.translate(["zwei drei. neun"], GREEDY)[0]
    )
    assert driver.find_element(By.ID, "status").text.startswith("1 line(s): ")

    driver.find_element(By.ID, "swap").click()
    assert (source.first_selected_option.text, target.first_selected_option.text) == (
        "English",
        "German",
    )

    source.select_by_value("auto")  # French detected, then to German through English
    target.select_by_value("de")
    box = driver.find_element(By.ID, "source")
    box.clear()
    box.send_keys("trois un quatre")
    driver.find_element(By.ID, "translate").click()
    wait.until(lambda d: "through English" in d.find_element(By.ID, "status").text)
    status = driver.find_element(By.ID, "status").text
    assert "detected French" in status
    expected = en_de.translate(fr_en.translate(["trois un quatre"], GREEDY), GREEDY)
    assert driver.find_element(By.ID, "result").text == expected[0]


def test_page_shows_inside_the_model(url: str, browser: Any) -> None:
    from selenium.common.exceptions import StaleElementReferenceException as Stale
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver, wait = browser, WebDriverWait(browser, 20, ignored_exceptions=[Stale])
    driver.get(url + "/")
    wait.until(lambda d: len(Select(d.find_element(By.ID, "from")).options) == 4)
    driver.execute_script("document.getElementById('api-key').value = 'sesame'")
    Select(driver.find_element(By.ID, "from")).select_by_value("de")
    Select(driver.find_element(By.ID, "to")).select_by_value("en")
    driver.find_element(By.ID, "source").send_keys("eins zwei drei")
    driver.find_element(By.ID, "inspect").click()
    wait.until(lambda d: d.find_element(By.ID, "inside-box").is_displayed())
    canvas = driver.find_element(By.CSS_SELECTOR, "[data-part=encoder]")
    assert int(canvas.get_attribute("width")) > 34
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.unit")
    assert len(rows) == 10 and "selected" in rows[0].get_attribute("class")
    rows[3].click()
    assert "selected" in rows[3].get_attribute("class")
    assert driver.find_elements(By.CSS_SELECTOR, "[data-part=trace] polyline")
    Select(driver.find_element(By.ID, "by")).select_by_value("remaining")
    wait.until(
        lambda d: (
            "against remaining" in d.find_element(By.CSS_SELECTOR, "[data-part=units-title]").text
        )
    )
