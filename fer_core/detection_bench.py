"""How well each face detector finds faces, on scenes the project builds from what it ships:
real photos with known faces (scikit-image's astronaut and cameraman), FER2013 faces pasted at
several sizes, turns and places into scikit-image's face-free pictures, and those pictures alone
(every detection there is a phantom). Then the faces of a crowd, as cases of their own: a face
close to the camera (filling half the picture's height, centred and in a corner), a face half
out of the picture past each edge and corner, and a row of small faces (30 px, in a 640x480
picture). Part of `fer-core bench`.

A detection finds a true face when its centre lies inside the face's box (the part inside the
picture, for a cut face) and its side is within a factor of two of the face's; each true face is
found at most once. Any other detection is a phantom. Latency is per 640x480 frame, as a photo or
a video frame is searched (RetinaFace inside its border; BlazeFace with every view, tiles where the
frame is large enough for them; Haar at its still-image settings).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fer_core.timing import percentiles

# scikit-image's pictures without a human face (the cat's face must not count as one).
BACKGROUNDS = (
    "coffee",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "clock",
    "page",
)
# Real photos and their faces (x, y, w, h), boxed by hand.
PHOTOS = {"astronaut": [(175, 65, 105, 110)], "camera": [(200, 120, 80, 80)]}
FACE_SIDES = (48, 80, 120, 180)  # pasted faces' sides in a 640x480 scene
TURNS = (0, 15, -15, 30, -30)  # degrees
SCENE = (640, 480)  # width, height
# The crowd's cases: where a face's centre lies, as a share of the picture's width and height.
EDGES = {
    "left": (0.0, 0.5),
    "right": (1.0, 0.5),
    "top": (0.5, 0.0),
    "bottom": (0.5, 1.0),
    "top left": (0.0, 0.0),
    "top right": (1.0, 0.0),
    "bottom left": (0.0, 1.0),
    "bottom right": (1.0, 1.0),
}
CLOSE_PLACES = {"centre": (0.5, 0.5), "bottom right": (0.75, 0.72)}
CLOSE_FACE, CUT_FACE, SMALL_FACE = 240, 160, 30  # face heights in px
SMALL_ROW = 8  # faces in the row
CASES = ("close", "cut", "small")


@dataclass
class Scene:
    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    faces: list[tuple[int, int, int, int]]  # the true faces' boxes
    turns: list[float] | None = None  # each pasted face's turn in degrees (None: a photo)
    case: str = ""  # one of CASES for the crowd's scenes


def _picture(name: str) -> np.ndarray:
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def _paste(scene: np.ndarray, face: np.ndarray, box: tuple[int, int, int, int], turn: float) -> None:
    """A 48x48 grayscale face scaled into `box` and turned about its centre, blended by a mask so
    the turned square's corners show the scene, not black."""
    import cv2

    x, y, side, _ = box
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    centre = (side / 2, side / 2)
    turn_matrix = cv2.getRotationMatrix2D(centre, turn, 1.0)
    turned = cv2.warpAffine(big, turn_matrix, (side, side), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full((side, side), 255, np.uint8), turn_matrix, (side, side)) > 127
    region = scene[y : y + side, x : x + side]
    region[mask] = np.repeat(turned[..., None], 3, axis=2)[mask]


def build_scenes(faces: np.ndarray, seed: int = 0) -> list[Scene]:
    """The benchmark's scenes: the photos, then per background one scene per face size holding
    two faces (turns taken in order), then each background alone. `faces`: (N, 48, 48) uint8."""
    import cv2

    rng = np.random.default_rng(seed)
    scenes = [Scene(name, _picture(name), list(boxes)) for name, boxes in PHOTOS.items()]
    width, height = SCENE
    turn_index, face_index = 0, 0
    for background in BACKGROUNDS:
        base = cv2.resize(_picture(background), SCENE, interpolation=cv2.INTER_AREA)
        for side in FACE_SIDES:
            image, boxes, turns = base.copy(), [], []
            while len(boxes) < 2:
                x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
                box = (x, y, side, side)
                if any(_overlaps(box, other) for other in boxes):
                    continue
                turn = TURNS[turn_index % len(TURNS)]
                _paste(image, faces[face_index % len(faces)], box, turn)
                boxes.append(box)
                turns.append(turn)
                turn_index, face_index = turn_index + 1, face_index + 1
            scenes.append(Scene(f"{background}+{side}px", image, boxes, turns))
        scenes.append(Scene(background, base, []))
    return scenes


