"""Faces in images: which to classify (a detector's, or the whole image), 48x48 crops (aligned on
the eyes where the detector gives them), and drawing numbered, coloured boxes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_core import IMAGE_SIZE
from fer_core.errors import FerError
from fer_core.inference.detectors import Detection, to_gray
from fer_core.inference.options import DEFAULT_MIN_FACE

# An image no larger than this on its longest side is taken to be a face crop already (FER2013's
# are 48x48); Haar needs a face of ~30 px and a margin around it, which such crops lack.
FACE_CROP_MAX_SIDE = 96
# Whether crops are turned so the eyes are level, where the detector gives eyes (see crop_face;
# docs/performance.md has the measurement that decides it).
ALIGN_EYES = True
# Eyes within this many degrees of level are left as they are (a turn would only blur the face).
LEVEL_MIN_DEGREES = 1.0
# What a cut face's crop holds where the face lies outside the picture (see fill_outside;
# docs/performance.md has the measurement that decides it).
CUT_FILLS = ("mirror", "edge", "mean", "black", "stretch")
CUT_FILL = "mirror"
# One colour a face, in the order faces are numbered (BGR); the first is the green a lone face
# always had.
FACE_COLOURS = (
    (0, 200, 0),
    (0, 140, 255),
    (255, 120, 0),
    (200, 0, 200),
    (0, 220, 220),
    (60, 60, 255),
    (255, 255, 0),
    (120, 180, 60),
)


@dataclass(frozen=True)
class Face:
    """One face, the one type every path gives (the facade, the service, Live, Video): where it
    is, how sure the detector was, and the model's probability of each of its classes."""

    box: tuple[int, int, int, int]  # x, y, width, height in the image's pixels
    probabilities: dict[str, float]  # every class of the model, in the model's order
    score: float = 1.0  # the detector's confidence (1 for the whole image or Haar)
    # Part of the face lies outside the picture: `box` is the part inside, and the classifier saw
    # the rest made up (CUT_FILL); such results are less sure.
    cut: bool = False

    @classmethod
    def of(cls, box, probabilities: np.ndarray, classes, score: float = 1.0, cut: bool = False) -> Face:
        """A face from a model's output row and its class names."""
        if len(probabilities) != len(classes):
            raise ValueError(f"{len(probabilities)} probabilities for {len(classes)} classes")
        return cls(
            tuple(int(v) for v in box),
            {name: float(p) for name, p in zip(classes, probabilities)},
            float(score),
            bool(cut),
        )

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.probabilities)

    @property
    def vector(self) -> np.ndarray:
        """The probabilities as an array, in the model's class order."""
        return np.fromiter(self.probabilities.values(), dtype=np.float64, count=len(self.probabilities))

    @property
    def label(self) -> str:
        """The most probable class."""
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def confidence(self) -> float:
        """The most probable class's probability."""
        return max(self.probabilities.values())

    def to_dict(self) -> dict:
        """The JSON shape `fer-core predict --json` and the service give a face."""
        return {
            "box": [int(v) for v in self.box],
            "detector_score": round(float(self.score), 4),
            "cut": self.cut,
            "label": self.label,
            "confidence": round(float(self.confidence), 6),
            "probabilities": {name: round(float(p), 6) for name, p in self.probabilities.items()},
        }


def crop_face(gray: np.ndarray, box: tuple[int, int, int, int], eyes=None, fill: str = "") -> np.ndarray:
    """The box cut out of `gray` and resized to 48x48 uint8; with `eyes` (the right and left
    eye's centres), the image is first turned about the box's centre so the eyes are level, as
    FER2013's faces roughly are. The part of a box that reaches outside the image is made up
    by `fill` (`CUT_FILLS`; default CUT_FILL)."""
    if eyes is not None:
        gray = _level_eyes(gray, box, eyes)
    x, y, w, h = box
    height, width = gray.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        raise FerError(f"face box {box} lies outside the {width}x{height} image")
    return to_face(fill_outside(gray[y0:y1, x0:x1], (x0 - x, y0 - y, x + w - x1, y + h - y1), fill or CUT_FILL))


