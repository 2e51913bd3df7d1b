"""The HTTP service: FastAPI over the `Recognizer` facade, nothing else.

    GET  /health            200 once the default model is loaded (503 before)
    GET  /v1/models         the trained models: name, classes, reported accuracy
    POST /v1/analyze        images as multipart `files`, or JSON {"images": [base64, ...]}
    POST /v1/analyze/video  one video as multipart `file`: per-frame rows and a per-face summary

It takes image and video bytes only: no server-side paths, no URLs to fetch. Options (model,
detector, tta, min_face) come as form fields, JSON keys or query parameters. Every refusal is a
JSON body {"error": "one line"} with a 4xx status, never a traceback; a bad file in a batch fails
that file only. Recognizers are built once per option set and shared by all requests (thread-safe).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import tempfile
import threading
from collections import OrderedDict
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from fer_core.errors import FerError
from fer_core.inference.detectors import DEFAULT_DETECTOR, DETECTORS
from fer_core.inference.tta import TTA_MODES
from fer_core.serve.limits import BodyTooLarge, Limits
from fer_core.serve.schemas import ERRORS, Analysis, Health, ImagesJSON, Models, VideoAnalysis, request_body

API_KEY_ENV = "FER_API_KEY"
# The key's two forms, as security schemes: /docs shows an Authorize button for either.
KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="the FER_API_KEY the service was started with"
)
# The option fields of a multipart request as /docs shows them: each with the value it takes when
# left alone, so "Try it out" sends what a bare request would.
OPTION_FIELDS = {
    "model": {
        "type": "string",
        "default": "",
        "description": "a trained model's name (GET /v1/models); empty: the default",
    },
    "detector": {"type": "string", "enum": list(DETECTORS), "default": DEFAULT_DETECTOR},
    "tta": {"type": "string", "enum": list(TTA_MODES), "default": "none"},
    "min_face": {"type": "integer", "default": 30, "description": "the smallest face side, in pixels"},
}
BEARER = HTTPBearer(auto_error=False, description="the same key as `Authorization: Bearer KEY`")


class HTTPRefusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def create_app(
    model: str | None = None,
    detector: str | None = None,
    tta: str = "none",
    limits: Limits | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """The service for a default model (None: fer_core.catalog's default), detector and TTA mode.
    `api_key` (default: the FER_API_KEY environment variable) makes /v1/* ask for it."""
    from fer_core.recognizer import Recognizer

    limits = limits or Limits()
    api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
    default_options = {"model": model, "detector": detector, "tta": tta, "min_face": 30}
    # Least recently used first out: each holds its models in memory.
    recognizers: OrderedDict[tuple, Recognizer] = OrderedDict()
    lock = threading.Lock()
    state = {"ready": False, "error": None}

    def recognizer_for(options: dict) -> Recognizer:
        key = tuple(sorted((k, str(v)) for k, v in options.items()))
        with lock:
            if key in recognizers:
                recognizers.move_to_end(key)
                return recognizers[key]
            if len(recognizers) >= limits.max_recognizers:
                recognizers.pop(next(k for k in recognizers if k != default_key))
            recognizers[key] = Recognizer(**options)
            return recognizers[key]

    default_key = tuple(sorted((k, str(v)) for k, v in default_options.items()))

    def load_default() -> None:
        try:
            recognizer_for(default_options).load()
            state["ready"] = True
        except Exception as exc:  # noqa: BLE001 - said by /health, the server stays up
            state["error"] = " ".join(str(exc).split())[:300]

    @asynccontextmanager
    async def lifespan(_app):
        # Loaded on a thread: /health answers 503 meanwhile instead of the port staying closed.
        threading.Thread(target=load_default, daemon=True).start()
        yield

    from fastapi_offline import FastAPIOffline

    # /docs and /redoc from the scripts fastapi-offline ships, not a CDN: the service works offline.
    app = FastAPIOffline(
        title="FER Studio",
        summary="Facial expressions of the faces in images and videos",
        version=_version(),
        lifespan=lifespan,
    )

    from fer_core.serve.limits import BodyLimit

    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    @app.exception_handler(HTTPRefusal)
    async def refused(_request, exc: HTTPRefusal):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        headers = {"Retry-After": "1"} if exc.status == 503 else headers
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    @app.exception_handler(BodyTooLarge)
    async def too_large(_request, _exc: BodyTooLarge):  # a chunked body passing the limit as it arrives
        return JSONResponse(
            {"error": f"the request body is over the limit of {limits.max_body_bytes / 2**20:.0f} MiB"},
            status_code=413,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):  # unknown routes, wrong methods
        return JSONResponse({"error": " ".join(str(exc.detail).split())}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return JSONResponse({"error": f"{where or 'request'}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(FerError)
    async def user_error(_request, exc: FerError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def internal_error(_request, exc: Exception):
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    def require_key(
        key: Annotated[str | None, Security(KEY_HEADER)],
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
    ) -> None:
        """The /v1 endpoints' key, when the service has one: X-API-Key or Authorization: Bearer."""
        if not api_key:
            return
        given = key or (bearer.credentials if bearer is not None else None)
        if not given or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPRefusal(401, "missing or wrong API key (X-API-Key or Authorization: Bearer)")

    in_flight = {"count": 0}  # analyses admitted and not yet answered (the event loop's own counter)

    @asynccontextmanager
    async def admitted():
        """A place in the bounded queue in front of the detector, or 503 with Retry-After."""
        if in_flight["count"] >= limits.max_queue:
            raise HTTPRefusal(503, f"busy: {in_flight['count']} analyses in progress or waiting; retry shortly")
        in_flight["count"] += 1
        try:
            yield
        finally:
            in_flight["count"] -= 1

    keyed = {"dependencies": [Depends(require_key)], "responses": ERRORS}

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    def health():
        """200 once the default model is loaded and the service answers; 503 before or if it failed."""
        if state["ready"]:
            recognizer = recognizer_for(default_options)
            return {"status": "ok", "model": recognizer.model_name, "classes": list(recognizer.classes)}
        status = "failed: " + state["error"] if state["error"] else "loading"
        return JSONResponse({"status": status}, status_code=503)

    @app.get("/v1/models", response_model=Models, **keyed)
    def models():
        """Every trained model: its name, classes, reported accuracy with the dataset and split it
        was measured on (accuracies of different datasets do not compare), and which one answers
        when a request names none (`default`)."""
        from fer_core.artifacts import saved_models
        from fer_core.catalog import default_model, model_dataset
        from fer_core.recognizer import model_classes

        refs = saved_models()
        serving = default_options["model"] or getattr(default_model(refs), "name", None)
        return {
            "default": serving,
            "models": [
                {
                    "name": ref.name,
                    "classes": list(model_classes(ref)),
                    "accuracy": ref.metrics.get("accuracy"),
                    "split": ref.metrics.get("split"),
                    "dataset": model_dataset(ref).name,
                    "macro_f1": ref.metrics.get("macro_f1"),
                    "family": ref.config.get("model"),
                    "default": ref.name == serving,
                }
                for ref in refs
            ],
        }

    @app.post(
        "/v1/analyze",
        response_model=Analysis,
        openapi_extra=request_body(
            {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}, **OPTION_FIELDS},
            required="files",
            json_schema=ImagesJSON.model_json_schema(),
        ),
        **keyed,
    )
    async def analyze(request: Request):
        """Faces of one or many images: multipart `files` (and option fields), or JSON
        {"images": [base64...], "names": [...], "model", "detector", "tta", "min_face"}."""
        async with admitted():
            names, blobs, options = await _read_images(request, limits)
            recognizer = await run_in_threadpool(recognizer_for, {**default_options, **options})
            results = await run_in_threadpool(recognizer.results, blobs, names)
        body = {
            "model": recognizer.model_name,
            "detector": recognizer.detector_name,
            "tta": recognizer.tta,
            "classes": list(recognizer.classes),
            "results": [r.to_dict() for r in results],
        }
        if all(r.error for r in results):  # nothing classified: the request as a whole failed
            return JSONResponse({"error": results[0].error, **body}, status_code=422)
        return body

    @app.post(
        "/v1/analyze/video",
        response_model=VideoAnalysis,
        openapi_extra=request_body(
            {
                "file": {"type": "string", "format": "binary"},
                **{name: OPTION_FIELDS[name] for name in ("model", "detector", "min_face")},
                "every": {"type": "integer", "default": 5, "description": "analyse every N-th frame"},
            },
            required="file",
        ),
        **keyed,
    )
    async def analyze_video(request: Request):
        """One video as multipart `file` (option fields: model, detector, min_face, every):
        a row per face per analysed frame and a summary per face."""
        async with admitted():
            return await _analyze_video(request)

    async def _analyze_video(request: Request) -> dict:
        form = await _form(request, limits)
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            raise HTTPRefusal(400, "send the video as a multipart field named 'file'")
        options = _options(form)
        every = _int_option(form.get("every", "5"), "every", 1, 1000)
        data = await upload.read()
        if not data:
            raise HTTPRefusal(400, f"{upload.filename or 'video'}: the file is empty (0 bytes)")
        recognizer = await run_in_threadpool(recognizer_for, {**default_options, **options})

        def work():
            suffix = Path(upload.filename or "video.mp4").suffix[:8] or ".mp4"
            with tempfile.TemporaryDirectory(prefix="fer-video-") as folder:
                path = Path(folder) / f"upload{suffix}"
                path.write_bytes(data)
                try:
                    return recognizer.video(
                        path, every=every, max_minutes=limits.max_video_minutes, max_bytes=limits.max_video_bytes
                    )
                except FerError as exc:  # name the upload, not the temporary file
                    raise FerError(str(exc).replace(path.name, upload.filename or "video")) from None

        result = await run_in_threadpool(work)
        summary, rows = result.summary(), result.frame()
        return {
            "file": upload.filename,
            "model": recognizer.model_name,
            "detector": recognizer.detector_name,
            "classes": list(recognizer.classes),
            "every": every,
            "frames_read": result.frames_read,
            "frames_analysed": result.frames_analysed,
            "summary": json.loads(summary.to_json(orient="records")),
            "rows": json.loads(rows.to_json(orient="records")),
        }

    return app


async def _form(request: Request, limits: Limits):
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPRefusal(415, "send multipart/form-data")
    try:
        # One over the limit gets through to be counted and named (_check_count); more are refused here.
        return await request.form(max_files=limits.max_files + 1, max_fields=64)
    except (HTTPRefusal, BodyTooLarge):
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed body is the client's error
        message = " ".join(str(getattr(exc, "detail", exc)).split())[:200]
        if "too many files" in message.lower():
            raise HTTPRefusal(413, f"over {limits.max_files} images in one request, the limit") from None
        raise HTTPRefusal(400, f"the multipart body cannot be read ({message})") from None


async def _read_images(request: Request, limits: Limits) -> tuple[list[str], list[bytes], dict]:
    """(names, bytes, options) of the images a request sends, as multipart or as JSON."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:  # off the event loop: a 64 MiB body takes a while to parse
            payload = await run_in_threadpool(json.loads, await request.body())
        except (ValueError, UnicodeDecodeError):
            raise HTTPRefusal(400, "the body is not valid JSON") from None
        if not isinstance(payload, dict) or "images" not in payload:
            raise HTTPRefusal(400, 'send {"images": ["<base64>", ...]}')
        if not isinstance(payload["images"], list):
            raise HTTPRefusal(422, 'images: a list of base64 strings, as {"images": ["<base64>", ...]}')
        encoded = payload["images"]
        names = payload.get("names") or [f"image {k + 1}" for k in range(len(encoded))]
        if not isinstance(names, list) or len(names) != len(encoded):
            raise HTTPRefusal(400, '"names" must list one name per image')
        _check_count(len(encoded), limits)
        blobs = [_base64(item, str(name)) for item, name in zip(encoded, names)]
        return [str(n) for n in names], blobs, _options(payload)
    form = await _form(request, limits)
    uploads = [item for key, item in form.multi_items() if key == "files" and hasattr(item, "read")]
    _check_count(len(uploads), limits)
    names = [upload.filename or f"image {k + 1}" for k, upload in enumerate(uploads)]
    blobs = [await upload.read() for upload in uploads]
    return names, blobs, _options(form)


def _check_count(count: int, limits: Limits) -> None:
    if count == 0:
        raise HTTPRefusal(400, "no images: send multipart 'files' or JSON {\"images\": [base64, ...]}")
    if count > limits.max_files:
        raise HTTPRefusal(413, f"{count} images in one request, over the limit of {limits.max_files}")


def _base64(item, name: str) -> bytes:
    if not isinstance(item, str):
        raise HTTPRefusal(400, f"{name}: an image must be a base64 string")
    if item.startswith("data:") and "," in item:  # a data URL as browsers make them
        item = item.split(",", 1)[1]
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPRefusal(400, f"{name}: not valid base64") from None


def _options(source) -> dict:
    """The recognizer options a request names (form fields or JSON keys); the rest stay default."""
    from fer_core.inference.detectors import DETECTORS
    from fer_core.inference.tta import TTA_MODES

    options = {}
    for name in ("model", "detector", "tta"):
        if not isinstance(source.get(name), (str, type(None))):
            raise HTTPRefusal(422, f"{name}: a string. Received: {type(source.get(name)).__name__}")
    model = source.get("model")
    if model not in (None, ""):
        if not isinstance(model, str) or "/" in model or "\\" in model or model.startswith("."):
            raise HTTPRefusal(400, "model: name a trained model (GET /v1/models); paths are not accepted")
        from fer_core.artifacts import list_trained

        names = [part.strip() for part in model.split(",") if part.strip()]
        unknown = [name for name in names if name not in list_trained()]
        if unknown or not names:
            raise HTTPRefusal(404, f"no model {', '.join(unknown) or model!r}; models: {', '.join(list_trained())}")
        options["model"] = ",".join(names)
    detector = source.get("detector")
    if detector not in (None, ""):
        if detector not in DETECTORS:
            raise HTTPRefusal(400, f"unknown detector {detector!r}; choose one of {', '.join(DETECTORS)}")
        options["detector"] = detector
    tta = source.get("tta")
    if tta not in (None, ""):
        if tta not in TTA_MODES:
            raise HTTPRefusal(400, f"unknown TTA mode {tta!r}; choose one of {', '.join(TTA_MODES)}")
        options["tta"] = tta
    min_face = source.get("min_face")
    if min_face not in (None, ""):
        options["min_face"] = _int_option(min_face, "min_face", 8, 4096)
    return options


def _int_option(value, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HTTPRefusal(400, f"{name} must be a whole number. Received: {value!r}") from None
    if not low <= number <= high:
        raise HTTPRefusal(400, f"{name} must be {low}-{high}. Received: {number}")
    return number


def _version() -> str:
    from fer_core import __version__

    return __version__


def app_from_environment() -> FastAPI:
    """The app `fer-core serve` runs (uvicorn's factory, once per worker process): its options
    travel in FER_SERVE_* variables, so every worker builds the same service."""
    return create_app(
        model=os.environ.get("FER_SERVE_MODEL") or None,
        detector=os.environ.get("FER_SERVE_DETECTOR") or None,
        tta=os.environ.get("FER_SERVE_TTA") or "none",
        limits=Limits.from_environment(),
    )
