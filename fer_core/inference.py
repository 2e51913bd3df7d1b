"""Faces in, probabilities out: Haar detection, 48x48 crops, a fast classifier, smoothing.

Shared by `fer-core predict`, the Predict and Explain pages and the live webcam path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from fer_core import CLASS_NAMES, IMAGE_SIZE
from fer_core.errors import FerError

# An image no larger than this on its longest side is taken to be a face crop already (FER2013's
# are 48x48); Haar needs a face of ~30 px and a margin around it, which such crops lack.
FACE_CROP_MAX_SIDE = 96
CASCADE_FILE = "haarcascade_frontalface_default.xml"
# Batch sizes the classifier pads to, so a compiled function sees only a few input shapes.
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
ENGINES = ("auto", "onnx", "keras")
# From this many faces a batch, engine "auto" runs the backend's compiled call even where ONNX
# Runtime won the one-face call: on the 2-core AVX512-BF16 CPU, TensorFlow's was 13-18% faster for
# the paper CNN at 64 and 256 faces a batch and within 5% for the other models, while ONNX Runtime
# is 1.4-1.9 times as fast for the one face a Live frame usually holds (docs/performance.md).
LARGE_BATCH = 64


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, width, height in the image's pixels
    probabilities: np.ndarray  # (7,) in CLASS_NAMES order

    @property
    def label(self) -> str:
        return CLASS_NAMES[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    def to_dict(self) -> dict:
        return {
            "box": [int(v) for v in self.box],
            "label": self.label,
            "probabilities": {name: round(float(p), 6) for name, p in zip(CLASS_NAMES, self.probabilities)},
        }


class FaceDetector:
    """OpenCV's frontal-face Haar cascade, run on a downscaled copy for speed.

    cv2.CascadeClassifier is not safe to share between threads, so each thread gets its own.
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5):
        import cv2

        path = cv2.data.haarcascades + CASCADE_FILE
        probe = cv2.CascadeClassifier(path)
        if probe.empty():
            raise FerError(f"the Haar cascade {path} is missing (opencv-python-headless 5.x ships none; use 4.x)")
        self._path = path
        self._local = threading.local()
        self._local.cascade = probe
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def _cascade(self):
        import cv2

        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = cv2.CascadeClassifier(self._path)
        return cascade

    def detect(self, gray: np.ndarray, min_face: int = 30, max_side: int = 640) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, w, h) in `gray`'s coordinates, largest first.

        Args:
            gray: (H, W) uint8.
            min_face: smallest face side to report, in `gray`'s pixels.
            max_side: the image is downscaled so its longest side is at most this before detection.
        """
        import cv2

        height, width = gray.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        small = (
            cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
            if scale < 1
            else gray
        )
        small = cv2.equalizeHist(small)
        min_side = max(12, int(min_face * scale))
        found = self._cascade().detectMultiScale(
            small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        boxes = [tuple(int(round(v / scale)) for v in box) for box in (found if len(found) else [])]
        return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The box cut out of `gray` (clipped to the image) and resized to 48x48 uint8."""

    x, y, w, h = box
    height, width = gray.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        raise FerError(f"face box {box} lies outside the {width}x{height} image")
    return to_face(gray[y0:y1, x0:x1])


def to_face(gray: np.ndarray) -> np.ndarray:
    """Any grayscale image resized to a 48x48 uint8 face."""
    import cv2

    if gray.shape == (IMAGE_SIZE, IMAGE_SIZE):
        return np.ascontiguousarray(gray, dtype=np.uint8)
    interpolation = cv2.INTER_AREA if min(gray.shape) >= IMAGE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(gray, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interpolation)


# Test-time augmentation: the probabilities of a face averaged over views of it. "flip" adds the
# mirror image; "flip+zoom" also centre crops of 44 and 40 px scaled back to 48, and their mirrors
# (six views). Chosen on the Training selection slice, never on the reported split (accuracy
# alone / flip / flip+zoom): cnn 0.6409 / 0.6430 / 0.6520, attention_cnn 0.6054 / 0.6061 / 0.6214;
# one crop size alone or shifts of 2-3 px gained less (trained/RESULTS.md).
TTA_MODES = ("none", "flip", "flip+zoom")
ZOOM_CROPS = (44, 40)


def tta_mode(tta) -> str:
    """The TTA mode named by `tta`: one of TTA_MODES, or a bool (False = "none", True = "flip"),
    which is how metrics files before "flip+zoom" stored it."""
    if tta is None or tta is False:
        return "none"
    if tta is True:
        return "flip"
    if tta in TTA_MODES:
        return tta
    raise FerError(f"unknown TTA {tta!r}; choose one of {', '.join(TTA_MODES)}")


