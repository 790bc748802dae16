"""The web page in a real headless Chromium: type a sentence, press Translate, see the answer."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from seq2seq import Translator
from serve.app import create_app
from serve.settings import Settings

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def server_url(tiny_checkpoint_path: Path) -> Iterator[str]:
    """uvicorn on a free loopback port in a background thread."""
    port = free_port()
    settings = Settings(model=str(tiny_checkpoint_path), device="cpu", port=port)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


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
        ["zwei drei", "neun"], beam_size=1
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
