"""End to end: a real `streamlit run` server driven by Debian's Chromium through Playwright.

Screenshots go to test-output/e2e/ (kept after the run, ignored by git).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fer_core.runs import promote

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "test-output" / "e2e"
# Without these, Chromium tries Google's services, which this machine's closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
# (url path, title, text that appears once the page has rendered fully)
# Streamlit scrolls inside its own container, so a full-page screenshot shows only the viewport:
# a tall one captures whole pages.
VIEWPORT = {"width": 1400, "height": 2600}
PAGES = [("", "FER Studio", "Pages"), ("dataset", "Dataset", "Blank and near-constant images"),
         ("train", "Train", "Past runs"), ("evaluate", "Evaluate & compare", "Reliability diagram"),
         ("explain", "Explain", "predicted"), ("predict", "Predict", "A face crop")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_run, folder_dataset, tmp_path_factory):

    base = tmp_path_factory.mktemp("e2e")
    trained = base / "trained"
    promote(tiny_run, "cnn", dest_root=trained)
    port = free_port()
    env = {**os.environ, "FER_TRAINED_DIR": str(trained), "FER_DATA": str(folder_dataset),
           "FER_RUNS_DIR": str(base / "runs"), "FER_CACHE_DIR": str(base / "cache")}
    log = open(base / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail(f"streamlit did not start: {(base / 'server.log').read_text()[-2000:]}")
    yield url, base
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def settle(page) -> None:
    """Wait until lazily drawn elements (tables, charts) have replaced their loading skeletons."""
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0",
                           timeout=60_000)
    page.wait_for_timeout(1500)


@pytest.mark.parametrize("path, title, ready", PAGES)
def test_every_page_in_chromium(server, browser, path, title, ready):
    url, _base = server
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
    page.get_by_text(ready).first.wait_for(timeout=120_000)
    settle(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{path or 'home'}.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    page.close()


def test_predict_upload_in_chromium(server, browser, folder_dataset, tmp_path):
    url, _base = server
    face = next((folder_dataset / "test" / "happy").iterdir())
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is text, not a JPEG")
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/predict")
    page.get_by_text("A face crop").wait_for(timeout=120_000)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(face), str(bad)])
    page.get_by_text("Download CSV").wait_for(timeout=120_000)
    settle(page)
    page.screenshot(path=str(SCREENSHOTS / "predict-upload.png"), full_page=True)
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 1 and "notes.jpg" in errors.inner_text()
    assert page.get_by_text("Download CSV").count() == 1
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()
