"""End to end: a real `streamlit run` server driven by Debian's Chromium through Playwright.

Screenshots go to test-output/e2e/ (kept after the run, ignored by git).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from fer_core import CLASS_NAMES
from fer_core.training.promote import promote
from chromium import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENSHOTS,
    VIEWPORT,
    dashboard_server,
    download_csv,
    settle,
    upload_to_predict,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# (url path, title, text that appears once the page has rendered fully)
# A deep link comes first: on a fresh server it must still run through app.py's navigation.
PAGES = [
    ("predict", "Predict", "A face crop"),
    ("", "FER Studio", "Pages"),
    ("dataset", "Dataset", "Blank and near-constant images"),
    ("train", "Train", "Runs and cross-validations"),
    ("evaluate", "Evaluate & compare", "Reliability diagram"),
    ("explain", "Explain", "predicted"),
    ("video", "Video", "Upload a video"),
    ("live", "Live", "Camera not working?"),
    ("batch", "Batch", "No batch job yet"),
]


@pytest.fixture(scope="module")
def server(tiny_run, folder_dataset, tmp_path_factory):

    base = tmp_path_factory.mktemp("e2e")
    trained = base / "trained"
    promote(tiny_run, "cnn", dest_root=trained)
    with dashboard_server(base, trained, folder_dataset) as (url, pid):
        yield url, base, pid


@pytest.mark.parametrize("path, title, ready", PAGES)
def test_every_page_in_chromium(server, browser, path, title, ready):
    url, _base, _pid = server
    page = browser.new_page(viewport=VIEWPORT)
    outside = block_outside_requests(page)
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
    page.get_by_text(ready).first.wait_for(timeout=120_000)
    settle(page)
    # The app's own navigation and sidebar, not Streamlit's file-name listing.
    sidebar = page.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_text("Evaluate & compare").count() == 1
    assert sidebar.get_by_text("Dataset (a folder or CSV)").count() == 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{path or 'home'}.png"), full_page=True)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    # The same page in a narrow window (a laptop split screen), for a look at what wraps or is cut.
    page.set_viewport_size({"width": 800, "height": VIEWPORT["height"]})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(SCREENSHOTS / f"{path or 'home'}-800.png"), full_page=True)
    assert outside == [], "the page asked the internet for something (offline it would be missing)"
    page.close()


def block_outside_requests(page) -> list[str]:
    """Refuse every request that leaves this machine (a font CDN, an icon, telemetry), as an
    offline machine would; returns the list they are recorded in."""
    outside: list[str] = []

    def only_local(route):
        if urllib.parse.urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    return outside


# What the browser cut in the main area: a choice longer than its box (a select's input scrolls,
# "blaze"), a word of a widget label broken over two lines ("augmen-tation"), a text ended by
# an ellipsis ("2…").
CUT_TEXTS = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    const cut = [];
    for (const input of main.querySelectorAll('input[role="combobox"]'))
        if (input.offsetParent !== null && input.scrollWidth > input.clientWidth + 1) cut.push(input.value);
    for (const label of main.querySelectorAll('[data-testid="stWidgetLabel"] p')) {
        for (const node of label.childNodes) {
            if (node.nodeType !== Node.TEXT_NODE) continue;
            let start = 0;
            for (const word of node.textContent.split(' ')) {
                const range = document.createRange();
                range.setStart(node, start);
                range.setEnd(node, start + word.length);
                if (word && range.getClientRects().length > 1) cut.push(word);
                start += word.length + 1;
            }
        }
    }
    for (const e of main.querySelectorAll('*'))
        if (e.offsetParent !== null && e.children.length === 0 && e.innerText
            && getComputedStyle(e).textOverflow === 'ellipsis' && e.scrollWidth > e.clientWidth + 1)
            cut.push(e.innerText);
    return cut;
}"""


