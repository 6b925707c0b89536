"""Headless Chromium for the tests that drive a page in a real browser (the data viewer, the notebook's
output cell): Debian's `chromium` and its `chromedriver`, driven by selenium. Nothing is downloaded:
selenium is given the system's driver, so its own driver manager never runs.

Where the browser is missing the tests skip and say why and how to install it; where
INSTRUCT_FACTORY_REQUIRE_BROWSER=1 (CI sets it: .ci/run installs chromium) they fail instead, so a
CI run can never pass with the browser tests quietly skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
DRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver (Debian; .ci/run does it when chromium is missing)"
# The closed network of CI refuses a browser's background connections: none are made.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--disable-extensions", "--window-size=1400,1000")


def _missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]' (or '.[view]')"
    if not any(Path(p).is_file() for p in CHROMIUM) and not shutil.which("chromium"):
        return f"no Chromium found (looked for {', '.join(CHROMIUM)}): {INSTALL}"
    if not Path(DRIVER).is_file() and not shutil.which("chromedriver"):
        return f"no chromedriver found ({DRIVER}): {INSTALL}"
    return None


def require_browser() -> None:
    """Skip (or, where CI requires the browser, fail) when headless Chromium cannot run."""
    why = _missing()
    if why is None:
        return
    if os.environ.get("INSTRUCT_FACTORY_REQUIRE_BROWSER") == "1":
        pytest.fail(f"INSTRUCT_FACTORY_REQUIRE_BROWSER=1 but the browser tests cannot run: {why}")
    pytest.skip(f"browser test skipped: {why}")


@contextmanager
def chromium() -> Iterator[Any]:
    """A selenium WebDriver on headless Chromium with its console log kept, and a new empty profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = next((p for p in CHROMIUM if Path(p).is_file()), None) or shutil.which("chromium")
    driver_path = DRIVER if Path(DRIVER).is_file() else shutil.which("chromedriver")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(binary)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


def console_problems(driver: Any) -> list[str]:
    """The console's errors and warnings since the last call (the log is read once)."""
    return [f"{e['level']}: {e['message']}" for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def wait_ready(driver: Any, timeout_s: float = 30.0) -> dict[str, Any]:
    """window.__viewer once the data page has rendered (and a failure to render, raised)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout_s).until(lambda d: d.execute_script(
        "return !!(window.__viewer && (window.__viewer.ready || window.__viewer.error))"))
    state = driver.execute_script("return window.__viewer")
    assert not state.get("error"), state.get("error")
    return state
