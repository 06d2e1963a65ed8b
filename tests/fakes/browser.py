"""A real headless Chromium for the web UI's tests: Debian's chromium and chromedriver.

Selenium with the driver path given, so Selenium Manager never downloads a driver; the flags keep
the browser offline and quiet. Without the binaries, tests skip with an install hint, and fail
on CI (``CI`` set), where ``make setup`` must have installed them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver import Chrome, ChromeOptions
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

WAIT_SECONDS = 10.0

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Offline and quiet: nothing but the page's own requests leaves the browser.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# Every entry of the transcript: its kind, then the text of each of its parts.
TRANSCRIPT_JS = """
return Array.from(document.querySelectorAll("#transcript > li"),
                  (li) => [li.dataset.type, Array.from(li.children, (c) => c.textContent)]);
"""

Transcript = list[list[Any]]


def wait_for(driver: Chrome, condition: Callable[[Chrome], Any], what: str) -> Any:
    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.02).until(
        condition, f"timed out waiting for {what}"
    )


def transcript(driver: Chrome) -> Transcript:
    entries: Transcript = driver.execute_script(TRANSCRIPT_JS)
    return entries


def step_done(count: int) -> Callable[[Chrome], bool]:
    """True once the transcript holds ``count`` entries that end a step (answer or error)."""

    def done(driver: Chrome) -> bool:
        kinds = [entry[0] for entry in transcript(driver)]
        return sum(kind in ("result", "error") for kind in kinds) >= count

    return done


def status(driver: Chrome) -> str:
    return str(driver.find_element(By.ID, "status").get_attribute("data-state"))


def fill(driver: Chrome, element_id: str, value: str) -> None:
    field = driver.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def page_errors(driver: Chrome) -> list[str]:
    """Console errors: a CSP violation or a script error would be one (favicon misses are not)."""
    logs: list[dict[str, Any]] = driver.get_log("browser")
    return [
        str(entry["message"])
        for entry in logs
        if entry["level"] == "SEVERE" and "favicon.ico" not in str(entry["message"])
    ]


@contextmanager
def chrome(profile_dir: Path) -> Iterator[Chrome]:
    """A headless Chromium with a fresh profile; skips or fails (CI) when it is not installed."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        message = (
            f"browser tests need {' and '.join(missing)}: "
            "apt-get install -y chromium chromium-driver (make setup does)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver path given: Selenium Manager (which would download drivers) is not run.
    driver = Chrome(options=options, service=ChromeService(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()
