"""The service's requests and answers as pydantic models: what /openapi.json and /docs show, and
what every endpoint returns (validated on the way out)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorAnswer(BaseModel):
    """Every refusal: a 4xx (or 503) with one line saying why."""

    error: str = Field(examples=["unknown detector 'mtcnn'; choose one of retinaface, blazeface, haar"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    model: str | None = None
    classes: list[str] | None = None


class ModelInfo(BaseModel):
    name: str
    classes: list[str]
    accuracy: float | None = Field(None, description="on `split` of `dataset`; never compare across datasets")
    split: str | None = None
    dataset: str
    macro_f1: float | None = None
    family: str | None = None
    default: bool = Field(description="the model that answers when a request names none")


class Models(BaseModel):
    default: str | None
    models: list[ModelInfo]


class Face(BaseModel):
    box: list[int] = Field(description="x, y, width, height in the image's pixels", min_length=4, max_length=4)
    detector_score: float
    cut: bool = Field(description="part of the face lies outside the picture (its missing part mirrored in)")
    label: str
    confidence: float
    probabilities: dict[str, float] = Field(description="one per class of the model, in its order")


class ImageFaces(BaseModel):
    file: str
    faces: list[Face]
    error: str | None = Field(None, description="why this image was refused (the others still answer)")


class Analysis(BaseModel):
    model: str
    detector: str
    tta: str
    classes: list[str]
    results: list[ImageFaces]


class ImagesJSON(BaseModel):
    """The JSON form of POST /v1/analyze (multipart `files` is the other)."""

    images: list[str] = Field(description="base64 images (data URLs accepted)")
    names: list[str] | None = None
    model: str | None = None
    detector: str | None = None
    tta: str | None = None
    min_face: int | None = None


class VideoAnalysis(BaseModel):
    file: str | None
    model: str
    detector: str
    classes: list[str]
    every: int
    frames_read: int
    frames_analysed: int
    summary: list[dict]
    rows: list[dict]


# The error answers each endpoint documents.
ERRORS = {code: {"model": ErrorAnswer} for code in (400, 401, 404, 413, 415, 422)}


def request_body(fields: dict, required: str, json_schema: dict | None = None) -> dict:
    """The OpenAPI request body of an endpoint that reads its multipart form (or JSON) itself:
    what /docs shows and "Try it out" sends."""
    content = {"multipart/form-data": {"schema": {"type": "object", "properties": fields, "required": [required]}}}
    if json_schema is not None:
        content["application/json"] = {"schema": json_schema}
    return {"requestBody": {"content": content, "required": True}}