@pytest.mark.parametrize("path, ready", [("predict", "A face crop"), ("video", "Upload a video")])
def test_the_settings_are_readable_at_800_px(server, browser, path, ready):
    """A laptop with the sidebar open: no label or choice cut short (the detector picker once
    showed "blaze…")."""
    url, _base, _pid = server
    page = browser.new_page(viewport={"width": 800, "height": 1000})
    page.goto(f"{url}/{path}")
    page.get_by_text(ready).first.wait_for(timeout=120_000)
    settle(page)
    assert page.evaluate(CUT_TEXTS) == []
    assert page.get_by_role("combobox", name="Face detector").input_value() == "retinaface"
    page.close()


# Each table's width beyond its box (0: it needs no sideways scroll).
TABLE_OVERFLOW = """() => [...document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller')]
    .map(s => s.scrollWidth - s.clientWidth)"""


@pytest.mark.parametrize("path, ready", [("", "Pages"), ("evaluate", "Reliability diagram")])
def test_the_model_tables_fit_at_800_px(server, browser, path, ready):
    """Home's and Evaluate's tables of models show every column at 800 px (they once hid
    "reported on", "selected on", "source" and "epochs" past a sideways scroll)."""
    url, _base, _pid = server
    page = browser.new_page(viewport={"width": 800, "height": 1400})
    page.goto(f"{url}/{path}")
    page.get_by_text(ready).first.wait_for(timeout=120_000)
    settle(page)
    overflow = page.evaluate(TABLE_OVERFLOW)
    assert overflow and all(width <= 1 for width in overflow), overflow
    page.close()


def test_predict_upload_in_chromium(server, browser, folder_dataset, tmp_path):
    url, _base, _pid = server
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
    download_csv(page, "Download CSV", tmp_path / "predictions.csv")
    import pandas as pd

    rows = pd.read_csv(tmp_path / "predictions.csv")
    assert list(rows["model"]) == ["cnn"] and list(rows["tta"]) == ["none"]  # what produced them
    page.close()


