"""The README's pictures of the dashboard: starts `streamlit run app.py` on the shipped models and
the given data, opens pages in Debian's Chromium and writes small PNGs to docs/img/.

    python tools/screenshots.py --data ../shared/fer2013
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# (url path, file name, text that appears once the page has rendered)
PAGES = [
    ("", "home", "Pages"),
    ("evaluate", "evaluate", "Reliability diagram"),
    ("explain", "explain", "predicted"),
]
WIDTH = 1400  # taken at this width, stored at STORED_WIDTH
STORED_WIDTH = 900


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = parser.parse_args(argv)
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FER_DATA": args.data, "FER_RUNS_DIR": str(ROOT / "test-output" / "screenshot-runs")}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"]
            )
            for path, name, ready in PAGES:
                page = browser.new_page(viewport={"width": WIDTH, "height": 1100})
                page.goto(f"{url}/{path}")
                page.get_by_text(ready).first.wait_for(timeout=600_000)
                page.wait_for_function(
                    "() => document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0", timeout=600_000
                )
                page.wait_for_timeout(2500)
                target = out / f"{name}.png"
                page.screenshot(path=str(target))
                image = Image.open(target).convert("RGB")
                image = image.resize((STORED_WIDTH, round(image.height * STORED_WIDTH / image.width)), Image.LANCZOS)
                image.quantize(colors=128).save(target, optimize=True)  # ~100 KB instead of ~1 MB
                print(f"{target}: {target.stat().st_size / 1e3:.0f} KB")
                page.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
