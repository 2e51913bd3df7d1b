"""Memory under use: one `streamlit run` server, photos and videos uploaded through Chromium again
and again, the server's resident memory read after each round.

    .venv/bin/python tools/soak_dashboard.py [--rounds 12] [--photos 25]

Each round uploads `--photos` photos (skimage's astronaut and cameraman side by side, turned and
scaled differently each time) to Predict and one 10-second 640x480 video with two faces to the
Video page, and waits for the results. Prints JSON: the server's RSS (MiB) after each round. Flat
after the first rounds (models loaded, caches warm) is the pass; a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tools"))

from time_dashboard import ARGS, CHROMIUM, free_port, start_server, wait_until_healthy  # noqa: E402


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def photos(folder: Path, count: int, seed: int) -> list[Path]:
    import cv2
    import numpy as np
    import skimage.data

    pair = np.hstack([skimage.data.astronaut(), np.repeat(skimage.data.camera()[..., None], 3, axis=2)])
    made = []
    for k in range(count):
        turn = cv2.getRotationMatrix2D((512, 256), (seed * 7 + k * 5) % 30 - 15, 0.6 + 0.05 * (k % 8))
        image = cv2.warpAffine(pair, turn, (1024, 512), borderMode=cv2.BORDER_REFLECT)
        path = folder / f"photo-{seed}-{k}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        made.append(path)
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--photos", type=int, default=25)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from helpers import moving_faces_video

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp(prefix="fer-soak-"))
    clip = moving_faces_video(work / "clip.mp4", frames=100)
    server = start_server(port, {**os.environ, "FER_CACHE_DIR": str(work / "cache")})
    resident = []
    try:
        wait_until_healthy(url)
        resident.append({"round": 0, "rss_mib": rss_mib(server.pid)})
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            for round_number in range(1, args.rounds + 1):
                page = browser.new_page(viewport={"width": 1400, "height": 1600})
                page.goto(f"{url}/predict")
                page.get_by_text("A face crop").wait_for(timeout=120_000)
                batch = photos(work, args.photos, round_number)
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(p) for p in batch])
                page.get_by_text("Download CSV").wait_for(timeout=600_000)
                page.goto(f"{url}/video")
                page.get_by_text("Upload a video").wait_for(timeout=120_000)
                page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(clip)])
                page.get_by_text("clip.mp4").first.wait_for(timeout=60_000)
                page.wait_for_timeout(1000)
                page.get_by_role("button", name="Analyse").click()
                page.get_by_text("frames read").wait_for(timeout=600_000)
                page.close()
                for path in batch:
                    path.unlink()
                resident.append({"round": round_number, "rss_mib": rss_mib(server.pid)})
                print(json.dumps(resident[-1]), file=sys.stderr, flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps({"photos_per_round": args.photos, "videos_per_round": 1, "resident": resident}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
