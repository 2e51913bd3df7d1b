"""The service's requests and answers as pydantic models and field types: what FastAPI validates
(422), what /openapi.json and /docs show, and what every endpoint returns (validated on the way
out). The options are checked by fer_core's own rules (`fer_core.inference.options`), the same
the facade and the CLI apply."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from fer_core.errors import FerError
from fer_core.inference.detectors import DETECTORS
from fer_core.inference.options import (
    DEFAULT_MIN_FACE,
    EVERY_RANGE,
    MIN_FACE_RANGE,
    check_detector,
    check_every,
    check_min_face,
    check_tta,
)
from fer_core.inference.tta import TTA_MODES


def _rule(check):
    """A fer_core check as a pydantic validator: its one line becomes the 422's message; an empty
    form field means "the service's default"."""

    def validate(value):
        if value in (None, ""):
            return None
        try:
            return check(value)
        except FerError as exc:
            raise ValueError(str(exc)) from None

    return AfterValidator(validate)


ModelName = Annotated[
    str | None,
    Field(description="a trained model's name, or several joined by commas (GET /v1/models); empty: the default"),
]
DetectorName = Annotated[str | None, Field(json_schema_extra={"enum": list(DETECTORS)}), _rule(check_detector)]
TTAMode = Annotated[str | None, Field(json_schema_extra={"enum": list(TTA_MODES)}), _rule(check_tta)]
MinFace = Annotated[
    int | None,
    Field(
        description=f"the smallest face side, in pixels (default {DEFAULT_MIN_FACE})",
        json_schema_extra={"minimum": MIN_FACE_RANGE[0], "maximum": MIN_FACE_RANGE[1]},
    ),
    _rule(check_min_face),
]
Every = Annotated[
    int,
    Field(
        description="analyse every N-th frame",
        json_schema_extra={"minimum": EVERY_RANGE[0], "maximum": EVERY_RANGE[1]},
    ),
    _rule(check_every),
]


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
    n: int | None = Field(None, description="the images `accuracy` was measured on")
    macro_f1: float | None = None
    flip_accuracy: float | None = Field(None, description="with flip test-time augmentation")
    flip_zoom_accuracy: float | None = Field(None, description="with flip+zoom test-time augmentation")
    selection_split: str | None = Field(None, description="the split that picked its best epoch")
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
    """POST /v1/analyze/base64: the images as base64 strings (POST /v1/analyze takes files)."""

    images: list[str] = Field(description="base64 images (data URLs accepted)")
    names: list[str] | None = Field(None, description="one name per image, used in the answer")
    model: ModelName = None
    detector: DetectorName = None
    tta: TTAMode = None
    min_face: MinFace = None


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
ERRORS = {code: {"model": ErrorAnswer} for code in (400, 401, 404, 413, 415, 422, 503)}