def fill_outside(inside: np.ndarray, missing: tuple[int, int, int, int], fill: str) -> np.ndarray:
    """The visible part of a face grown by `missing` pixels (left, top, right, bottom), made up
    as `fill` says: "mirror" (the face's own other side, nearly symmetric), "edge" (the last row
    or column repeated), "mean" (its mean grey), "black", or "stretch" (not grown: the visible
    part alone is resized to 48x48, squashing the face)."""
    left, top, right, bottom = missing
    if fill not in CUT_FILLS:
        raise FerError(f"unknown fill {fill!r}; choose one of {', '.join(CUT_FILLS)}")
    if fill == "stretch" or not any(missing):
        return inside
    widths = ((top, bottom), (left, right))
    if fill == "mirror":
        return np.pad(inside, widths, mode="symmetric")
    if fill == "edge":
        return np.pad(inside, widths, mode="edge")
    value = int(round(float(inside.mean()))) if fill == "mean" else 0
    return np.pad(inside, widths, mode="constant", constant_values=value)


def detection_crop(gray: np.ndarray, detection: Detection) -> np.ndarray:
    """The 48x48 crop of one detection from the grayscale picture: its whole box (a cut face's
    missing part made up by CUT_FILL), eyes levelled where known (`ALIGN_EYES`)."""
    return crop_face(gray, detection.full_box or detection.box, detection.eyes if ALIGN_EYES else None)