def test_predict_a_group_photo_in_colour_with_numbered_faces(server, browser, tmp_path):
    """Two real photos side by side, one face each, and a third person cut by the right edge
    through the middle of the face: all three found by the default detector, shown in colour,
    numbered as in the table (the cut one marked so), and the annotated image downloads in
    colour; once the tab closes, the server lets go of it (its session is shut down, not kept
    for a reconnect)."""
    import numpy as np
    import pandas as pd
    import skimage.data
    from PIL import Image

    url, _base, _pid = server
    camera = np.repeat(skimage.data.camera()[..., None], 3, axis=2)
    photo = np.hstack([skimage.data.astronaut(), camera, skimage.data.astronaut()[:, :230]])
    upload = tmp_path / "two_people.jpg"
    Image.fromarray(photo).save(upload, quality=92)
    page = upload_to_predict(browser, url, upload)
    page.screenshot(path=str(SCREENSHOTS / "predict-group-photo.png"), full_page=True)
    download_csv(page, "Download CSV", tmp_path / "faces.csv")
    rows = pd.read_csv(tmp_path / "faces.csv")
    assert list(rows["face"]) == [1, 2, 3] and set(rows["detector"]) == {"retinaface"}
    by_left = rows.sort_values("x")  # the same columns as fer-core predict --csv
    assert list(by_left["x"] // 512) == [0, 1, 2]  # one face in each photo
    assert list(by_left["cut"]) == [False, False, True]
    for number in (1, 2, 3):
        assert page.get_by_text(f"face {number}:").count() >= 1
    download_csv(page, "Download annotated image", tmp_path / "annotated.png")
    annotated = np.asarray(Image.open(tmp_path / "annotated.png").convert("RGB")).astype(int)
    assert annotated.shape == photo.shape
    left = annotated[:, :512]
    assert np.abs(left[..., 0] - left[..., 2]).mean() > 20  # the astronaut's orange suit: colour, not grey

    # Closing the tab releases what its session held: the annotated image is no longer served.
    # (Read once the download's rerun is over: a rerun cut short by the close drops its images too.)
    settle(page)
    image_url = urllib.parse.urljoin(
        f"{url}/predict", page.locator('[data-testid="stImage"] img').first.get_attribute("src")
    )
    assert urllib.request.urlopen(image_url, timeout=10).status == 200
    page.wait_for_timeout(1000)
    assert urllib.request.urlopen(image_url, timeout=10).status == 200  # served while the tab is open
    page.close()
    assert media_gone(image_url), f"{image_url} is still served after its tab closed"


def media_gone(image_url: str, seconds: float = 20.0) -> bool:
    """Whether the server stops serving `image_url` (HTTP 404) within `seconds`."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(image_url, timeout=5)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return True
        time.sleep(0.5)
    return False


def test_video_page_analyses_a_file_in_the_background_and_refuses_a_bad_one(server, browser, tmp_path):
    import pandas as pd

    from helpers import moving_faces_video

    url, _base, _pid = server
    clip = moving_faces_video(tmp_path / "two_faces.mp4")
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/video")
    page.get_by_text("Upload a video").wait_for(timeout=120_000)
    page.get_by_role("combobox", name="Face detector").click()  # Haar finds the drawn faces in every frame
    page.get_by_role("option", name="haar").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(clip)])
    page.get_by_role("button", name="Analyse").click()
    page.get_by_text("frames read").wait_for(timeout=180_000)
    page.get_by_text("Download annotated video").wait_for(timeout=60_000)
    settle(page)
    page.screenshot(path=str(SCREENSHOTS / "video.png"), full_page=True)
    assert "30 frames read, 6 analysed" in page.get_by_text("frames read").inner_text()
    download_csv(page, "Download CSV", tmp_path / "rows.csv")
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert set(rows["face"]) == {1, 2} and set(rows["detector"]) == {"haar"}
    # Both downloads clicked one right after the other each deliver their file (a click reruns
    # nothing, so the second's link is still there).
    settle(page)
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    page.get_by_role("button", name="Download CSV").click()
    page.get_by_role("button", name="Download annotated video").click()
    deadline = time.time() + 60
    while len(downloads) < 2 and time.time() < deadline:
        page.wait_for_timeout(250)
    assert sorted(d.suggested_filename for d in downloads) == ["two_faces_faces.csv", "two_faces_faces.mp4"]
    for download in downloads:
        download.save_as(tmp_path / download.suggested_filename)
    assert pd.read_csv(tmp_path / "two_faces_faces.csv").equals(rows)
    assert (tmp_path / "two_faces_faces.mp4").read_bytes()[4:8] == b"ftyp"  # an MP4 file

    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(bytes(range(256)) * 400)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(bad)])
    page.get_by_text("holiday.mp4").first.wait_for(timeout=60_000)
    settle(page)
    page.get_by_role("button", name="Analyse").click()
    errors = page.locator('[data-testid="stAlertContentError"]')
    try:
        errors.first.wait_for(timeout=120_000)
    finally:
        page.screenshot(path=str(SCREENSHOTS / "video-bad-file.png"), full_page=True)
    assert "holiday.mp4" in errors.first.inner_text() and "not a video" in errors.first.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_predict_soak_zip_of_mixed_files(server, browser, tmp_path):
    import io
    import zipfile

    from PIL import Image

    from helpers import synthetic_face
    from helpers import IMAGE_CASES

    url, _base, pid = server
    buffer, good = io.BytesIO(), 0
    kinds = list(IMAGE_CASES.items())
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(300):
            if i % 3 == 0:
                name, (data, expected) = kinds[i % len(kinds)]
                good += isinstance(expected, tuple)
            else:
                name, data = f"face{i}.png", _png(Image.fromarray(synthetic_face(i % 7, i)))
                good += 1
            archive.writestr(f"batch/{i:03d}-{name}", data)
    upload = tmp_path / "soak.zip"
    upload.write_bytes(buffer.getvalue())
    page = upload_to_predict(browser, url, upload, seconds=300)
    summary = page.get_by_text("images classified").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "predict-soak.png"), full_page=True)
    assert summary.startswith(f"{good} images classified, {300 - good} refused"), summary
    assert page.locator('[data-testid="stException"]').count() == 0
    peak = peak_rss_mb(pid)
    print(f"Predict page soak: 300 files ({good} good) server peak RSS {peak:.0f} MB")
    assert peak < 3000
    page.close()


def _png(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_clicking_a_confusion_matrix_cell_picks_the_gallery(server, browser):
    url, _base, _pid = server
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/evaluate")
    page.get_by_text("Reliability diagram").wait_for(timeout=120_000)
    settle(page)
    # The clickable markers over the cells are in row-major order: index = true * 7 + predicted.
    true_index, predicted_index = 4, 2  # sad predicted as fear
    marker = page.locator(".scatterlayer .trace path.point").nth(true_index * 7 + predicted_index)
    box = marker.bounding_box()
    # Plotly listens on its drag layer, so click where a person would: at the cell's centre.
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    caption = page.get_by_text("true class sad predicted as fear")
    caption.wait_for(timeout=60_000)
    settle(page)
    # The faces are right under the matrix: above the per-class table, not two screens below it.
    per_class = page.get_by_role("heading", name="Per class")
    assert caption.bounding_box()["y"] < per_class.bounding_box()["y"]
    assert page.locator(".shapelayer path").count() >= 1  # the clicked cell is outlined
    for width in (1400, 800):
        page.set_viewport_size({"width": width, "height": 2600})
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / f"evaluate-{width}.png"), full_page=True)
    page.set_viewport_size(VIEWPORT)
    settle(page)
    # Some cell of the sad row holds faces (the split has sad faces): open the first in Explain.
    for predicted in range(7):
        cell = page.locator(".scatterlayer .trace path.point").nth(true_index * 7 + predicted).bounding_box()
        page.mouse.click(cell["x"] + cell["width"] / 2, cell["y"] + cell["height"] / 2)
        page.get_by_text(f"true class sad predicted as {CLASS_NAMES[predicted]}").wait_for(timeout=60_000)
        settle(page)
        if page.get_by_role("button", name="Open in Explain").count():
            break
    # Faces are numbered under the gallery ("1. fear 40%") and in the picker ("1. test/sad/...png").
    assert page.locator('[data-testid="stImageCaption"]').first.inner_text().startswith("1. ")
    picked = page.get_by_role("combobox", name="Face", exact=True).input_value()
    assert picked.startswith("1. ")
    file_name = picked[3:]
    page.get_by_role("button", name="Open in Explain").click()
    opened = page.get_by_text("Opened from Evaluate & compare")
    opened.wait_for(timeout=120_000)
    assert file_name in opened.inner_text()
    page.close()


def test_explain_picks_which_face_of_a_group_photo(server, browser, tmp_path):
    import numpy as np
    import skimage.data
    from PIL import Image

    url, _base, _pid = server
    camera = np.repeat(skimage.data.camera()[..., None], 3, axis=2)
    upload = tmp_path / "two_people.png"
    Image.fromarray(np.hstack([skimage.data.astronaut(), camera])).save(upload)
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/explain")
    page.get_by_text("Heatmap opacity").wait_for(timeout=120_000)
    page.get_by_text("upload", exact=True).click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(upload)])
    page.get_by_text("two_people.png, face 1 of 2").wait_for(timeout=120_000)  # the largest first
    page.get_by_role("combobox", name="Face to explain (2 found)").click()
    page.get_by_role("option", name="2").click()
    page.get_by_text("two_people.png, face 2 of 2").wait_for(timeout=120_000)
    page.get_by_text("Grad-CAM").first.wait_for(timeout=120_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def test_explain_bad_upload_is_an_error_box(server, browser, tmp_path):
    url, _base, _pid = server
    bad = tmp_path / "face.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # a PNG signature and nothing usable
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/explain")
    page.get_by_text("Heatmap opacity").wait_for(timeout=120_000)
    page.get_by_text("upload", exact=True).click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(bad)])
    error = page.locator('[data-testid="stAlertContentError"]')
    error.wait_for(timeout=60_000)
    assert "face.png" in error.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0
    page.close()


def confirm_then_click(page, confirm: str, button) -> None:
    """A button that waits for its confirming tick: disabled until `confirm` is ticked, then
    clicked (after the rerun the tick starts has drawn it enabled)."""
    from playwright.sync_api import expect

    assert button.is_disabled()
    page.get_by_text(confirm).click()
    expect(button).to_be_enabled(timeout=60_000)
    button.click()


def write_y4m(path: Path, frames, fps: int = 15) -> Path:
    """A raw YUV4MPEG2 clip for Chromium's fake camera (it wants the plain `C420` colour space)."""
    import cv2

    height, width = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420\n".encode())
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())  # Y, then U, then V planes
    return path


