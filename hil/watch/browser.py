"""Headless Chromium driven by Selenium, for ``hil watch --screenshot`` and the page's tests.

Only the system's Chromium and chromedriver are used (Debian: ``chromium``, ``chromium-driver``),
with a fresh profile and every background network feature off, so nothing is downloaded.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hil.errors import HilError

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def find_chromium() -> tuple[str, str] | None:
    """Paths of Chromium and chromedriver, or None when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def headless_chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Selenium WebDriver on a headless Chromium with a throw-away profile."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise HilError("a headless browser needs selenium: pip install selenium") from None
    found = find_chromium()
    if found is None:
        raise HilError("a headless browser needs Chromium and chromedriver "
                       "(Debian: apt-get install chromium chromium-driver)")
    browser, driver_path = found
    with tempfile.TemporaryDirectory(prefix="hil-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        # an explicit driver path: Selenium never looks for (or downloads) a driver itself
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()
