"""OpenCV's frontal-face Haar cascade: no extra dependency, but it takes collars, windows and
textures for faces and misses turned or small ones (on a still picture RetinaFace is faster:
docs/performance.md, Finding faces)."""

from __future__ import annotations

import threading

import numpy as np

from fer_core.errors import FerError
from fer_core.inference.detectors.common import Detection, largest_first, to_gray
from fer_core.inference.options import DEFAULT_MIN_FACE

CASCADE_FILE = "haarcascade_frontalface_default.xml"
# Haar's pyramid step for live video: coarser than the still-image 1.1 (half the levels), since a
# face missed at one scale is caught a few frames later and the tracker keeps its box in between.
LIVE_SCALE_FACTOR = 1.2


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

    def detect(self, image: np.ndarray, min_face: int = DEFAULT_MIN_FACE, max_side: int = 640) -> list[Detection]:
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
        return largest_first([Detection(box, 1.0) for box in boxes])
