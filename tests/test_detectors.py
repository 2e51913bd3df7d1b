"""fer_core.inference.detectors: every detector behind one interface, on real photos and scenes
the project builds; the neural ones' eyes and the crowd's faces (close, cut by the edge, small);
BlazeFace's tiles; crops levelled on the eyes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from fer_core.errors import FerError
from fer_core.inference import DETECTORS, crop_face, make_detector
from fer_core.inference.detectors import BlazeFaceDetector, RetinaFaceDetector
from fer_core.detection_bench import PHOTOS, _picture, match


# The neural detectors, built for the crowd's cases (Haar is neither: see docs/performance.md).
NEURAL = ["retinaface", "blazeface"]


@pytest.fixture(scope="module")
def astronaut():
    return _picture("astronaut")


@pytest.mark.parametrize("name", list(DETECTORS))
def test_every_detector_finds_the_astronauts_face_and_nothing_in_a_brick_wall(name, astronaut):
    detector = make_detector(name)
    found = detector.detect(astronaut)
    assert match([d.box for d in found], PHOTOS["astronaut"]) == (1, 0)
    assert all(0 < d.score <= 1 for d in found)
    assert detector.detect(_picture("brick")) == []
    gray = astronaut.mean(axis=2).astype(np.uint8)  # grayscale in, the same interface
    assert match([d.box for d in detector.detect(gray)], PHOTOS["astronaut"])[0] == 1


@pytest.mark.parametrize("name", NEURAL)
def test_the_eyes_lie_inside_the_box_the_subjects_right_eye_first(name, astronaut):
    [face] = make_detector(name).detect(astronaut)
    (rx, ry), (lx, ly) = face.eyes
    x, y, w, h = face.box
    assert x < rx < lx < x + w and y < ry < y + h / 2 and y < ly < y + h / 2


def small_face_in_a_large_photo(astronaut):
    """A 2000x1500 picture with the astronaut shrunk into a corner (her face ~35 px), and its box."""
    import cv2

    canvas = np.full((1500, 2000, 3), 90, np.uint8)
    canvas[1200:1370, 1700:1870] = cv2.resize(astronaut, (170, 170), interpolation=cv2.INTER_AREA)
    return canvas, [(1700 + 175 // 3, 1200 + 65 // 3, 35, 37)]


@pytest.mark.parametrize("name", NEURAL)
def test_a_small_face_in_a_large_photo_is_found(name, astronaut):
    canvas, face_box = small_face_in_a_large_photo(astronaut)
    assert match([d.box for d in make_detector(name).detect(canvas, min_face=12)], face_box) == (1, 0)


def test_blazeface_needs_its_tiles_for_a_small_face_in_a_large_photo(astronaut):
    canvas, face_box = small_face_in_a_large_photo(astronaut)
    untiled = make_detector("blazeface", live=True)  # the whole image at 192 px only
    assert match([d.box for d in untiled.detect(canvas, min_face=12)], face_box)[0] == 0


@pytest.mark.parametrize("name", NEURAL)
def test_a_crop_levelled_on_the_eyes_undoes_a_turn(name, astronaut):
    import cv2

    detector = make_detector(name)
    [upright] = detector.detect(astronaut)
    straight = crop_face(astronaut.mean(axis=2).astype(np.uint8), upright.box).astype(float)
    turn = cv2.getRotationMatrix2D((227, 120), 25, 1.0)
    turned = cv2.warpAffine(astronaut, turn, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    [found] = detector.detect(turned)
    gray = turned.mean(axis=2).astype(np.uint8)
    as_found = crop_face(gray, found.box).astype(float)
    levelled = crop_face(gray, found.box, found.eyes).astype(float)

    def likeness(a, b):
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    assert likeness(levelled, straight) > likeness(as_found, straight) + 0.1


def test_an_unknown_detector_is_refused_in_one_line():
    with pytest.raises(FerError, match="unknown face detector 'mtcnn'; choose from retinaface, blazeface, haar"):
        make_detector("mtcnn")


def test_the_shipped_retinaface_file_matches_its_card_and_a_damaged_copy_is_refused(tmp_path, monkeypatch):
    """The ONNX file inside the package is the one its card describes (SHA-256, size, MIT), and a
    truncated copy (or a Git LFS pointer) fails in one line before ONNX Runtime reads it."""
    import hashlib
    import json

    from fer_core.inference.detectors import retinaface

    card = json.loads(retinaface.CARD_FILE.read_text())
    model = retinaface.MODEL_FILE.read_bytes()
    assert hashlib.sha256(model).hexdigest() == card["sha256"] and len(model) == card["bytes"]
    assert card["licence"].startswith("MIT") and "WIDER FACE" in card["training_data"]
    damaged = tmp_path / "retinaface.onnx"
    damaged.write_bytes(model[: len(model) // 2])
    (tmp_path / "retinaface.json").write_text(json.dumps(card))
    monkeypatch.setattr(retinaface, "MODEL_FILE", damaged)
    monkeypatch.setattr(retinaface, "CARD_FILE", tmp_path / "retinaface.json")
    with pytest.raises(FerError, match=r"SHA-256 .* is not the card's; reinstall fer-studio"):
        retinaface._read_model()


def test_retinaface_needs_no_tensorflow_and_no_conversion(tmp_path):
    """A fresh process finds the astronaut's face with TensorFlow's import blocked and writes
    nothing to its cache: the shipped file is read as it is."""
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['tf2onnx'] = None\n"
        "import skimage.data\n"
        "from fer_core.inference.detectors import make_detector\n"
        "faces = make_detector('retinaface').detect(skimage.data.astronaut())\n"
        "print(len(faces), faces[0].eyes is not None)\n"
    )
    env = {**os.environ, "FER_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "True"]
    assert not (tmp_path / "cache").exists()


def test_decode_image_keeps_the_colours():
    import io

    from PIL import Image

    from fer_core.data.images import decode_grayscale, decode_image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 2), (200, 30, 10)).save(buffer, "PNG")
    rgb = decode_image(buffer.getvalue())
    assert rgb.shape == (2, 4, 3) and tuple(rgb[0, 0]) == (200, 30, 10)
    assert decode_grayscale(buffer.getvalue()).shape == (2, 4)
    buffer = io.BytesIO()
    Image.new("L", (3, 3), 77).save(buffer, "PNG")
    assert (decode_image(buffer.getvalue()) == 77).all()  # grey as three equal channels


# The crowd: faces close to the camera, cut by the picture's edge, small in a row.


@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("place", ["centre", "bottom right"])
def test_a_face_filling_half_the_picture_is_found(name, place):
    from fer_core.detection_bench import CLOSE_FACE, CLOSE_PLACES, _photo_view

    view, box = _photo_view("astronaut", CLOSE_FACE, CLOSE_PLACES[place])
    found = make_detector(name).detect(view)
    assert match([d.box for d in found], [box]) == (1, 0)
    assert not found[0].cut and found[0].full_box is None


HALF_OUT = ["left", "right", "top", "bottom", "bottom left"]


@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("edge", HALF_OUT)
def test_a_face_half_out_of_the_picture_is_found_and_marked_cut(name, edge):
    from fer_core.detection_bench import CUT_FACE, EDGES, SCENE, _photo_view

    view, box = _photo_view("astronaut", CUT_FACE, EDGES[edge])
    [face] = make_detector(name).detect(view)
    assert match([face.box], [box]) == (1, 0)
    x, y, w, h = face.box
    assert 0 <= x and 0 <= y and x + w <= SCENE[0] and y + h <= SCENE[1]  # drawn inside the picture
    assert face.cut
    fx, fy, fw, fh = face.full_box  # the whole face, reaching outside, for the crop
    assert fx < 0 or fy < 0 or fx + fw > SCENE[0] or fy + fh > SCENE[1]


@pytest.mark.parametrize("name", NEURAL)
def test_without_their_margins_the_detectors_miss_the_half_faces(name):
    """What the margins are for: searched as it is, the picture gives up the faces half out of it
    (BlazeFace all five; RetinaFace, trained on some cut faces, still finds those past the right
    and the bottom edge)."""
    from fer_core.detection_bench import CUT_FACE, EDGES, _photo_view

    plain = BlazeFaceDetector(edges=False) if name == "blazeface" else RetinaFaceDetector(margin=0)
    hits = with_margins = 0
    for edge in HALF_OUT:
        view, box = _photo_view("astronaut", CUT_FACE, EDGES[edge])
        hits += match([d.box for d in plain.detect(view)], [box])[0]
        with_margins += match([d.box for d in make_detector(name).detect(view)], [box])[0]
    # The same pictures, the same detector with its margins: every half face (so a detector that
    # found nothing at all fails here rather than passing as "missed them").
    assert with_margins == len(HALF_OUT)
    assert hits <= (0 if name == "blazeface" else 2)


@pytest.mark.parametrize("name", NEURAL)
def test_the_mirror_image_of_a_face_near_the_edge_is_not_a_second_face(name):
    from fer_core.detection_bench import _photo_view

    view, box = _photo_view("astronaut", 160, (0.14, 0.5))  # whole, its side touching the left edge
    found = make_detector(name).detect(view)
    assert match([d.box for d in found], [box]) == (1, 0)


@pytest.mark.parametrize("name", NEURAL)
def test_a_row_of_small_faces_is_found(name):
    from fer_core.detection_bench import SMALL_ROW, crowd_scenes

    [row] = [s for s in crowd_scenes(np.zeros((1, 48, 48), np.uint8)) if s.case == "small"]
    hits, phantoms = match([d.box for d in make_detector(name).detect(row.image, min_face=20)], row.faces)
    assert hits >= SMALL_ROW - 1 and phantoms == 0


@pytest.mark.parametrize("name", NEURAL)
@pytest.mark.parametrize("live", [False, True])
def test_no_face_in_any_face_free_picture(name, live):
    from fer_core.detection_bench import BACKGROUNDS

    detector = make_detector(name, live=live)
    assert {name: len(detector.detect(_picture(name), min_face=20)) for name in BACKGROUNDS} == dict.fromkeys(
        BACKGROUNDS, 0
    )


def test_a_cut_face_is_completed_by_its_mirror_image():
    """Half a face, completed by the default fill, is the face again where the face is
    symmetric; squashing the visible half (the old crop) is not."""
    from fer_core.data.synthetic import drawn_face
    from fer_core.inference.faces import CUT_FILL, CUT_FILLS, crop_face, fill_outside

    face = drawn_face(96, seed=3)  # drawn symmetric about its vertical middle
    assert CUT_FILL == "mirror"
    visible = face[:, 48:]  # the left half beyond the picture's left edge
    whole = crop_face(visible, (-48, 0, 96, 96))  # the face's whole box reaches outside
    original = crop_face(face, (0, 0, 96, 96))

    def likeness(a, b):
        return float(np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1])

    assert likeness(whole, original) > 0.95
    assert likeness(crop_face(visible, (-48, 0, 96, 96), fill="stretch"), original) < likeness(whole, original) - 0.1
    for fill in CUT_FILLS:
        grown = fill_outside(visible, (48, 0, 0, 0), fill)
        assert grown.shape == ((96, 48) if fill == "stretch" else (96, 96))
    with pytest.raises(FerError, match="unknown fill 'blur'"):
        fill_outside(visible, (1, 0, 0, 0), "blur")


def test_labels_stay_inside_the_picture_and_off_each_other():
    from fer_core.inference.faces import FACE_COLOURS, _label_place, draw_boxes

    placed = []
    for box in [(-10, 60, 50, 50), (30, 60, 50, 50), (60, 62, 50, 50)]:  # the first reaches past the left edge
        x0, y0 = max(0, box[0]), max(0, box[1])
        left, top = _label_place((x0, y0, box[0] + box[2], box[1] + box[3]), (70, 14), 200, 150, placed)
        assert 0 <= left <= 200 - 70 and 0 <= top <= 150 - 14
        placed.append((left, top, left + 70, top + 14))
    for k, a in enumerate(placed):
        for b in placed[k + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    # Drawn: both labels' colours show in full, the cut face's box starts at the picture's edge.
    image = np.full((150, 200, 3), 255, np.uint8)
    drawn = draw_boxes(image, [(-10, 60, 50, 50), (30, 60, 50, 50)], ["1 happy 90%", "2 sad 80%"], min_side=0, rgb=True)
    for colour in FACE_COLOURS[:2]:
        assert (np.all(drawn == np.array(colour[::-1]), axis=2)).sum() > 100


def test_in_a_crowded_photo_a_label_covers_no_other_face():
    """Three faces side by side over a fourth: no label lies over a face that is not its own
    (above its own box where there is room, else inside it)."""
    from fer_core.inference.faces import FACE_COLOURS, draw_boxes

    boxes = [(10, 40, 100, 100), (120, 40, 100, 100), (230, 40, 100, 100), (60, 140, 140, 120)]
    texts = ["1 happy 90%", "2 sad 80%", "3 neutral 70%", "4 angry 60%"]
    drawn = draw_boxes(np.full((300, 400, 3), 255, np.uint8), boxes, texts, min_side=0, rgb=True)
    for k, (x, y, w, h) in enumerate(boxes):
        inside = drawn[y + 3 : y + h - 2, x + 3 : x + w - 2]  # within the box's outline
        for j, colour in enumerate(FACE_COLOURS[: len(boxes)]):
            if j != k and not _overlap(boxes[j], boxes[k]):
                assert not np.all(inside == np.array(colour[::-1]), axis=2).any(), (texts[j], "over face", k + 1)


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def test_retinaface_searches_one_picture_at_a_time_across_threads(monkeypatch):
    """Four threads detecting at once: ONNX Runtime never runs two RetinaFace searches together
    (each already keeps both cores busy, and its memory arena grows with every search in flight;
    docs/serving.md). Without the lock in the detector this sees four at once."""
    import threading
    import time

    import onnxruntime

    detector = make_detector("retinaface")
    state = {"now": 0, "most": 0}
    guard = threading.Lock()
    original = onnxruntime.InferenceSession.run

    def counted(self, *args, **kwargs):
        with guard:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.05)  # long enough for the other threads to arrive
        try:
            return original(self, *args, **kwargs)
        finally:
            with guard:
                state["now"] -= 1

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", counted)
    picture = _picture("astronaut")
    threads = [threading.Thread(target=detector.detect, args=(picture,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state["most"] == 1


def test_a_faces_arrangement_passes_and_others_do_not():
    """The landmark rule (`face_like`), on a frontal face's five points in a 100-px box and on
    arrangements no face has: each measure tested on both sides of its limits."""
    from fer_core.inference.detectors.common import face_geometry, face_like

    face = {"right_eye": (35, 40), "left_eye": (65, 40), "nose": (50, 55), "mouth": (50, 72)}
    geometry = face_geometry(100, *face.values())
    assert geometry.eye_gap == pytest.approx(0.30) and geometry.eyes_to_mouth == pytest.approx(0.32)
    assert geometry.nose_at == pytest.approx(15 / 32) and geometry.tilt == pytest.approx(0)
    assert face_like(geometry)
    turned = face_geometry(100, (35, 40), (60, 55), (45, 60), (38, 75))  # the same face turned ~31 degrees
    assert face_like(turned) and turned.tilt == pytest.approx(30.96, abs=0.01)
    phantoms = {
        "the mouth above the eyes": {**face, "mouth": (50, 20)},
        "the nose below the mouth": {**face, "nose": (50, 85)},
        "the nose above the eyes": {**face, "nose": (50, 30)},
        "the eyes on one spot": {**face, "right_eye": (49, 40), "left_eye": (51, 40)},
        "the eyes past the box": {**face, "right_eye": (5, 40), "left_eye": (95, 40)},
        "the mouth a box below": {**face, "mouth": (50, 125)},
        "the mouth on the eye line": {**face, "mouth": (50, 44), "nose": (50, 42)},
    }
    for name, points in phantoms.items():
        assert not face_like(face_geometry(100, *points.values())), name


def test_retinaface_drops_a_confident_box_whose_landmarks_are_no_face(astronaut, monkeypatch):
    """A torso boxed under a face with a face's score (as on a real portrait): its landmarks
    scattered over the chest, so it is dropped; the face above it stays."""
    detector = RetinaFaceDetector()
    [real] = detector.candidates(astronaut)
    height, width = astronaut.shape[:2]
    canvas_rows = detector._function  # the network, called on the bordered picture

    def with_a_torso(batch):
        rows = canvas_rows(batch).reshape(-1, 16)
        torso = rows[0].copy()
        _, canvas_h, canvas_w, _ = batch.shape
        shift = (real.corners[3] - real.corners[1]) * 1.1 / canvas_h  # one face lower
        torso[[1, 3]] += shift
        # eyes wide apart near the box's top corners, "nose" and "mouth" at its bottom edge
        x0, y0, x1, y1 = torso[:4]
        torso[4:14] = [x0, y0, x1, y0, (x0 + x1) / 2, y1, x0, y1, x1, y1]
        torso[15] = 0.996
        return np.concatenate([rows, torso[None]])

    monkeypatch.setattr(detector, "_function", with_a_torso)
    assert len(detector.candidates(astronaut)) == 2  # the network gives both
    [face] = detector.detect(astronaut)
    assert match([face.box], PHOTOS["astronaut"]) == (1, 0)


def test_a_cut_detection_is_dropped_when_both_eyes_lie_far_beyond_the_edge():
    """The phantom of a group photo: a tall box reaching far above the picture over a ceiling
    lamp, its 'eyes' a third of its height above the top edge, is dropped; a face cut in half at
    the top (eyes just above the edge) or at the side (one eye inside) is kept and marked cut; a
    whole face is left as it is."""
    from fer_core.inference.detectors.common import Detection, inside

    phantom = Detection((300, -420, 578, 578), 0.987, ((450.0, -200.0), (700.0, -190.0)))
    assert inside(phantom, 1200, 800) is None
    top_half = Detection((500, -80, 160, 160), 0.99, ((540.0, -15.0), (620.0, -15.0)))
    assert inside(top_half, 1200, 800).cut
    half = Detection((-60, 200, 160, 160), 0.99, ((-20.0, 250.0), (40.0, 250.0)))
    kept = inside(half, 1200, 800)
    assert kept is not None and kept.cut and kept.box == (0, 200, 100, 160) and kept.full_box == half.box
    whole = Detection((100, 100, 120, 120), 0.99, ((140.0, 150.0), (180.0, 150.0)))
    assert inside(whole, 1200, 800) is whole
    no_landmarks = Detection((300, -100, 300, 300), 1.0)  # Haar gives no eyes: the share rule alone
    assert inside(no_landmarks, 1200, 800).cut
