"""The web page in a real headless Chromium: type a sentence, press Translate, see the answer."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seq2seq import SearchOptions, Translator

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

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture()
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


def test_page_translates_in_a_real_browser(
    server_url: str, browser: Any, tiny_checkpoint_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    expected = Translator.load(tiny_checkpoint_path, device="cpu").translate(
        ["zwei drei", "neun"], SearchOptions(beam_size=1)
    )
    driver = browser
    driver.get(server_url + "/")
    wait = WebDriverWait(driver, 20)
    wait.until(lambda d: "de → en" in d.find_element(By.ID, "model-info").text)
    driver.find_element(By.ID, "source").send_keys("zwei drei\nneun")
    driver.find_element(By.ID, "translate").click()
    wait.until(lambda d: d.find_element(By.ID, "result").text.strip())
    assert driver.find_element(By.ID, "result").text.split("\n") == expected
    assert "sentence(s)" in driver.find_element(By.ID, "status").text
    assert not driver.find_element(By.ID, "others-box").is_displayed()

    alternatives = driver.find_element(By.ID, "alternatives")
    alternatives.clear()
    alternatives.send_keys("2")
    driver.find_element(By.ID, "translate").click()
    wait.until(lambda d: d.find_element(By.ID, "others-box").is_displayed())
    items = [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#others li")]
    assert [item.split(" → ")[0] for item in items] == ["zwei drei", "neun"]
    assert all(len(item.split(" → ")[1]) > 0 for item in items)
