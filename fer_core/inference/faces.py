"""Faces in images: Haar detection, 48x48 crops (with the whole-image fallback), drawing."""

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
