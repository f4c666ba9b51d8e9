"""The web page in a real headless browser (Debian's chromium + chromedriver, driven by
selenium): log in, add a magnet through the form, watch its progress reach 100 %,
remove it. The page talks to the daemon only through the Web API."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

import pytest
import trio

import shoal
from shoal.create import create_torrent
from shoal.magnet import Magnet, format_magnet
from shoal.metainfo import parse_metainfo

from .helpers import DEADLINE, PASSWORD, web_daemon

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

IN_CI = os.environ.get("CI") == "true"
CHROME_FLAGS = (
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


def _require_chromedriver() -> str:
    path = shutil.which("chromedriver")
    if path is None or shutil.which("chromium") is None:
        message = (
            "chromium and chromedriver are not installed; apt-get install chromium chromium-driver"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _browse(url: str, magnet: str, info_hash: str, profile: str, driver_path: str) -> None:
    """The whole browser session (blocking: runs in a worker thread)."""
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.binary_location = shutil.which("chromium") or "chromium"
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        # The list re-renders when a torrent changes: an element found just before a
        # refresh can be gone a moment later; the wait then simply looks again.
        wait = WebDriverWait(driver, DEADLINE, ignored_exceptions=[StaleElementReferenceException])
        driver.get(url)
        wait.until(ec.visibility_of_element_located((By.ID, "login")))
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "login-button").click()
        wait.until(ec.visibility_of_element_located((By.ID, "add")))
        driver.find_element(By.ID, "magnet").send_keys(magnet)
        driver.find_element(By.ID, "add-button").click()
        row = f'#torrents tr[data-hash="{info_hash}"]'

        def progress_text(d: Any) -> str | bool:
            cells = d.find_elements(By.CSS_SELECTOR, row + " td.progress")
            return bool(cells) and "100.0%" in cells[0].text and cells[0].text

        assert "100.0%" in wait.until(progress_text)
        name = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row + " td.name").text)
        assert name == "holiday"

        def click_remove(d: Any) -> bool:
            d.find_element(By.CSS_SELECTOR, row + " button.remove").click()
            return True

        wait.until(click_remove)
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, row))
    finally:
        driver.quit()


async def test_web_page_adds_shows_and_removes(tmp_path: Path) -> None:
    driver_path = _require_chromedriver()
    data = tmp_path / "seed" / "holiday"
    data.mkdir(parents=True)
    (data / "a.jpg").write_bytes(random.Random(2).randbytes(300_000))
    meta = parse_metainfo(create_torrent(data, piece_length=16384))
    config = shoal.ClientConfig(bind_host="127.0.0.1", port=0, dht=False)
    async with shoal.open_client(config) as seeder:
        seed = await seeder.add(meta, save_to=tmp_path / "seed")
        with trio.fail_after(DEADLINE):
            await seed.wait_complete()
        magnet = format_magnet(
            Magnet(meta.info_hash, display_name="holiday", peers=(seeder.listen_address,))
        )
        async with web_daemon(tmp_path / "daemon", login=False) as web:
            with tempfile.TemporaryDirectory(dir=tmp_path) as profile:
                await trio.to_thread.run_sync(
                    _browse, web.url + "/", magnet, meta.info_hash.hex(), profile, driver_path
                )
            assert web.running.daemon.hashes() == []
            # Removed without deleting files: the download is still on disk.
            assert (web.download_dir / "holiday" / "a.jpg").read_bytes() == (
                data / "a.jpg"
            ).read_bytes()