def _photo_view(name: str, face_height: float, centre: tuple[float, float]) -> tuple[np.ndarray, tuple]:
    """A 640x480 view of a photo, scaled so its face is `face_height` px high with its centre at
    `centre` (shares of the width and height; on an edge, half the face is outside), grey where
    the view passes the photo's own edge; and the face's box, clipped to the view."""
    import cv2

    photo = _picture(name)
    ((fx, fy, fw, fh),) = PHOTOS[name]
    scale = face_height / fh
    width, height = SCENE
    # The view's top-left corner in the photo's pixels, then an affine map from photo to view.
    left = fx + fw / 2 - centre[0] * width / scale
    top = fy + fh / 2 - centre[1] * height / scale
    matrix = np.float32([[scale, 0, -left * scale], [0, scale, -top * scale]])
    view = cv2.warpAffine(photo, matrix, SCENE, flags=cv2.INTER_AREA, borderValue=(110, 110, 110))
    box = ((fx - left) * scale, (fy - top) * scale, fw * scale, fh * scale)
    return view, _clip(box)


def _clip(box) -> tuple[int, int, int, int]:
    x, y, w, h = box
    width, height = SCENE
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    return int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))


def _paste_placed(scene: np.ndarray, face: np.ndarray, side: int, centre: tuple[float, float]) -> tuple:
    """A FER2013 face pasted with its centre at `centre` (shares of the scene), the part outside
    the scene dropped; its box clipped to the scene."""
    import cv2

    width, height = SCENE
    x, y = int(round(centre[0] * width - side / 2)), int(round(centre[1] * height - side / 2))
    big = np.repeat(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)[..., None], 3, axis=2)
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + side), min(height, y + side)
    scene[y0:y1, x0:x1] = big[y0 - y : y1 - y, x0 - x : x1 - x]
    return _clip((x, y, side, side))


def crowd_scenes(faces: np.ndarray) -> list[Scene]:
    """The crowd's cases (see the module's notes): each from both photos and from pasted FER2013
    faces on the face-free pictures."""
    import cv2

    backgrounds = [cv2.resize(_picture(name), SCENE, interpolation=cv2.INTER_AREA) for name in BACKGROUNDS]
    scenes, k = [], 0
    cases = [("close", CLOSE_FACE, place, centre) for place, centre in CLOSE_PLACES.items()]
    cases += [("cut", CUT_FACE, place, centre) for place, centre in EDGES.items()]
    for case, side, place, centre in cases:
        for photo in PHOTOS:
            image, box = _photo_view(photo, side, centre)
            scenes.append(Scene(f"{photo}, {case} ({place})", image, [box], case=case))
        image = backgrounds[k % len(backgrounds)].copy()
        box = _paste_placed(image, faces[k % len(faces)], side, centre)
        scenes.append(Scene(f"FER2013 face, {case} ({place})", image, [box], case=case))
        k += 1
    # The row: the two photos' faces in turn, each cut out with its head around it and shrunk.
    width, height = SCENE
    row = np.full((height, width, 3), 110, np.uint8)
    boxes = []
    for slot in range(SMALL_ROW):
        name = list(PHOTOS)[slot % len(PHOTOS)]
        photo = _picture(name)
        ((fx, fy, fw, fh),) = PHOTOS[name]
        scale = SMALL_FACE / fh
        head = photo[max(0, fy - fh) : fy + 2 * fh, max(0, fx - fw) : fx + 2 * fw]
        small = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        x, y = 16 + slot * (width - 32) // SMALL_ROW, height // 2 - small.shape[0] // 2
        h, w = min(small.shape[0], height - y), min(small.shape[1], width - x)
        row[y : y + h, x : x + w] = small[:h, :w]
        face_x, face_y = x + (fx - max(0, fx - fw)) * scale, y + (fy - max(0, fy - fh)) * scale
        boxes.append(_clip((face_x, face_y, fw * scale, fh * scale)))
    scenes.append(Scene(f"a row of {SMALL_ROW} faces of {SMALL_FACE} px", row, boxes, case="small"))
    return scenes


# A head around a photo's face box, as a share of the box's side on each side of it.
HEAD_MARGIN = 0.35


def photo_frame(faces: list[tuple[int, int, int]], width: int = 640, height: int = 480) -> np.ndarray:
    """A (height, width, 3) uint8 BGR camera-like frame with the photos' heads in turn (their face
    boxes at (x, y), `size` px high) on a plain grey wall: a real face for every detector, unlike
    a drawn one (the benchmark's live frame and video clip)."""
    import cv2

    frame = np.full((height, width, 3), 118, np.uint8)
    for index, (x, y, size) in enumerate(faces):
        name = list(PHOTOS)[index % len(PHOTOS)]
        photo = _picture(name)
        ((fx, fy, fw, fh),) = PHOTOS[name]
        margin_x, margin_y = round(HEAD_MARGIN * fw), round(HEAD_MARGIN * fh)
        x0, y0 = max(0, fx - margin_x), max(0, fy - margin_y)
        head = photo[y0 : fy + fh + margin_y, x0 : fx + fw + margin_x]
        scale = size / fh
        head = cv2.resize(head, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        left, top = x - round((fx - x0) * scale), y - round((fy - y0) * scale)
        a, b = max(0, left), max(0, top)
        c, d = min(width, left + head.shape[1]), min(height, top + head.shape[0])
        if c > a and d > b:
            frame[b:d, a:c] = head[b - top : d - top, a - left : c - left]
    return np.ascontiguousarray(frame[..., ::-1])


def _overlaps(a, b) -> bool:
    return not (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1])


