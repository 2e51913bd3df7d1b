"""What every detector shares: the `Detection` it returns, the rules that clip a box to the
picture and mark a face cut, the colour conversions, and the quiet loading of native runtimes."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.backend import quiet_stderr
from fer_core.errors import FerError

# A face is "cut" when more than this share of its box's width or height lies outside the picture
# (boxes of faces touching the edge poke out a few pixels).
CUT_SHARE = 0.1
# A box from the mirrored view is a face of the picture when at least this share of its width
# and of its height lies inside it; the mirror image of a face inside lies all outside.
MIN_INSIDE_SHARE = 0.3


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


def inside(detection: Detection, width: int, height: int) -> Detection | None:
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


def largest_first(detections: list[Detection]) -> list[Detection]:
    return sorted(detections, key=lambda d: d.box[2] * d.box[3], reverse=True)


def tflite_interpreter(path: Path):
    """A TFLite interpreter for one thread; TFLite's C++ runtime prints an XNNPACK notice to the
    process's stderr while it is made, past Python and TF_CPP_MIN_LOG_LEVEL, which would break a
    CLI error's one line, so fd 2 is silenced meanwhile."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # TensorFlow's successor runtime, where installed
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError:
            raise FerError("the blazeface detector needs TensorFlow's TFLite interpreter (or ai-edge-litert)") from None
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings(), quiet_stderr():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice, once per thread
        interpreter = Interpreter(model_path=str(path), num_threads=1)
        interpreter.allocate_tensors()
    return interpreter
