"""Headless Chromium for tests that open pages (index.html reports, the app): Debian's chromium, driven by playwright.

playwright is pinned in requirements-test.txt and never downloads a browser here: it launches the system's
chromium (`apt-get install chromium`, done by .ci/run where missing) through `executable_path`. Where either is
absent the tests skip with one sentence saying which. The `browser` fixture (tests/conftest.py) launches it once
per session; `open_page` gives a page with its console errors collected.
"""

import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

# No network, no first-run work, no GPU: what a test machine (and CI) can run.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path():
    """The system's chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def skip_reason():
    """Why browser tests cannot run here (one sentence), or None when they can."""
    if chromium_path() is None:
        return "no chromium on this machine (apt-get install chromium; .ci/run installs it where missing)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-test.txt)"
    return None


@contextmanager
def launched_browser():
    """A headless chromium (playwright Browser) for the duration of the block; skips the test where there is none."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_page(browser, url: str, width: int = 1200, height: int = 900):
    """(page, messages) for `url`: messages collects ('console type', text) and ('pageerror', text) as they come."""
    page = browser.new_page(viewport={"width": width, "height": height})
    messages = []
    page.on("console", lambda message: messages.append((message.type, message.text)))
    page.on("pageerror", lambda error: messages.append(("pageerror", str(error))))
    try:
        page.goto(url)
        yield page, messages
    finally:
        page.close()


def errors(messages: list) -> list:
    """The console errors and uncaught exceptions among a page's messages."""
    return [(kind, text) for kind, text in messages if kind in ("error", "pageerror")]


def file_url(path: Path) -> str:
    """A file:// URL, as a person opening the file from the file system gets."""
    return Path(path).resolve().as_uri()


def screenshot_pixels(page, path: Path, selector: str = None) -> np.ndarray:
    """Save a screenshot (the element `selector`, else the whole page) to `path`; return its pixels (H, W, 3)."""
    from PIL import Image

    if selector:
        page.locator(selector).first.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    return np.asarray(Image.open(path).convert("RGB"))