def _level_eyes(gray: np.ndarray, box, eyes) -> np.ndarray:
    import cv2

    (rx, ry), (lx, ly) = eyes
    angle = float(np.degrees(np.arctan2(ly - ry, lx - rx)))
    if abs(angle) < LEVEL_MIN_DEGREES:
        return gray
    x, y, w, h = box
    margin = max(w, h)  # only the neighbourhood of the box is turned: cheap on a large photo
    height, width = gray.shape[:2]
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(width, x + w + margin), min(height, y + h + margin)
    patch = gray[y0:y1, x0:x1]
    centre = (x + w / 2 - x0, y + h / 2 - y0)
    turn = cv2.getRotationMatrix2D(centre, angle, 1.0)
    turned = cv2.warpAffine(
        patch, turn, (patch.shape[1], patch.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    out = gray.copy()
    out[y0:y1, x0:x1] = turned
    return out


def to_face(gray: np.ndarray) -> np.ndarray:
    """Any grayscale image resized to a 48x48 uint8 face."""
    import cv2

    if gray.shape == (IMAGE_SIZE, IMAGE_SIZE):
        return np.ascontiguousarray(gray, dtype=np.uint8)
    interpolation = cv2.INTER_AREA if min(gray.shape) >= IMAGE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(gray, (IMAGE_SIZE, IMAGE_SIZE), interpolation=interpolation)


def find_faces(
    image: np.ndarray, detector, whole_image: bool = False, min_face: int = DEFAULT_MIN_FACE
) -> list[Detection]:
    """The faces to classify: the whole image for face crops (or when asked), else the detector's
    (`fer_core.inference.detectors`), largest first."""
    height, width = image.shape[:2]
    if whole_image or max(height, width) <= FACE_CROP_MAX_SIDE or detector is None:
        return [Detection((0, 0, width, height), 1.0)]
    return detector.detect(image, min_face=min_face)


def face_crop(image: np.ndarray, detection: Detection) -> np.ndarray:
    """The 48x48 grayscale crop of one detected face of an RGB or grayscale image (`detection_crop`)."""
    return detection_crop(to_gray(image), detection)


def dataset_face_finder(detector_name: str | None = None, min_face: int = 20):
    """`find_face(file bytes, name)` -> the 48x48 crop of the largest face of a dataset photo, for
    `load_dataset(find_face=...)` (`--detect-faces`): photos that are not face crops are found,
    levelled and cropped as Predict does; one without a face raises `NoFace`."""
    from fer_core.data.folder import NoFace
    from fer_core.data.images import decode_image
    from fer_core.inference.detectors import DEFAULT_DETECTOR, make_detector

    detector = make_detector(detector_name or DEFAULT_DETECTOR)  # an interpreter per loader thread

    def find_face(data: bytes, name: str) -> np.ndarray:
        rgb = decode_image(data, name=name)
        found = find_faces(rgb, detector, min_face=min_face)
        if not found:
            raise NoFace(f"{name}: no face found")
        return face_crop(rgb, found[0])

    find_face.name = detector.name
    return find_face


def draw_faces(
    image: np.ndarray, faces: list[Face], min_side: int = 320, rgb: bool = False, numbered: bool = False
) -> np.ndarray:
    """A copy of the image with each face's box and "label NN%" drawn on it ("(cut)" after it for a
    face cut by the edge), one colour a face (`FACE_COLOURS`), and with `numbered` its number first
    ("1 happy 93%"), to match a table of faces. See `draw_boxes` for the image's colour order and size."""
    texts = [
        (f"{k} " if numbered else "") + f"{face.label} {face.confidence:.0%}" + (" (cut)" if face.cut else "")
        for k, face in enumerate(faces, start=1)
    ]
    return draw_boxes(image, [face.box for face in faces], texts, min_side=min_side, rgb=rgb)


def draw_boxes(
    image: np.ndarray, boxes, texts: list[str], min_side: int = 320, rgb: bool = False, colour_index=None
) -> np.ndarray:
    """A copy of the image with each box drawn and its text above it, one colour a box (box k
    takes `FACE_COLOURS[k]`, or `FACE_COLOURS[colour_index[k]]`: a tracked face keeps its colour).

    The image is BGR or grayscale, or RGB with `rgb` (the copy is then RGB too, for display).
    Small images (a 48x48 crop) are enlarged to `min_side` first, so the text stays legible.
    """
    import cv2

    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if rgb else cv2.COLOR_GRAY2BGR)
    else:
        image = image.copy()
    zoom = max(1, int(np.ceil(min_side / max(image.shape[:2]))))
    if zoom > 1:
        image = cv2.resize(image, (image.shape[1] * zoom, image.shape[0] * zoom), interpolation=cv2.INTER_NEAREST)
    side = max(image.shape[:2])
    thickness = max(1, side // 300)
    scale = max(0.45, side / 1000)
    corners = []  # each box as (x0, y0, x1, y1) in the picture
    for box in boxes:
        x, y, w, h = (int(v) * zoom for v in box)
        corners.append((max(0, x), max(0, y), min(x + w, image.shape[1] - 1), min(y + h, image.shape[0] - 1)))
    placed: list[tuple[int, int, int, int]] = []  # the labels drawn so far (x0, y0, x1, y1)
    for number, ((x0, y0, x1, y1), text) in enumerate(zip(corners, texts)):
        colour = FACE_COLOURS[(colour_index[number] if colour_index is not None else number) % len(FACE_COLOURS)]
        colour = colour[::-1] if rgb else colour
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, thickness)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        others = corners[:number] + corners[number + 1 :]
        left, top = _label_place(
            (x0, y0, x1, y1), (tw + 4, th + base + 4), image.shape[1], image.shape[0], placed, others
        )
        placed.append((left, top, left + tw + 4, top + th + base + 4))
        cv2.rectangle(image, (left, top), (left + tw + 4, top + th + base + 4), colour, -1)
        cv2.putText(
            image, text, (left + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness, cv2.LINE_AA
        )
    return image


def _label_place(box, size, width: int, height: int, placed, others=()) -> tuple[int, int]:
    """Where a label of `size` goes for a box (x0, y0, x1, y1): inside the picture and over no
    label already `placed`. Beside its box first, over no `others` box either (the other faces of
    a crowded photo): above it, just inside its top edge, below it, inside its bottom edge, each
    from the box's left edge, then ending at its right edge; else inside its own box (over its
    own face, and another's only where the label is the wider); else stepped down from above the
    box until a row is free of labels; else inside its top edge."""
    x0, y0, x1, y1 = box
    label_w, label_h = size
    lefts = [min(max(0, edge), max(0, width - label_w)) for edge in (x0, x1 - label_w)]

    def free(left: int, top: int, avoid) -> bool:
        if top < 0 or top + label_h > height:
            return False
        return all(
            left >= px1 or left + label_w <= px0 or top >= py1 or top + label_h <= py0 for px0, py0, px1, py1 in avoid
        )

    for tops, avoid in (
        ((y0 - label_h, y0, y1, y1 - label_h), [*placed, *others]),
        ((y0, y1 - label_h), placed),
        (range(max(0, y0 - label_h), height - label_h + 1, max(1, label_h // 4)), placed),
    ):
        for top in tops:
            for left in lefts:
                if free(left, top, avoid):
                    return left, top
    return lefts[0], min(max(0, y0), max(0, height - label_h))
