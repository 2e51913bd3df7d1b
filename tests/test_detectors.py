"""fer_core.inference.detectors: every detector behind one interface, on real photos and scenes
the project builds; BlazeFace's tiles and eyes; crops levelled on the eyes."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.errors import FerError
from fer_core.inference import DETECTORS, crop_face, make_detector
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
