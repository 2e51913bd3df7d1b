"""fer_core.inference.detectors: every detector behind one interface, on real photos and scenes
the project builds; BlazeFace's tiles and eyes; crops levelled on the eyes."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.errors import FerError
from fer_core.inference import DETECTORS, crop_face, make_detector
from fer_core.inference.detectors import BlazeFaceDetector
from fer_core.detection_bench import PHOTOS, _picture, match


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


def test_blazeface_gives_the_eyes_inside_the_box_the_subjects_right_eye_first(astronaut):
    [face] = make_detector("blazeface").detect(astronaut)
    (rx, ry), (lx, ly) = face.eyes
    x, y, w, h = face.box
    assert x < rx < lx < x + w and y < ry < y + h / 2 and y < ly < y + h / 2


def test_blazeface_tiles_find_a_small_face_in_a_large_photo(astronaut):
    import cv2

    canvas = np.full((1500, 2000, 3), 90, np.uint8)
    small = cv2.resize(astronaut, (170, 170), interpolation=cv2.INTER_AREA)  # its face ~35 px
    canvas[1200:1370, 1700:1870] = small
    face_box = [(1700 + 175 // 3, 1200 + 65 // 3, 35, 37)]
    assert match([d.box for d in make_detector("blazeface").detect(canvas, min_face=12)], face_box)[0] == 1
    untiled = make_detector("blazeface", live=True)  # the whole image at 192 px only
    assert match([d.box for d in untiled.detect(canvas, min_face=12)], face_box)[0] == 0


def test_a_crop_levelled_on_the_eyes_undoes_a_turn(astronaut):
    import cv2

    detector = make_detector("blazeface")
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
    with pytest.raises(FerError, match="unknown face detector 'retina'; choose from haar, blazeface"):
        make_detector("retina")


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


@pytest.mark.parametrize("place", ["centre", "bottom right"])
def test_blazeface_finds_a_face_filling_half_the_picture(place):
    from fer_core.detection_bench import CLOSE_FACE, CLOSE_PLACES, _photo_view

    view, box = _photo_view("astronaut", CLOSE_FACE, CLOSE_PLACES[place])
    found = make_detector("blazeface").detect(view)
    assert match([d.box for d in found], [box]) == (1, 0)
    assert not found[0].cut and found[0].full_box is None


@pytest.mark.parametrize("edge", ["left", "right", "top", "bottom", "bottom left"])
def test_blazeface_finds_a_face_half_out_of_the_picture_and_marks_it_cut(edge):
    from fer_core.detection_bench import CUT_FACE, EDGES, SCENE, _photo_view

    view, box = _photo_view("astronaut", CUT_FACE, EDGES[edge])
    [face] = make_detector("blazeface").detect(view)
    assert match([face.box], [box]) == (1, 0)
    x, y, w, h = face.box
    assert 0 <= x and 0 <= y and x + w <= SCENE[0] and y + h <= SCENE[1]  # drawn inside the picture
    assert face.cut
    fx, fy, fw, fh = face.full_box  # the whole face, reaching outside, for the crop
    assert fx < 0 or fy < 0 or fx + fw > SCENE[0] or fy + fh > SCENE[1]
    # Without the mirrored views (BlazeFace as it was) the half face is not found at all.
    plain = BlazeFaceDetector(edges=False)
    assert match([d.box for d in plain.detect(view)], [box])[0] == 0


def test_the_mirror_image_of_a_face_near_the_edge_is_not_a_second_face():
    from fer_core.detection_bench import _photo_view

    view, box = _photo_view("astronaut", 160, (0.14, 0.5))  # whole, its side touching the left edge
    found = make_detector("blazeface").detect(view)
    assert match([d.box for d in found], [box]) == (1, 0)


def test_blazeface_finds_a_row_of_small_faces():
    from fer_core.detection_bench import SMALL_ROW, crowd_scenes

    [row] = [s for s in crowd_scenes(np.zeros((1, 48, 48), np.uint8)) if s.case == "small"]
    hits, phantoms = match([d.box for d in make_detector("blazeface").detect(row.image, min_face=20)], row.faces)
    assert hits >= SMALL_ROW - 1 and phantoms == 0


@pytest.mark.parametrize("live", [False, True])
def test_no_face_in_any_face_free_picture(live):
    from fer_core.detection_bench import BACKGROUNDS

    detector = make_detector("blazeface", live=live)
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
