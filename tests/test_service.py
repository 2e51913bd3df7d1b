"""The HTTP service through a real `fer-core serve` (uvicorn) process and real HTTP: health,
models, analyze (multipart, batch, base64), video, every hostile file, the limits (413), the API
key (401), concurrent requests answering as one at a time, and the same faces as the facade."""

from __future__ import annotations

import base64
import shutil
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from fer_core import CLASS_NAMES
from fer_core.paths import PROJECT_ROOT
from fer_core.recognizer import Recognizer
from helpers import IMAGE_CASES, free_port, moving_faces_video

pytestmark = pytest.mark.slow

TRAINED = PROJECT_ROOT / "trained"  # the shipped models, read only
MODEL = "attention_cnn"


def start_server(tmp_path_factory, *extra, **env) -> tuple[subprocess.Popen, str]:
    port = free_port()
    environment = {
        **os.environ,
        "FER_TRAINED_DIR": str(TRAINED),
        "FER_CACHE_DIR": str(tmp_path_factory.mktemp("serve_cache")),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **env,
    }
    environment.pop("FER_API_KEY", None) if "FER_API_KEY" not in env else None
    process = subprocess.Popen(
        [sys.executable, "-m", "fer_core", "serve", "--port", str(port), "--model", MODEL, *extra],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    process.kill()
    raise AssertionError("the server did not become healthy in 120 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process, url = start_server(tmp_path_factory, FER_SERVE_MAX_BODY_MB="2")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    process, url = start_server(tmp_path_factory, FER_API_KEY="s3cret-key")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    rgb = skimage.data.astronaut()
    Image.fromarray(rgb).save(folder / "astronaut.jpg", quality=95)
    Image.fromarray(np.concatenate([rgb, rgb[:, ::-1]], axis=1)).save(folder / "group.png")
    return folder


def analyze(url, *files, **fields):
    parts = [("files", (name, data)) for name, data in files]
    return requests.post(f"{url}/v1/analyze", files=parts, data=fields, timeout=120)


def test_health_and_models(server):
    health = requests.get(f"{server}/health", timeout=10).json()
    assert health["status"] == "ok" and health["model"] == MODEL and len(health["classes"]) == 7
    models = {m["name"]: m for m in requests.get(f"{server}/v1/models", timeout=10).json()["models"]}
    assert MODEL in models and models[MODEL]["split"] == "PublicTest"
    assert 0.5 < models[MODEL]["accuracy"] < 1 and models[MODEL]["classes"][3] == "happy"
    assert requests.get(f"{server}/docs", timeout=10).status_code == 200
    assert "/v1/analyze" in requests.get(f"{server}/openapi.json", timeout=10).json()["paths"]


def test_one_photo_gives_the_facades_faces_and_probabilities(server, photos):
    data = (photos / "group.png").read_bytes()
    response = analyze(server, ("group.png", data))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["detector"], body["tta"]) == (MODEL, "retinaface", "none")
    [result] = body["results"]
    expected = Recognizer(TRAINED / MODEL).analyze(data)
    assert result["file"] == "group.png" and result["error"] is None and len(result["faces"]) == 2
    for got, want in zip(result["faces"], expected):
        assert got["box"] == list(want.box) and got["label"] == want.label
        assert np.allclose(list(got["probabilities"].values()), list(want.probabilities.values()), atol=1e-5)


def test_a_batch_with_every_hostile_file_fails_those_files_only(server, photos):
    good = (photos / "astronaut.jpg").read_bytes()
    hostile = [(name, data) for name, (data, expected) in IMAGE_CASES.items() if isinstance(expected, str)]
    response = analyze(server, ("first.jpg", good), *hostile, ("last.jpg", good))
    assert response.status_code == 200, response.text
    results = {r["file"]: r for r in response.json()["results"]}
    assert len(results["first.jpg"]["faces"]) == 1 and len(results["last.jpg"]["faces"]) == 1
    for name, (_data, expected) in IMAGE_CASES.items():
        if isinstance(expected, str):
            error = results[name]["error"]
            assert error.startswith(f"{name}:") and "\n" not in error and "Traceback" not in error
            assert any(part in error for part in expected.split("|")), error


def test_base64_json_and_options(server, photos):
    encoded = base64.b64encode((photos / "astronaut.jpg").read_bytes()).decode()
    body = {"images": [encoded, "data:image/jpeg;base64," + encoded], "names": ["a", "b"], "tta": "flip"}
    response = requests.post(f"{server}/v1/analyze/base64", json=body, timeout=120)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["tta"] == "flip" and [r["file"] for r in data["results"]] == ["a", "b"]
    assert data["results"][0]["faces"] == data["results"][1]["faces"] and data["results"][0]["faces"]


@pytest.mark.parametrize(
    "path, request_kwargs, status, message",
    [
        ("base64", {"json": {"images": ["%%%"]}}, 400, "not valid base64"),
        ("base64", {"json": {"images": "x"}}, 422, "images: Input should be a valid list"),
        ("base64", {"json": {"images": ["aGk="], "names": []}}, 422, "names: one name per image"),
        ("base64", {"data": b"{not json", "headers": {"content-type": "application/json"}}, 422, "not valid JSON"),
        ("", {"data": b"plain", "headers": {"content-type": "text/plain"}}, 415, "multipart"),
        ("", {"json": {"images": ["aGk="]}}, 415, "POST /v1/analyze/base64"),
        ("", {"files": [("files", ("a.jpg", b"x"))], "data": {"model": "nope"}}, 404, "no model 'nope'"),
        ("", {"files": [("files", ("a.jpg", b"x"))], "data": {"model": "/etc/passwd"}}, 400, "paths are not accepted"),
        ("", {"files": [("files", ("a.jpg", b"x"))], "data": {"detector": "nope"}}, 422, "detector: unknown detector"),
        ("", {"files": [("files", ("a.jpg", b"x"))], "data": {"tta": "twice"}}, 422, "tta: unknown TTA mode"),
        ("", {"files": [("files", ("a.jpg", b"x"))], "data": {"min_face": "big"}}, 422, "min_face: Input should be"),
        ("", {"files": [("files", ("a.jpg", b"x"))], "data": {"min_face": "3"}}, 422, "min_face must be"),
        ("", {"files": [("other", ("a.jpg", b"x"))]}, 422, "files: Field required"),
        ("", {"files": [("files", ("a.jpg", b"not an image"))]}, 422, "a.jpg: not an image"),
        ("video", {"files": [("file", ("a.mp4", b"x"))], "data": {"every": "0"}}, 422, "every must be"),
    ],
)
def test_bad_requests_get_a_json_error_with_a_4xx_code(server, path, request_kwargs, status, message):
    """Types and fer_core's option rules checked by FastAPI (422); the rest by the service."""
    response = requests.post(f"{server}/v1/analyze/{path}".rstrip("/"), timeout=60, **request_kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"] and "Traceback" not in response.text
    assert "\n" not in response.json()["error"]


def test_limits_answer_413(server):
    big = os.urandom(3 * 2**20)  # over this server's 2-MiB body limit
    response = analyze(server, ("big.jpg", big))
    assert response.status_code == 413 and "over the limit of 2 MiB" in response.json()["error"]

    def chunks():  # no Content-Length: the guard counts the bytes as they arrive
        for _ in range(6):
            yield os.urandom(2**19)

    response = requests.post(
        f"{server}/v1/analyze/base64", data=chunks(), headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 413
    response = analyze(server, *[(f"{k}.jpg", b"x") for k in range(33)])
    assert response.status_code == 413 and "33 images" in response.json()["error"]
    response = analyze(server, *[(f"{k}.jpg", b"x") for k in range(40)])
    assert response.status_code == 413 and "40 images in one request, over the limit of 32" in response.json()["error"]
    boundary = "fer-test-boundary"

    def multipart_chunks():  # a chunked multipart upload passing the limit mid-body
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.jpg"\r\n\r\n'.encode()
        for _ in range(6):
            yield os.urandom(2**19)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = requests.post(
        f"{server}/v1/analyze",
        data=multipart_chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )
    assert response.status_code == 413 and "over the limit of 2 MiB" in response.json()["error"]
    wrong = requests.post(f"{server}/v1/analyze/base64", json={"images": ["aGk="], "detector": []}, timeout=10)
    assert wrong.status_code == 422 and wrong.json()["error"] == "detector: Input should be a valid string"
    assert requests.get(f"{server}/health", timeout=10).status_code == 200  # and it serves on


def test_the_api_key_is_asked_for_when_set(keyed_server, photos):
    data = ("a.jpg", (photos / "astronaut.jpg").read_bytes())
    assert requests.get(f"{keyed_server}/health", timeout=10).status_code == 200  # open: for load balancers
    assert requests.get(f"{keyed_server}/v1/models", timeout=10).status_code == 401
    assert analyze(keyed_server, data).status_code == 401
    wrong = requests.get(f"{keyed_server}/v1/models", headers={"X-API-Key": "s3cret-kez"}, timeout=10)
    assert wrong.status_code == 401 and "API key" in wrong.json()["error"]
    by_header = requests.get(f"{keyed_server}/v1/models", headers={"X-API-Key": "s3cret-key"}, timeout=10)
    by_bearer = requests.post(
        f"{keyed_server}/v1/analyze",
        files=[("files", data)],
        headers={"Authorization": "Bearer s3cret-key"},
        timeout=60,
    )
    assert by_header.status_code == 200 and by_bearer.status_code == 200


def test_concurrent_requests_answer_as_one_at_a_time(server, photos):
    files = [
        ("astronaut.jpg", (photos / "astronaut.jpg").read_bytes()),
        ("group.png", (photos / "group.png").read_bytes()),
    ]
    alone = [analyze(server, item).json()["results"] for item in files]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda k: analyze(server, files[k % 2]).json()["results"], range(16)))
    for k, results in enumerate(together):
        assert results == alone[k % 2]


def test_a_video_gives_rows_and_a_summary_and_a_broken_one_a_line(server, tmp_path):
    clip = moving_faces_video(tmp_path / "two.mp4", frames=12)
    response = requests.post(
        f"{server}/v1/analyze/video",
        files={"file": ("two.mp4", clip.read_bytes())},
        data={"every": "3", "detector": "haar"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["frames_read"] == 12 and body["frames_analysed"] == 4 and body["detector"] == "haar"
    assert {row["face"] for row in body["rows"]} == {1, 2} and {s["face"] for s in body["summary"]} == {1, 2}
    assert set(body["classes"]) <= set(body["rows"][0])
    broken = requests.post(
        f"{server}/v1/analyze/video", files={"file": ("clip.mp4", clip.read_bytes()[:2000])}, timeout=60
    )
    assert broken.status_code == 400 and broken.json()["error"].startswith("clip.mp4")
    empty = requests.post(f"{server}/v1/analyze/video", files={"file": ("e.mp4", b"")}, timeout=60)
    assert empty.status_code == 400 and "empty" in empty.json()["error"]


def test_serve_refuses_bad_flags_in_one_line():
    from helpers import assert_one_line_error, run_cli

    assert_one_line_error(*run_cli("serve", "--port", "70000")[::2], "--port must be 1-65535")
    code, _out, err = run_cli("serve", "--model", "no_such_model")
    assert_one_line_error(code, err, "no model 'no_such_model'")


def test_docs_work_offline_authorize_and_analyze_an_upload_in_chromium(keyed_server, photos, browser):
    """/docs in Chromium with every request off this server refused: Swagger UI loads from the
    service's own files, takes the key in Authorize, and analyses an uploaded photo."""
    from chromium import VIEWPORT

    elsewhere = []

    def only_the_service(route):
        if route.request.url.startswith(keyed_server):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page = browser.new_page(viewport=VIEWPORT)
    page.route("**/*", only_the_service)
    page.goto(f"{keyed_server}/docs")
    page.get_by_text("/v1/analyze", exact=True).first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".modal-ux input").first.fill("s3cret-key")
    page.locator(".modal-ux button.authorize").first.click()
    page.locator(".modal-ux button.btn-done").first.click()
    page.get_by_text("/v1/analyze", exact=True).first.click()
    page.get_by_role("button", name="Try it out").first.click()
    page.locator(".opblock-body input[type=file]").first.set_input_files(str(photos / "astronaut.jpg"))
    page.get_by_role("button", name="Execute").first.click()
    status = page.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=120_000)
    answer = page.locator(".live-responses-table tbody .microlight").first.inner_text()
    assert status.inner_text().strip().startswith("200"), answer
    assert '"label"' in answer and '"probabilities"' in answer
    page.close()
    assert elsewhere == []


def test_unknown_routes_and_wrong_types_answer_one_json_line(server):
    missing = requests.get(f"{server}/v2/nothing", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    wrong = requests.post(f"{server}/v1/analyze/base64", json={"images": 3}, timeout=10)
    assert wrong.status_code == 422 and list(wrong.json()) == ["error"]
    schema = requests.get(f"{server}/openapi.json", timeout=10).json()
    assert {"APIKeyHeader", "HTTPBearer"} <= set(schema["components"]["securitySchemes"])
    assert {"Analysis", "Face", "Models", "ErrorAnswer"} <= set(schema["components"]["schemas"])


def test_a_full_queue_answers_503_with_retry_after(tmp_path_factory, photos):
    """With room for one analysis, a second arriving while a video is analysed is told to retry."""
    process, url = start_server(tmp_path_factory, FER_SERVE_MAX_QUEUE="1")
    try:
        video = moving_faces_video(tmp_path_factory.mktemp("queue") / "clip.mp4", frames=90)
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(
                requests.post,
                f"{url}/v1/analyze/video",
                files={"file": ("clip.mp4", video.read_bytes())},
                data={"every": "1"},
                timeout=120,
            )
            time.sleep(1.0)
            busy = analyze(url, ("a.jpg", (photos / "astronaut.jpg").read_bytes()))
            assert slow.result().status_code == 200
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        assert "retry shortly" in busy.json()["error"]
        assert analyze(url, ("a.jpg", (photos / "astronaut.jpg").read_bytes())).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_bare_model_file_is_served_as_fer2013_and_says_so(tmp_path_factory, tiny_run, tmp_path):
    """`fer-core serve --model FILE.keras` with no records beside the file: FER2013's classes, said
    in one warning line when the service starts."""
    bare = tmp_path / "bare.keras"
    shutil.copy(tiny_run / "model.keras", bare)
    process, url = start_server(tmp_path_factory, "--model", str(bare))
    try:
        assert requests.get(f"{url}/health", timeout=10).json()["classes"] == list(CLASS_NAMES)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert (
        "fer-core: warning: bare.keras has no records naming its classes: its 7 outputs are read as FER2013's" in output
    )