def tta_views(faces: np.ndarray, tta) -> list[np.ndarray]:
    """The views of (N, 48, 48, 1) faces that `tta` averages over, the faces themselves first."""
    mode = tta_mode(tta)
    views = [faces]
    if mode == "flip+zoom":
        import cv2

        for crop in ZOOM_CROPS:
            margin = (IMAGE_SIZE - crop) // 2
            zoomed = [
                cv2.resize(
                    np.ascontiguousarray(face[margin : margin + crop, margin : margin + crop, 0]),
                    (IMAGE_SIZE, IMAGE_SIZE),
                )
                for face in faces
            ]
            views.append(np.stack(zoomed)[..., None] if zoomed else faces[:0])
    if mode != "none":
        views += [np.ascontiguousarray(v[:, :, ::-1]) for v in list(views)]
    return views


def with_tta(classify, tta):
    """`classify` (faces → probabilities) averaging over the `tta` views of each face."""
    if tta_mode(tta) == "none":
        return classify

    def classify_views(faces: np.ndarray) -> np.ndarray:
        x = np.asarray(faces)
        if x.ndim == 3:
            x = x[..., None]
        return np.mean([np.asarray(classify(v), dtype=np.float32) for v in tta_views(x, tta)], axis=0)

    return classify_views


class Classifier:
    """Calls a model on batches of 48x48 faces through ONNX Runtime or a compiled function, never
    `model.predict`.

    `model.predict` builds a data pipeline per call (~75 ms for one face here); a compiled call of
    the model costs ~3.6 ms and ONNX Runtime ~2 ms (paper CNN, `fer-core bench`), while from 64
    faces a batch the compiled call is as fast or faster (LARGE_BATCH). Batches are padded to a
    few fixed sizes so compilation happens once per size. Thread-safe: neither path holds
    per-call state.
    """

    def __init__(self, models, engine: str = "auto"):
        """`engine`: "onnx" (ONNX Runtime, exact-checked), "keras" (the backend's compiled call), or
        "auto": ONNX Runtime where it is available and exact for the model, else Keras, and Keras
        for batches of LARGE_BATCH faces or more (built on the first such batch)."""
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        if not self.models:
            raise FerError("no model to classify with")
        if engine not in ENGINES:
            raise FerError(f"unknown inference engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self._calls, self.engines = [], []
        for model in self.models:
            call = None
            if engine in ("auto", "onnx"):
                from fer_core.onnx_engine import onnx_call

                call = onnx_call(model)
                if call is None and engine == "onnx":
                    raise FerError(f"the ONNX Runtime path is unavailable or inexact for {model.name}")
            self.engines.append("onnx" if call is not None else "keras")
            self._calls.append(call or _compiled_call(model))
        # Per model, what large batches use: the same call, or (auto, ONNX) a compiled one made once.
        self._auto = engine == "auto"
        self._large_calls = [None if self._auto and e == "onnx" else c for e, c in zip(self.engines, self._calls)]
        self._large_lock = threading.Lock()

    def engines_for(self, batch: int) -> list[str]:
        """Which engine each model runs for a batch of `batch` faces."""
        if _bucket(min(batch, _BATCH_BUCKETS[-1])) < LARGE_BATCH or not self._auto:
            return list(self.engines)
        return ["keras"] * len(self.models)

    def _large_batch_calls(self) -> list:
        with self._large_lock:  # two threads' first large batch build one compiled call, not two
            for i, model in enumerate(self.models):
                if self._large_calls[i] is None:
                    self._large_calls[i] = _compiled_call(model)
            return list(self._large_calls)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """(N, 48, 48[, 1]) uint8 faces → (N, 7) float32 probabilities (mean over the models)."""
        x = np.asarray(faces, dtype=np.float32)
        if x.ndim == 3:
            x = x[..., None]
        n = len(x)
        if n == 0:
            return np.zeros((0, len(CLASS_NAMES)), dtype=np.float32)
        out = []
        for start in range(0, n, _BATCH_BUCKETS[-1]):
            chunk = x[start : start + _BATCH_BUCKETS[-1]]
            size = _bucket(len(chunk))
            if size > len(chunk):
                chunk = np.concatenate([chunk, np.zeros((size - len(chunk),) + chunk.shape[1:], np.float32)])
            calls = self._calls if size < LARGE_BATCH else self._large_batch_calls()
            probs = np.mean([np.asarray(call(chunk), dtype=np.float32) for call in calls], axis=0)
            out.append(probs[: min(len(chunk), n - start)])
        return np.concatenate(out)


def _bucket(n: int) -> int:
    """The batch size `n` faces are padded to."""
    return next(b for b in _BATCH_BUCKETS if b >= n)


def _compiled_call(model):
    """The fastest way this backend offers to run `model(x, training=False)`."""
    from fer_core.backend import load_keras

    keras = load_keras()

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        function = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: function(tf.constant(x)).numpy()
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        @jax.jit
        def function(x):
            outputs, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return outputs

        return lambda x: np.asarray(function(x))
    if backend == "torch":
        import torch

        def call(x):
            with torch.no_grad():
                return model(torch.from_numpy(x), training=False).cpu().numpy()

        return call
    return lambda x: keras.ops.convert_to_numpy(model(x, training=False))


def find_faces(
    gray: np.ndarray,
    detector: FaceDetector | None,
    whole_image: bool = False,
    min_face: int = 30,
) -> list[tuple[int, int, int, int]]:
    """Face boxes to classify: the whole image for face crops (or when asked), else Haar's."""
    height, width = gray.shape[:2]
    if whole_image or max(height, width) <= FACE_CROP_MAX_SIDE or detector is None:
        return [(0, 0, width, height)]
    return detector.detect(gray, min_face=min_face)


def main_face(gray: np.ndarray, detector: FaceDetector | None, min_face: int = 30) -> tuple[np.ndarray, bool]:
    """The largest face of an image as a 48x48 crop, and whether a face was found; where none
    is, the whole image stands in for it (the Explain page says so)."""
    boxes = find_faces(gray, detector, min_face=min_face)
    if not boxes:
        return to_face(gray), False
    return crop_face(gray, boxes[0]), True


def classify_image(
    gray: np.ndarray,
    classifier: Classifier,
    detector: FaceDetector | None,
    whole_image: bool = False,
    min_face: int = 30,
) -> list[Face]:
    """Every face in a grayscale image, each with its box and probabilities (one batched call)."""
    boxes = find_faces(gray, detector, whole_image=whole_image, min_face=min_face)
    if not boxes:
        return []
    crops = np.stack([crop_face(gray, box) for box in boxes])
    probabilities = classifier(crops)
    return [Face(box, p) for box, p in zip(boxes, probabilities)]


class Smoother:
    """Exponential moving average of probabilities: p <- alpha * p_old + (1 - alpha) * p_new.

    `alpha` 0 means no smoothing. Keyed by a track id so each face smooths on its own.
    """

    def __init__(self, alpha: float = 0.0):
        if not 0 <= alpha < 1:
            raise FerError(f"smoothing must be in [0, 1). Received: alpha={alpha}")
        self.alpha = alpha
        self._state: dict[int, np.ndarray] = {}

    def __call__(self, key: int, probabilities: np.ndarray) -> np.ndarray:
        previous = self._state.get(key)
        smoothed = (
            probabilities
            if previous is None or self.alpha == 0
            else self.alpha * previous + (1 - self.alpha) * probabilities
        )
        self._state[key] = smoothed
        return smoothed

    def forget(self, keep: set[int]) -> None:
        for key in list(self._state):
            if key not in keep:
                del self._state[key]


def draw_faces(gray_or_bgr: np.ndarray, faces: list[Face], min_side: int = 320, rgb: bool = False) -> np.ndarray:
    """A BGR copy of the image (RGB with `rgb`, for display) with each face's box and "label NN%"
    drawn on it.

    Small images (a 48x48 crop) are enlarged to `min_side` first, so the label stays legible.
    """
    import cv2

    image = cv2.cvtColor(gray_or_bgr, cv2.COLOR_GRAY2BGR) if gray_or_bgr.ndim == 2 else gray_or_bgr.copy()
    zoom = max(1, int(np.ceil(min_side / max(image.shape[:2]))))
    if zoom > 1:
        image = cv2.resize(image, (image.shape[1] * zoom, image.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
    side = max(image.shape[:2])
    thickness = max(1, side // 300)
    scale = max(0.45, side / 1000)
    for face in faces:
        x, y, w, h = (v * zoom for v in face.box)
        x1, y1 = min(x + w, image.shape[1] - 1), min(y + h, image.shape[0] - 1)
        cv2.rectangle(image, (x, y), (x1, y1), (0, 200, 0), thickness)
        text = f"{face.label} {face.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        # Above the box when there is room, else just inside its top edge.
        top = y - th - base - 4 if y - th - base - 4 >= 0 else y
        cv2.rectangle(image, (x, top), (x + tw + 4, top + th + base + 4), (0, 200, 0), -1)
        cv2.putText(
            image, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if rgb else image
