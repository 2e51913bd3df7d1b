"""The service's endpoints, as FastAPI routers: FastAPI reads and validates each request's
files, form fields and JSON body (422 with one line), the dependencies come from `app.state`,
and every answer is one of `schemas`' models."""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from fer_core.errors import FerError
from fer_core.inference.options import DEFAULT_EVERY
from fer_core.serve.dependencies import HTTPRefusal, Service, admitted, multipart, require_key
from fer_core.serve.schemas import (
    ERRORS,
    Analysis,
    DetectorName,
    Every,
    Health,
    ImagesJSON,
    MinFace,
    ModelName,
    Models,
    TTAMode,
    VideoAnalysis,
)

# Files as OpenAPI 3.0 wrote them (`format: binary`), beside 3.1's `contentMediaType`: Swagger UI
# draws a file picker for the former only.
FILE_SCHEMA = {"type": "string", "format": "binary"}
FILES_SCHEMA = {"items": FILE_SCHEMA}

health_router = APIRouter()
# Every /v1 endpoint asks for the key (when the service has one) and documents its refusals.
v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=ERRORS)


@health_router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(state: Service):
    """200 once the default model is loaded and the service answers; 503 before or if it failed."""
    if state.ready:
        recognizer = state.recognizers.get()
        return {"status": "ok", "model": recognizer.model_name, "classes": list(recognizer.classes)}
    status = "failed: " + state.error if state.error else "loading"
    return JSONResponse({"status": status}, status_code=503)


@v1.get("/models", response_model=Models)
def models(state: Service):
    """Every trained model: its name, classes, reported accuracy with the dataset and split it
    was measured on (accuracies of different datasets do not compare), and which one answers
    when a request names none (`default`)."""
    from fer_core.artifacts import resolve_models, saved_models
    from fer_core.catalog import default_model, model_summary

    refs = saved_models()
    chosen = state.recognizers.defaults.get("model")
    serving = resolve_models(chosen)[0].name if chosen else getattr(default_model(refs), "name", None)
    return {"default": serving, "models": [model_summary(ref, serving) for ref in refs]}


def _answer(recognizer, results) -> dict | JSONResponse:
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


def _check_count(count: int, state) -> None:
    if count == 0:
        raise HTTPRefusal(400, "no images: send multipart 'files' (or base64 to POST /v1/analyze/base64)")
    if count > state.limits.max_files:
        raise HTTPRefusal(413, f"{count} images in one request, over the limit of {state.limits.max_files}")


@v1.post("/analyze", response_model=Analysis, dependencies=[Depends(multipart), Depends(admitted)])
def analyze(
    state: Service,
    files: Annotated[list[UploadFile], File(description="one or more images", json_schema_extra=FILES_SCHEMA)],
    model: Annotated[ModelName, Form()] = "",
    detector: Annotated[DetectorName, Form()] = None,
    tta: Annotated[TTAMode, Form()] = None,
    min_face: Annotated[MinFace, Form()] = None,
):
    """The faces of one or many uploaded images (a file that cannot be read fails alone, with
    its one-line error)."""
    _check_count(len(files), state)
    recognizer = state.recognizers.get(model=model, detector=detector, tta=tta, min_face=min_face)
    names = [upload.filename or f"image {k + 1}" for k, upload in enumerate(files)]
    return _answer(recognizer, recognizer.results([upload.file.read() for upload in files], names))


@v1.post("/analyze/base64", response_model=Analysis, dependencies=[Depends(admitted)])
async def analyze_base64(state: Service, body: ImagesJSON):
    """The faces of images sent as base64 strings (or data URLs) in JSON."""
    names = body.names if body.names is not None else [f"image {k + 1}" for k in range(len(body.images))]
    if len(names) != len(body.images):
        raise HTTPRefusal(422, "names: one name per image")
    _check_count(len(body.images), state)
    blobs = [_base64(item, name) for item, name in zip(body.images, names)]
    options = {"model": body.model, "detector": body.detector, "tta": body.tta, "min_face": body.min_face}
    recognizer = await run_in_threadpool(lambda: state.recognizers.get(**options))
    return _answer(recognizer, await run_in_threadpool(recognizer.results, blobs, names))


def _base64(item: str, name: str) -> bytes:
    if item.startswith("data:") and "," in item:  # a data URL as browsers make them
        item = item.split(",", 1)[1]
    try:
        return base64.b64decode(item, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPRefusal(400, f"{name}: not valid base64") from None


@v1.post("/analyze/video", response_model=VideoAnalysis, dependencies=[Depends(multipart), Depends(admitted)])
def analyze_video(
    state: Service,
    file: Annotated[UploadFile, File(description="one video", json_schema_extra=FILE_SCHEMA)],
    model: Annotated[ModelName, Form()] = "",
    detector: Annotated[DetectorName, Form()] = None,
    min_face: Annotated[MinFace, Form()] = None,
    every: Annotated[Every, Form()] = DEFAULT_EVERY,
):
    """One video: a row per face per analysed frame and a summary per face."""
    name = file.filename or "video"
    data = file.file.read()
    if not data:
        raise HTTPRefusal(400, f"{name}: the file is empty (0 bytes)")
    recognizer = state.recognizers.get(model=model, detector=detector, min_face=min_face)
    limits = state.limits
    with tempfile.TemporaryDirectory(prefix="fer-video-") as folder:
        path = Path(folder) / f"upload{Path(name).suffix[:8] or '.mp4'}"
        path.write_bytes(data)
        try:
            result = recognizer.video(
                path, every=every, max_minutes=limits.max_video_minutes, max_bytes=limits.max_video_bytes
            )
        except FerError as exc:  # name the upload, not the temporary file
            raise FerError(str(exc).replace(path.name, name)) from None
    return {
        "file": file.filename,
        "model": recognizer.model_name,
        "detector": recognizer.detector_name,
        "classes": list(recognizer.classes),
        "every": every,
        "frames_read": result.frames_read,
        "frames_analysed": result.frames_analysed,
        "summary": json.loads(result.summary().to_json(orient="records")),
        "rows": json.loads(result.frame().to_json(orient="records")),
    }