# Records every RTCPeerConnection configuration the page creates, to check no STUN/TURN is used.
RECORD_RTC_CONFIG = """
(() => {
  const Original = window.RTCPeerConnection;
  if (!Original) return;
  window.__rtcConfigs = [];
  window.RTCPeerConnection = function (config, ...rest) {
    window.__rtcConfigs.push(JSON.parse(JSON.stringify(config || {})));
    return new Original(config, ...rest);
  };
  window.RTCPeerConnection.prototype = Original.prototype;
})();
"""
# Counts pixels of draw_faces' box green in the processed video coming back from the server.
COUNT_BOX_PIXELS = """
() => {
  const video = document.querySelector('video');
  if (!video || video.readyState < 2 || !video.videoWidth) return -1;
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let green = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 1] > 150 && data[i] < 90 && data[i + 2] < 90) green++;
  }
  return green;
}
"""


def test_live_webcam_after_a_model_was_loaded(server, playwright, folder_dataset, tmp_path):
    """A fake camera (a clip of a real face moving: the default detector knows real faces, not
    drawn ones) streams through WebRTC: boxes and labels come back in the video, and timeline rows
    appear beside it. Predict loads a model (TensorFlow) first, the order that used to crash the
    server."""
    from fer_core.detection_bench import photo_frame

    url, base, pid = server
    clip = write_y4m(tmp_path / "faces.y4m", [photo_frame([(180 + 4 * i, 110, 200)]) for i in range(45)])
    args = CHROMIUM_ARGS + [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
    ]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
    try:
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(RECORD_RTC_CONFIG)
        page = context.new_page()
        page.goto(f"{url}/predict")
        page.get_by_text("A face crop").wait_for(timeout=120_000)
        face = next((folder_dataset / "test" / "happy").iterdir())
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(face)])
        page.get_by_text("Download CSV").wait_for(timeout=120_000)

        page.locator('[data-testid="stSidebar"]').get_by_text("Live", exact=True).click()
        page.get_by_text("Camera not working?").wait_for(timeout=120_000)
        webrtc = page.frame_locator('iframe[title*="webrtc"]')
        webrtc.get_by_role("button", name="Start").click()
        # Rows reach the page through the processor's queue; the panel polls once a second.
        page.get_by_text("Largest face:").first.wait_for(timeout=120_000)
        # Its probabilities as a bar per class, each named with its share.
        bars = page.locator('[data-testid="stProgress"]')
        bars.nth(6).wait_for(timeout=60_000)  # drawn just after the heading, in the same run
        assert bars.count() == 7 and bars.filter(has_text=re.compile(r"neutral \d+%")).count() == 1
        page.wait_for_function(
            "() => /([1-9][0-9,]*) timeline rows this session/.test(document.body.innerText)", timeout=60_000
        )
        frame = next(
            f
            for f in page.frames
            if f.url != page.url and "webrtc" in (f.url + f.name).lower() or f.locator("video").count()
        )
        deadline = time.time() + 60
        green = -1
        while time.time() < deadline and green < 500:
            green = frame.evaluate(COUNT_BOX_PIXELS)
            page.wait_for_timeout(500)
        settle(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "live-webcam.png"), full_page=True)
        configs = frame.evaluate("() => window.__rtcConfigs || []")
        caption = page.get_by_text("timeline rows this session").inner_text()
        # The panel's numbers are the video's: a face is boxed there, so the panel counts it, in
        # the overlay's words (frames/s, ms a frame).
        numbers = page.get_by_text("frames/s ·")
        assert re.search(r"\*?\b[1-9][0-9]* faces?\b", numbers.inner_text()) and "ms a frame" in numbers.inner_text()
        # "Where it looks" on, mid-stream: the key says what the colours mean, the panel how fresh
        # the maps are (the default model has no attention: Grad-CAM from the worker thread), and
        # the stream and its numbers go on.
        page.get_by_text("Where it looks", exact=True).click()
        page.get_by_text("Where it looks, inside each box: blue where the model puts least weight").wait_for(
            timeout=60_000
        )
        try:
            page.get_by_text(re.compile(r"Maps: Grad-CAM, the oldest drawn [0-9.]+ s old")).wait_for(timeout=60_000)
        finally:
            page.screenshot(path=str(SCREENSHOTS / "live-where-it-looks.png"), full_page=True)
        rows_before = int(
            re.search(r"([0-9,]+) timeline rows", page.get_by_text("timeline rows this session").inner_text())
            .group(1)
            .replace(",", "")
        )
        page.wait_for_function(
            f"() => {{ const m = /([0-9,]+) timeline rows this session/.exec(document.body.innerText);"
            f" return m && parseInt(m[1].replace(/,/g, '')) > {rows_before}; }}",
            timeout=60_000,
        )
        assert "ms a frame" in page.get_by_text("frames/s ·").inner_text()
        settle(page)
        page.screenshot(path=str(SCREENSHOTS / "live-where-it-looks.png"), full_page=True)

        webrtc.get_by_role("button", name="Stop").click()
        webrtc.get_by_role("button", name="Start").wait_for(timeout=30_000)
        # Stopping reruns the page; click once that rerun has drawn the button with the final CSV.
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)
        settle(page)
        # ... and after Stop it keeps no stale numbers.
        # (the panel's fragment may be one run behind the stop: give it a few of its 1-s polls)
        deadline = time.time() + 15
        while page.get_by_text("frames/s ·").count() and time.time() < deadline:
            page.wait_for_timeout(500)
        assert page.get_by_text("frames/s ·").count() == 0 and page.get_by_text("No frame yet").count() == 1
        # The bars of the last frame go too (elements of the last poll are dropped when the rerun
        # that follows Stop ends, which may be a moment after its status widget went).
        page.wait_for_function("() => !document.body.innerText.includes('Largest face:')", timeout=30_000)
        timeline = tmp_path / "timeline.csv"
        download_csv(page, "Download timeline CSV", timeline)
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        browser.close()

    assert green >= 500, f"no labelled box in the returned video ({green} green pixels)"
    assert configs and all(c.get("iceServers") == [] for c in configs), configs
    import pandas as pd

    rows = pd.read_csv(timeline)
    assert len(rows) > 0 and list(rows.columns[:4]) == ["time", "face", "cut", "label"], caption
    # The server survived: TensorFlow (Predict) and then streamlit-webrtc in one process.
    assert urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).read() == b"ok"


