"""Debian's Chromium for the end-to-end tests (`playwright` and `browser` fixtures in conftest),
the dashboard server they drive, and the waits every such test needs."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output" / "e2e"  # kept after a run, ignored by git
# Without these, Chromium tries Google's services, which this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

# Streamlit scrolls inside its own container, so a full-page screenshot shows only the viewport:
# a tall one captures whole pages.
VIEWPORT = {"width": 1400, "height": 2600}


@contextmanager
def dashboard_server(base: Path, trained: Path, data: Path):
    """A real `streamlit run app.py` on the models in `trained` and the dataset `data`, its folders
    under `base`, while the block runs: (url, pid)."""
    from helpers import start_dashboard, stop_dashboard

    process, url, log = start_dashboard(base, trained, data)
    try:
        yield url, process.pid
    finally:
        stop_dashboard(process, log)


def download_csv(page, button: str, path: Path, tries: int = 3) -> None:
    """Click a download button and save what it downloads to `path`.

    Under load (the suite's other worker busy) the Live page's button after Stop has been seen
    disabled for over a minute, and a first click has downloaded nothing; a user waits and clicks
    again, and so does this, a few times before it fails, leaving a screenshot of the page."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(tries):
        try:
            with page.expect_download(timeout=60_000) as download:
                page.get_by_role("button", name=button).click(timeout=60_000)
            download.value.save_as(path)
            return
        except PlaywrightTimeout:
            if attempt == tries - 1:
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / f"download-failed-{path.stem}.png"), full_page=True)
                raise
            settle(page)


def settle(page) -> None:
    """Wait until lazily drawn elements (tables, charts) have replaced their loading skeletons."""
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0", timeout=60_000
    )
    page.wait_for_timeout(1500)


def upload_to_predict(browser, url: str, upload: Path, seconds: float = 120):
    """A new tab on Predict with `upload` dropped in, once its results table is drawn."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/predict")
    page.get_by_text("A face crop").wait_for(timeout=120_000)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(upload)])
    page.get_by_text("Download CSV").wait_for(timeout=seconds * 1000)
    settle(page)
    return page