def match(found: list[tuple[int, int, int, int]], truth: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """(true faces found, phantoms) for one scene's detections."""
    unmatched = list(truth)
    phantoms = 0
    for x, y, w, h in found:
        cx, cy, side = x + w / 2, y + h / 2, max(w, h)
        hit = next(
            (
                t
                for t in unmatched
                if t[0] <= cx <= t[0] + t[2] and t[1] <= cy <= t[1] + t[3] and 0.5 <= side / max(t[2], t[3]) <= 2
            ),
            None,
        )
        if hit is None:
            phantoms += 1
        else:
            unmatched.remove(hit)
    return len(truth) - len(unmatched), phantoms


def bench_detectors(faces: np.ndarray, names: list[str] | None = None, repeats: int = 20) -> dict:
    """Per detector: faces found of all, by face size and turn, phantoms (on scenes with faces
    and on empty ones), and the p50/p95 latency on 640x480 scenes."""
    from fer_core.inference.detectors import DETECTORS, make_detector

    scenes = build_scenes(faces)
    crowd = crowd_scenes(faces)
    results = {}
    for name in names or list(DETECTORS):
        detector = make_detector(name)
        found_total = faces_total = phantoms_with = phantoms_empty = 0
        by_side: dict[int, list[int]] = {side: [0, 0] for side in FACE_SIDES}
        by_turn: dict[int, list[int]] = {abs(turn): [0, 0] for turn in TURNS}
        photos = {}
        for scene in scenes:
            boxes = [d.box for d in detector.detect(scene.image, min_face=20)]
            hits, phantoms = match(boxes, scene.faces)
            for face, turn in zip(scene.faces, scene.turns or []):
                by_turn[abs(turn)][0] += match(boxes, [face])[0]
                by_turn[abs(turn)][1] += 1
            found_total, faces_total = found_total + hits, faces_total + len(scene.faces)
            if scene.name in PHOTOS:
                photos[scene.name] = f"{hits} of {len(scene.faces)}, {phantoms} phantoms"
            if scene.faces:
                phantoms_with += phantoms
                side = scene.faces[0][2]
                if "+" in scene.name:
                    by_side[side][0] += hits
                    by_side[side][1] += len(scene.faces)
            else:
                phantoms_empty += phantoms
        by_case = {case: [0, 0] for case in CASES}
        crowd_phantoms = 0
        for scene in crowd:
            hits, phantoms = match([d.box for d in detector.detect(scene.image, min_face=20)], scene.faces)
            by_case[scene.case][0] += hits
            by_case[scene.case][1] += len(scene.faces)
            crowd_phantoms += phantoms
        frames = [s.image for s in scenes if s.image.shape[:2] == (SCENE[1], SCENE[0])][:repeats]
        detector.detect(frames[0])  # the first call sets up the runtime
        samples = []
        for frame in frames:
            start = time.perf_counter()
            detector.detect(frame, min_face=20)
            samples.append(time.perf_counter() - start)
        results[name] = {
            "faces_found": found_total,
            "faces": faces_total,
            "recall": round(found_total / max(1, faces_total), 3),
            "recall_by_face_side": {f"{side}px": f"{hit} of {total}" for side, (hit, total) in by_side.items()},
            "recall_by_turn": {f"{turn} deg": f"{hit} of {total}" for turn, (hit, total) in by_turn.items()},
            "photos": photos,
            "crowd": {case: f"{hit} of {total}" for case, (hit, total) in by_case.items()},
            "phantoms_in_crowd_scenes": crowd_phantoms,
            "phantoms_in_scenes_with_faces": phantoms_with,
            "phantoms_in_empty_scenes": phantoms_empty,
            "empty_scenes": sum(1 for s in scenes if not s.faces),
            "frame_ms": percentiles(samples),
        }
    return results


def benchmark_faces(data: str | None = None, count: int = 96) -> tuple[np.ndarray, str]:
    """The faces to paste: PublicTest's first `count` of the dataset at `data`, else drawn ones
    (`fer_core.data.synthetic`), and which they are."""
    if data:
        from fer_core.data import load_dataset

        dataset = load_dataset(data)
        split = "PublicTest" if "PublicTest" in dataset.split_names else dataset.split_names[-1]
        chosen = np.flatnonzero(dataset.splits == split)[:count]
        return dataset.images[chosen], f"{len(chosen)} {split} faces of {data}"
    import cv2

    from fer_core.data.synthetic import drawn_face

    drawn = [
        cv2.resize(drawn_face(96, seed=k, mouth_open=(k % 5) / 4), (48, 48), interpolation=cv2.INTER_AREA)
        for k in range(count)
    ]
    return np.stack(drawn), f"{count} drawn faces"