def test_live_page_says_what_to_do_when_the_camera_is_refused(server, playwright):
    url, _base, _pid = server
    # A camera exists, but the permission prompt is answered "no" (what a user's Block does).
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS + ["--use-fake-device-for-media-stream", "--deny-permission-prompts"],
    )
    try:
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.goto(f"{url}/live")
        page.get_by_text("Camera not working?").wait_for(timeout=120_000)
        webrtc = page.frame_locator('iframe[title*="webrtc"]')
        webrtc.get_by_role("button", name="Start").click()
        webrtc.get_by_text("NotAllowedError").wait_for(timeout=60_000)  # the browser's error, shown by the component
        page.screenshot(path=str(SCREENSHOTS / "live-camera-refused.png"), full_page=True)
        # ... and the page's help (folded: the component does not report the error to the
        # server) tells the user what that error means and what to do.
        page.get_by_text("Camera not working?").click()
        guidance = page.get_by_text("the camera was refused; allow it for this site")
        assert guidance.is_visible() and "NotAllowedError" in guidance.inner_text()
        assert page.locator('[data-testid="stException"]').count() == 0
    finally:
        browser.close()


def test_train_relaunch_after_a_finished_run_and_promote_with_confirmation(server, browser):
    """In the real server (the training process's parent): launch, let it finish, launch again;
    then promote over an existing model only through the confirmation, the old one kept."""
    url, base, _pid = server
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/train")
    page.get_by_text("Estimated length").wait_for(timeout=120_000)

    def launch_and_wait(expected_runs: int) -> None:
        for label, value in (("Epochs", "1"), ("Batch size", "8"), ("Images per split (0 = all)", "14")):
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Enter")
            page.wait_for_timeout(700)
        page.get_by_role("button", name="Launch").click()
        page.get_by_text("Launched:").wait_for(timeout=60_000)
        assert page.get_by_text("already in progress").count() == 0
        deadline = time.time() + 300
        while time.time() < deadline:
            runs = sorted((base / "runs").glob("*-cnn*"))
            statuses = [
                json.loads((r / "progress.json").read_text()).get("status")
                for r in runs
                if (r / "progress.json").is_file()
            ]
            if len(runs) == expected_runs and statuses.count("finished") == expected_runs:
                break
            time.sleep(1)
        else:
            pytest.fail(f"runs did not finish: {statuses}")
        # The page sees the end by itself (no reload): the watched run and the runs table say finished.
        page.get_by_text("status finished").wait_for(timeout=30_000)

    launch_and_wait(1)
    launch_and_wait(2)
    settle(page)
    for width in (1400, 800):
        page.set_viewport_size({"width": width, "height": 2600})
        page.wait_for_timeout(800)
        page.screenshot(path=str(SCREENSHOTS / f"train-{width}.png"), full_page=True)

    name = page.get_by_label("Promote as trained/")
    assert name.input_value().startswith("cnn-")  # trained/cnn exists: the default name is new
    name.fill("cnn")
    name.press("Enter")
    warning = page.get_by_text("trained/cnn exists")
    warning.wait_for(timeout=30_000)
    # The run was measured on 14 images, the shipped model on more: said, and not compared.
    assert "do not compare" in warning.inner_text() and "on 14 PublicTest images" in warning.inner_text()
    confirm_then_click(page, "Replace trained/cnn", page.get_by_role("button", name="Promote", exact=True))
    page.get_by_text("Promoted to").wait_for(timeout=120_000)
    kept = list((base / "trained" / ".versions" / "cnn").iterdir())
    assert len(kept) == 1 and (kept[0] / "model.keras").is_file()
    assert page.locator('[data-testid="stException"]').count() == 0
    # Once promoted, the form says so: no stale warning, no ticked box, no second Promote.
    settle(page)
    assert page.get_by_text("This run is trained/cnn now").count() == 1
    assert page.get_by_text("trained/cnn exists").count() == 0 and page.get_by_text("Replace trained/cnn").count() == 0
    assert page.get_by_role("button", name="Promote", exact=True).is_disabled()
    # The kept version is listed with its accuracy, and restored only once confirmed.
    version = page.get_by_role("combobox", name="Version (kept when it was replaced)")
    version.wait_for(timeout=30_000)
    assert version.input_value().startswith(f"{kept[0].name}: ") and " PublicTest images" in version.input_value()
    confirm_then_click(page, "put this version back", page.get_by_role("button", name="Restore", exact=True))
    page.get_by_text("Restored trained/cnn from").wait_for(timeout=60_000)
    assert len(list((base / "trained" / ".versions" / "cnn").iterdir())) == 1  # the promoted one kept in turn
    page.close()
