"""How well each face detector finds faces, on scenes the project builds from what it ships:
real photos with known faces (scikit-image's astronaut and cameraman), FER2013 faces pasted at
several sizes, turns and places into scikit-image's face-free pictures, and those pictures alone
(every detection there is a phantom). Part of `fer-core bench`.

A detection finds a true face when its centre lies inside the face's box and its side is within a
factor of two of the face's; each true face is found at most once. Any other detection is a
phantom. Latency is per 640x480 frame, as a photo or a video frame is searched (BlazeFace with
its tiles where the frame is large enough for them; Haar at its still-image settings).
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


@dataclass
class Scene:
    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    faces: list[tuple[int, int, int, int]]  # the true faces' boxes
    turns: list[float] | None = None  # each pasted face's turn in degrees (None: a photo)


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
