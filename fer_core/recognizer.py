"""The Python face of FER Studio: emotions of the faces in images and videos, in three lines.

    from fer_core import Recognizer
    recognizer = Recognizer()                  # the default model (fer-core default), RetinaFace
    faces = recognizer.analyze("photo.jpg")    # a path, bytes, a PIL image or a numpy array

`fer-core predict` and `fer-core video`, the Predict page and the HTTP service all go through it,
so a face's fields, its JSON shape and the rows of a table or CSV are built here once. Creating a
Recognizer checks its options and names its model without importing Keras; the model loads on the
first call. One Recognizer is safe to share between threads (the service's requests): the
classifier holds no per-call state, and every detector is safe to share (Haar and BlazeFace keep one
cascade or interpreter per thread; RetinaFace's one session runs one search at a time).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_core.artifacts import model_classes
from fer_core.errors import FerError
from fer_core.inference.faces import Face
from fer_core.inference.options import DEFAULT_MIN_FACE, check_detector, check_min_face, check_tta

__all__ = [
    "DEFAULT_MIN_FACE",
    "Face",
    "ImageResult",
    "Recognizer",
    "model_classes",
    "results_frame",
    "results_table",
    "to_rgb_array",
]


@dataclass
class ImageResult:
    """One image's outcome: its faces, or the one-line reason it was refused."""

    file: str
    faces: list[Face] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        return {"file": self.file, "faces": [f.to_dict() for f in self.faces], "error": self.error}


class Recognizer:
    """Finds the faces in images or videos and classifies their expressions.

    Args:
        model: a trained model's name, a run folder, a `.keras` file, a `ModelRef`, or a list of
            them (an ensemble: their probabilities averaged); default: the default model
            (`fer-core default`; else the best measured on FER2013's reported split).
        detector: a face detector's name (`fer_core.inference.DETECTORS`), or one already made by
            `make_detector` (safe to share between threads and recognizers).
        tta: test-time augmentation (`fer_core.inference.TTA_MODES`).
        min_face: the smallest face side, in pixels, the detector reports.
        engine: the classifier's engine ("auto", "onnx" or "keras").
        classifier: an already built `Classifier` of these models, to share one between
            recognizers (the dashboard keeps one per model for all its pages); `tta` wraps it.

    Raises:
        FerError: an unknown detector, TTA mode or model, or models whose classes differ.
    """

    def __init__(
        self,
        model=None,
        detector: str | None = None,
        tta: str = "none",
        min_face: int = DEFAULT_MIN_FACE,
        engine: str = "auto",
        classifier=None,
    ):
        from fer_core.artifacts import resolve_models, shared_classes
        from fer_core.inference.detectors import DEFAULT_DETECTOR

        detector_object = None
        if detector is not None and not isinstance(detector, str):  # a detector already made
            detector_object, detector = detector, getattr(detector, "name", "")
        detector = check_detector(detector or DEFAULT_DETECTOR)
        check_tta(tta)
        check_min_face(min_face)
        if model is None:
            from fer_core.catalog import default_or_error

            self.refs = [default_or_error()]
        else:
            self.refs = resolve_models(model)
        self.classes: tuple[str, ...] = shared_classes(self.refs)
        self.detector_name, self.tta, self.min_face, self.engine = detector, tta, min_face, engine
        self._classifier = None
        if classifier is not None:
            from fer_core.inference.tta import with_tta

            self._classifier = with_tta(classifier, tta)
        self._detector_object = detector_object
        self._load_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The model's name as results record it (an ensemble's names joined by "+")."""
        return "+".join(ref.name for ref in self.refs)

    def load(self) -> Recognizer:
        """Load the model(s) now rather than on the first call (a server does, before it is healthy)."""
        self._classify()
        self._detector()
        return self

    def analyze(self, image, *, bgr: bool = False, whole_image: bool = False) -> list[Face]:
        """The faces of one image, largest first.

        Args:
            image: a file path, the file's bytes, a PIL image, or a numpy array (H, W) grayscale
                or (H, W, 3) RGB, uint8 or floats in [0, 255].
            bgr: the array's channels are in OpenCV's order (a `cv2.imread` or camera frame).
            whole_image: classify the whole image as one face, without detection.

        Raises:
            FerError: the image cannot be read or decoded (one line naming it).
        """
        return self.analyze_many([image], bgr=bgr, whole_image=whole_image)[0]

    def analyze_many(self, images, *, bgr: bool = False, whole_image: bool = False) -> list[list[Face]]:
        """The faces of several images, every face of all of them classified in one batch.

        Raises:
            FerError: the first image that cannot be read (`results` reports each instead).
        """
        results = self.results(list(images), bgr=bgr, whole_image=whole_image)
        for result in results:
            if result.error:
                raise FerError(result.error)
        return [result.faces for result in results]

    def results(
        self, images: list, names: list[str] | None = None, *, bgr: bool = False, whole_image=False
    ) -> list[ImageResult]:
        """An `ImageResult` per image, in order: a file that cannot be read fails alone, with its
        error, and the others are classified in one batch. `whole_image` is one flag for all
        or a list with one per image."""
        names = names or [_name_of(image, k) for k, image in enumerate(images)]
        wholes = whole_image if isinstance(whole_image, (list, tuple)) else [whole_image] * len(images)
        results = [ImageResult(name) for name in names]
        decoded = []
        for result, image in zip(results, images):
            try:
                decoded.append(to_rgb_array(image, bgr=bgr, name=result.file))
            except FerError as exc:
                result.error = str(exc)
                decoded.append(None)
        return self._classify_images(results, decoded, wholes)

    def classify_arrays(self, images: list[np.ndarray], whole_image=False) -> list[list[Face]]:
        """`results` for RGB arrays already decoded (the Predict page keeps them for drawing)."""
        wholes = whole_image if isinstance(whole_image, (list, tuple)) else [whole_image] * len(images)
        results = [ImageResult(f"image {k + 1}") for k in range(len(images))]
        return [r.faces for r in self._classify_images(results, list(images), wholes)]

    def _classify_images(self, results: list[ImageResult], images: list, wholes: list[bool]) -> list[ImageResult]:
        from fer_core.inference.classifier import classify_images

        found = classify_images(images, self._classify(), self.classes, self._detector(), wholes, self.min_face)
        for result, faces in zip(results, found):
            if isinstance(faces, FerError):
                result.error = f"{result.file}: {faces}"
            else:
                result.faces = faces
        return results

    def video(self, path, every: int = 5, output=None, progress=None, cancel=None, explain: bool = False, **limits):
        """Every `every`-th frame of a video file classified, faces tracked with stable ids
        (`fer_core.inference.video.VideoResult`: rows, a summary per face, an annotated MP4 with
        `output`; with `explain`, the MP4 shows where the model looks inside each box).
        `limits`: max_minutes, max_bytes."""
        from fer_core.inference.video import analyze, probe

        probe(path, **limits)  # a bad file is refused before the model loads
        return analyze(
            path,
            self._classify(),
            self._detector(),
            every=every,
            output=output,
            model_name=self.model_name,
            min_face=self.min_face,
            progress=progress,
            cancel=cancel,
            classes=self.classes,
            explain=explain,
            **limits,
        )

    def start_video(self, path, every: int = 5, output=None, explain: bool = False, **limits):
        """`video` on a daemon thread (`fer_core.inference.video.VideoJob`: progress, a cancel,
        then `result` or a one-line `error`), for a page that must stay responsive meanwhile."""
        from fer_core.inference.video import start_job

        return start_job(
            lambda progress, cancel: self.video(
                path, every=every, output=output, progress=progress, cancel=cancel, explain=explain, **limits
            )
        )

    def analyze_video(self, path, every: int = 5, **options):
        """The rows `fer-core video` writes, as a pandas DataFrame: a row per face per analysed
        frame (time, frame, face id, box, label, a column per class, model, detector)."""
        return self.video(path, every=every, **options).frame()

    def _classify(self):
        with self._load_lock:  # two first calls at once load the models once
            if self._classifier is None:
                from fer_core.artifacts import load_model
                from fer_core.inference import Classifier, with_tta

                models = [load_model(ref) for ref in self.refs]
                self._classifier = Classifier(models, engine=self.engine, classes=self.classes)
                self._classifier = with_tta(self._classifier, self.tta)
            return self._classifier

    def _detector(self):
        with self._load_lock:
            if self._detector_object is None:
                from fer_core.inference.detectors import make_detector

                self._detector_object = make_detector(self.detector_name)
            return self._detector_object


def to_rgb_array(image, bgr: bool = False, name: str = "image") -> np.ndarray:
    """Any image the facade accepts as (H, W, 3) uint8 RGB, with the decoder's limits."""
    from fer_core.data.images import decode_image, read_grayscale

    if isinstance(image, (str, os.PathLike)):
        return read_grayscale(image, colour=True)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(bytes(image), name=name)
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[..., 0]
        if array.ndim == 3 and array.shape[2] == 4:
            array = array[..., :3]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3) or array.size == 0:
            raise FerError(f"{name}: an image array is (H, W) or (H, W, 3). Received: shape {image.shape}")
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.number) or not np.isfinite(array).all():
                raise FerError(f"{name}: the array holds non-numeric or non-finite values ({array.dtype})")
            array = np.clip(array, 0, 255).astype(np.uint8)
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        elif bgr:
            array = array[..., ::-1]
        return np.ascontiguousarray(array)
    raise FerError(
        f"{name}: not an image: give a path, bytes, a PIL image or a numpy array. Received: {type(image).__name__}"
    )


