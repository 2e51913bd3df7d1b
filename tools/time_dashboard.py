"""Time the dashboard as a user feels it: a real `streamlit run` server and Debian's Chromium.

    .venv/bin/python tools/time_dashboard.py [--data ../shared/fer2013] [--repeats 3]

Prints JSON: `home_first_render_s` (server answering its health check → Home's page list drawn
in a fresh browser tab) and `page_switch_s` per page (sidebar click → that page's title and its
last section drawn), measured after every page was opened once (models and data loaded).
Not a test: the numbers depend on the machine; docs/performance.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# sidebar label, page title, text drawn last on that page
PAGES = [
    ("Dataset", "Dataset", "Blank and near-constant images"),
    ("Train", "Train", "Runs and cross-validations"),
    ("Evaluate & compare", "Evaluate & compare", "Reliability diagram"),
    ("Explain", "Explain", "Heatmap opacity"),
    ("Predict", "Predict", "A face crop"),
    ("Video", "Video", "Upload a video"),
    ("Live", "Live", "Camera not working?"),
    ("Home", "FER Studio", "Pages"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict) -> subprocess.Popen:
    """`streamlit run app.py` on `port`, its output discarded."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until_healthy(url: str) -> None:
    """Until the server answers its health check."""
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                return
        except OSError:
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "fer2013"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "FER_DATA": args.data}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        server = start_server(port, env)
        try:
            wait_until_healthy(url)
            answered = time.perf_counter()
            page.goto(url)
            page.get_by_role("heading", name="FER Studio", exact=True).wait_for(timeout=60_000)
            page.get_by_text("Pages", exact=True).wait_for(timeout=60_000)
            home_first_render = time.perf_counter() - answered

            sidebar = page.locator('[data-testid="stSidebar"]')

            def open_page(label: str, title: str, ready: str) -> float:
                start = time.perf_counter()
                sidebar.get_by_text(label, exact=True).click()
                page.get_by_role("heading", name=title, exact=True).wait_for(timeout=300_000)
                page.get_by_text(ready).first.wait_for(timeout=300_000)
                page.wait_for_function(
                    "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=300_000
                )
                elapsed = time.perf_counter() - start
                # Untimed: the Live page's component asks for one more run after it mounts; a click
                # during that run can be overtaken by it (and land back on Live).
                page.wait_for_timeout(1500)
                return elapsed

            first_visit = {label: round(open_page(label, title, ready), 2) for label, title, ready in PAGES}
            switches = {label: [] for label, _, _ in PAGES}
            for _ in range(args.repeats):
                for label, title, ready in PAGES:
                    switches[label].append(open_page(label, title, ready))
        finally:
            server.terminate()
            server.wait(timeout=30)
            browser.close()
    print(
        json.dumps(
            {
                "home_first_render_s": round(home_first_render, 2),
                "first_visit_s": first_visit,
                "page_switch_s": {k: round(statistics.median(v), 2) for k, v in switches.items()},
                "page_switch_max_s": round(max(max(v) for v in switches.values()), 2),
                "repeats": args.repeats,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
