"""The HTTP service: FastAPI over the `Recognizer` facade, nothing else.

    GET  /health               200 once the default model is loaded (503 before)
    GET  /v1/models            the trained models: name, classes, reported accuracy
    POST /v1/analyze           images as multipart `files` (options as form fields)
    POST /v1/analyze/base64    images as JSON {"images": [base64, ...], ...options}
    POST /v1/analyze/video     one video as multipart `file`: per-frame rows and a per-face summary

It takes image and video bytes only: no server-side paths, no URLs to fetch. Every refusal is a
JSON body {"error": "one line"} with a 4xx status, never a traceback; a bad file in a batch fails
that file only. The endpoints live in `routes`, what they depend on in `dependencies`.
"""

from __future__ import annotations

import os
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fer_core.artifacts import UnknownModel
from fer_core.errors import FerError
from fer_core.inference.options import DEFAULT_MIN_FACE
from fer_core.serve.dependencies import API_KEY_ENV, HTTPRefusal, Recognizers, ServiceState
from fer_core.serve.limits import BodyLimit, BodyTooLarge, Limits
from fer_core.serve.routes import health_router, v1


def create_app(
    model: str | None = None,
    detector: str | None = None,
    tta: str = "none",
    limits: Limits | None = None,
    api_key: str | None = None,
) -> FastAPI:
    """The service for a default model (None: fer_core.catalog's default), detector and TTA mode.
    `api_key` (default: the FER_API_KEY environment variable) makes /v1/* ask for it."""
    limits = limits or Limits()
    defaults = {"model": model, "detector": detector, "tta": tta, "min_face": DEFAULT_MIN_FACE}
    state = ServiceState(
        limits=limits,
        api_key=api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None,
        recognizers=Recognizers(defaults, limits.max_recognizers),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Loaded on a thread: /health answers 503 meanwhile instead of the port staying closed.
        state.loading = threading.Thread(target=state.load_default, daemon=True)
        state.loading.start()
        yield

    from fastapi_offline import FastAPIOffline

    # /docs and /redoc from the scripts fastapi-offline ships, not a CDN: the service works offline.
    app = FastAPIOffline(
        title="FER Studio",
        summary="Facial expressions of the faces in images and videos",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.service = state
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    for exception, handler in HANDLERS.items():
        app.add_exception_handler(exception, handler)
    app.include_router(health_router)
    app.include_router(v1)
    return app


async def _refused(_request, exc: HTTPRefusal):
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    headers = {"Retry-After": "1"} if exc.status == 503 else headers
    return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)


async def _too_large(request, _exc: BodyTooLarge):  # a chunked body passing the limit as it arrives
    limit = request.app.state.service.limits.max_body_bytes
    return JSONResponse({"error": f"the request body is over the limit of {limit / 2**20:.0f} MiB"}, status_code=413)


async def _http_error(_request, exc: StarletteHTTPException):  # unknown routes, wrong methods, unreadable bodies
    return JSONResponse({"error": " ".join(str(exc.detail).split())}, status_code=exc.status_code)


async def _invalid(_request, exc: RequestValidationError):
    """FastAPI's validation (types, and fer_core's option rules) as one line: the first error."""
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return JSONResponse({"error": "the body is not valid JSON"}, status_code=422)
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return JSONResponse({"error": f"{where or 'request'}: {message}"}, status_code=422)


async def _unknown_model(_request, exc: UnknownModel):
    return JSONResponse({"error": str(exc)}, status_code=404)


async def _user_error(_request, exc: FerError):
    return JSONResponse({"error": str(exc)}, status_code=400)


async def _internal_error(_request, exc: Exception):
    return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)


HANDLERS = {
    HTTPRefusal: _refused,
    BodyTooLarge: _too_large,
    StarletteHTTPException: _http_error,
    RequestValidationError: _invalid,
    UnknownModel: _unknown_model,
    FerError: _user_error,
    Exception: _internal_error,
}


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