def results_table(results: list[ImageResult], classes, used: dict) -> list[dict]:
    """The rows of a results table or CSV: a row per face with its box (x, y, w, h), whether it is
    cut by the picture's edge, its label and a column per class; a file without faces one row saying so; a refused file one row with its error; `used`
    (model, tta, detector) in every row, so a saved table says what produced it."""
    rows = []
    for result in results:
        if result.error or not result.faces:
            label = "" if result.error else "no face found"
            empty = dict.fromkeys(("x", "y", "w", "h", "cut", *classes), None)
            rows.append({"file": result.file, "face": 0, **empty, "label": label, **used, "error": result.error or ""})
        for k, face in enumerate(result.faces, start=1):
            rows.append(
                {
                    "file": result.file,
                    "face": k,
                    **dict(zip(("x", "y", "w", "h"), face.box)),
                    "cut": face.cut,
                    "label": face.label,
                    **{c: round(face.probabilities[c], 4) for c in classes},
                    **used,
                    "error": "",
                }
            )
    return rows


def results_frame(results: list[ImageResult], classes, used: dict):
    """`results_table` as a pandas DataFrame in its column order, the boxes whole pixels (a
    nullable integer: a file without faces leaves them empty, which would make them floats), as
    the CLI's CSV and the Predict page's table and download write it."""
    import pandas as pd

    columns = ["file", "face", "x", "y", "w", "h", "cut", "label", *classes, *used, "error"]
    frame = pd.DataFrame(results_table(results, classes, used), columns=columns)
    return frame.astype({column: "Int64" for column in ("face", "x", "y", "w", "h")})


def _name_of(image, index: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    filename = getattr(image, "filename", None)  # a PIL image opened from a file
    return Path(filename).name if filename else f"image {index + 1}"
