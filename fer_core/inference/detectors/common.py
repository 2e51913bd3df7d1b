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
# A cut face whose eyes both lie further than this share of its box beyond the picture's edge is
# not a face we can classify (`inside`).
EYES_BEYOND_SHARE = 0.25


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

    def scaled(self, factor: float) -> Detection:
        """The same detection on a picture `factor` times as large (a detector that searched a copy)."""

        def box(b):
            return None if b is None else tuple(round(v * factor) for v in b)

        eyes = None if self.eyes is None else tuple((x * factor, y * factor) for x, y in self.eyes)
        return Detection(box(self.box), self.score, eyes, box(self.full_box))

    def moved(self, dx: int, dy: int) -> Detection:
        """The same face `dx`, `dy` pixels further (a tracker following it between detections)."""
        if not dx and not dy:
            return self

        def box(b):
            return None if b is None else (b[0] + dx, b[1] + dy, b[2], b[3])

        eyes = None if self.eyes is None else tuple((x + dx, y + dy) for x, y in self.eyes)
        return Detection(box(self.box), self.score, eyes, box(self.full_box))


def to_gray(image: np.ndarray) -> np.ndarray:
    import cv2

    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def to_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


# A detection whose landmarks are not in a face's arrangement is a phantom, whatever its score:
# the eyes apart by a share of the box's side, the mouth below them, the nose between the two. The
# 101 true faces of the detection benchmark span eye gaps of 0.053-0.463, eyes-to-mouth 0.175-0.464
# and the nose at 0.10-0.88 of the way (profiles, 30-degree turns, faces cut by the edge included;
# tools/landmark_check.py); the limits leave a margin around them.
EYE_GAP = (0.03, 0.7)
EYES_TO_MOUTH = (0.1, 0.75)
NOSE_AT = (0.0, 1.0)


@dataclass(frozen=True)
class FaceGeometry:
    """Where a detection's landmarks lie, in the face's own frame (turned so the eyes are level)
    and in shares of its box's side: what tells a face from a phantom boxed with confidence."""

    eye_gap: float  # the eyes' distance
    eyes_to_mouth: float  # from the eyes' midpoint down to the mouth's (negative: the mouth above)
    nose_at: float  # the nose's height between the eyes (0) and the mouth (1)
    tilt: float  # the eye line's angle, degrees (0: level, the subject's right eye on the left)


def face_geometry(side: float, right_eye, left_eye, nose, mouth) -> FaceGeometry:
    """The geometry of five points (`mouth`: the mouth's centre) of a face whose box side is `side`."""
    right_eye, left_eye, nose, mouth = (np.asarray(p, np.float64) for p in (right_eye, left_eye, nose, mouth))
    across = left_eye - right_eye
    tilt = float(np.arctan2(across[1], across[0]))
    down = np.array([-np.sin(tilt), np.cos(tilt)])  # the face's "down", perpendicular to the eye line
    eyes = (right_eye + left_eye) / 2
    drop = float((mouth - eyes) @ down)
    nose_at = float((nose - eyes) @ down) / drop if drop > 0 else float("nan")
    return FaceGeometry(float(np.hypot(*across)) / side, drop / side, nose_at, float(np.degrees(tilt)))


def face_like(geometry: FaceGeometry) -> bool:
    """Whether landmarks are in a face's arrangement (EYE_GAP, EYES_TO_MOUTH, NOSE_AT): eyes
    apart, above the nose, above the mouth. A chest boxed under a face, a texture or a pattern
    can score high; its landmarks rarely sit like a face's."""
    return (
        EYE_GAP[0] <= geometry.eye_gap <= EYE_GAP[1]
        and EYES_TO_MOUTH[0] <= geometry.eyes_to_mouth <= EYES_TO_MOUTH[1]
        and NOSE_AT[0] < geometry.nose_at < NOSE_AT[1]
    )


def square_box(corners) -> tuple[int, int, int, int]:
    """The square (x, y, side, side) on the centre of a detector's box (x0, y0, x1, y1 corners),
    its side the box's longer one, each rounded to the nearest pixel (half to even)."""
    x0, y0, x1, y1 = corners
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side)))


def inside(detection: Detection, width: int, height: int) -> Detection | None:
    """The detection with its box clipped to the picture (its whole box kept as `full_box` when
    more than CUT_SHARE of it lies outside), or None when less than MIN_INSIDE_SHARE of its
    width or height lies inside (a mirror image in the margin, not a face of the picture; a face
    half out of the picture, completed by its mirror image, is centred on the edge) or when a cut
    face's eyes both lie further than EYES_BEYOND_SHARE of its box beyond the picture."""
    x, y, w, h = detection.box
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if x1 - x0 < MIN_INSIDE_SHARE * w or y1 - y0 < MIN_INSIDE_SHARE * h:
        return None
    clipped = (x0, y0, x1 - x0, y1 - y0)
    if clipped == detection.box:
        return detection
    if detection.eyes is not None:
        # Both eyes far beyond the edge: what is left inside is a chin or a phantom (a ceiling lamp
        # boxed as a face reaching above a group photo, at 0.987). A face cut in half at the top has
        # its eyes just outside (about a tenth of its height): it is kept, and classified well
        # above chance (docs/performance.md, Faces cut by the edge).
        beyond = [max(0.0, -ex, ex - width, -ey, ey - height) for ex, ey in detection.eyes]
        if min(beyond) > EYES_BEYOND_SHARE * max(w, h):
            return None
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
