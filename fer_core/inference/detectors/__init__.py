"""Face detectors behind one interface, chosen by name (`DETECTORS`, `make_detector`), one file each:

- `retinaface` (the default, `retinaface.py`): RetinaFace on ONNX Runtime, its model shipped in this
  package; the most faces found, the fewest phantoms (docs/performance.md).
- `blazeface` (`blazeface.py`): MediaPipe's BlazeFace, full and short range, with tiles and mirrored
  edges; faster, finds fewer.
- `haar` (`haar.py`): OpenCV's cascade; no model file beyond OpenCV's, but it misses turned faces
  and boxes textures.

Every detector takes a grayscale (H, W) or RGB (H, W, 3) uint8 image and returns `Detection`s
(`common.py`), largest first; where the model gives eye landmarks they come along for alignment.
"""

from __future__ import annotations

from fer_core.errors import FerError
from fer_core.inference.detectors.blazeface import BlazeFaceDetector
from fer_core.inference.detectors.common import Detection, tflite_interpreter, to_gray, to_rgb
from fer_core.inference.detectors.haar import LIVE_SCALE_FACTOR, HaarDetector
from fer_core.inference.detectors.retinaface import RetinaFaceDetector

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "BlazeFaceDetector",
    "Detection",
    "HaarDetector",
    "RetinaFaceDetector",
    "make_detector",
    "tflite_interpreter",
    "to_gray",
    "to_rgb",
]

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
