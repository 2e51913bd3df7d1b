"""fer_core.live: the webcam frame pipeline on synthetic frames (drawn faces pasted into a scene)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from fer_core import CLASS_NAMES, FerError
from fer_core.inference import Classifier, make_detector
from fer_core.inference.detectors import HaarDetector
from fer_core.inference.live import LiveProcessor, LiveSettings, Timeline
from fer_core.inference.tracking import iou
from fer_core.models import build_model
from fer_core.data.synthetic import face_frame

from fer_core.inference.faces import FACE_COLOURS  # noqa: E402  one box colour a face, BGR

GREEN = FACE_COLOURS[0]  # the first (or only) face's


@pytest.fixture(scope="module")
def small_classifier():
    return Classifier(build_model("cnn", num_classes=7, filters=(8, 16, 16), dense_units=16))


@pytest.fixture(scope="module")
def detector():
    return make_detector("haar", live=True)


class SequenceClassifier:
    """Returns the given probability rows in turn, one per face: makes smoothing checkable exactly."""

    classes = CLASS_NAMES

    def __init__(self, rows):
        self.rows = [np.asarray(r, np.float32) for r in rows]
        self.calls = 0

    def __call__(self, faces):
        out = np.stack([self.rows[(self.calls + i) % len(self.rows)] for i in range(len(faces))])
        self.calls += 1
        return out


def green_pixels(image: np.ndarray, colour=GREEN) -> int:
    return int(np.all(image == colour, axis=-1).sum())


def drawn_pixels(image: np.ndarray) -> int:
    return sum(green_pixels(image, colour) for colour in FACE_COLOURS)


def test_faces_are_found_where_they_were_pasted_and_labelled(small_classifier, detector):
    truth = [(340, 90, 200, 200), (60, 260, 120, 120)]
    frame = face_frame([(x, y, s) for x, y, s, _ in truth])
    processor = LiveProcessor(small_classifier, detector, LiveSettings(smoothing=0, min_face=60))
    annotated = processor.process(frame)

    rows = processor.drain()
    assert len(rows) == 2
    boxes = [t.box for t in processor._tracker.tracks]
    # Largest first, each overlapping its pasted face.
    assert iou(boxes[0], truth[0]) > 0.5 and iou(boxes[1], truth[1]) > 0.5
    assert annotated.shape == frame.shape and green_pixels(frame) == 0
    # Box and label drawn around each face in its own colour, nothing drawn far from them.
    for (x, y, w, h), colour in zip(boxes, FACE_COLOURS):
        assert green_pixels(annotated[max(0, y - 40) : y + h + 2, x - 2 : x + w + 2], colour) > 2 * (w + h)
    assert drawn_pixels(annotated[:, 200:330]) == 0
    assert processor.latest is not None and processor.latest.box == boxes[0]
    assert processor.stats.faces == 2


def test_the_panel_reads_one_snapshot_of_the_frame_in_the_video_and_nothing_after_a_stop(small_classifier, detector):
    clock = [100.0]
    processor = LiveProcessor(
        small_classifier, detector, LiveSettings(smoothing=0, min_face=60, detect_every=1), clock=lambda: clock[0]
    )
    assert processor.current_view() is None  # nothing streamed yet: the panel shows no numbers
    processor.process(face_frame([(340, 90, 200), (60, 260, 120)]))
    view = processor.current_view()
    assert len(view.faces) == 2 and view.frame_ms > 0 and view.latest.label == view.faces[0].label
    assert view.faces[0].box == processor._tracker.tracks[0].box  # the boxes drawn on the frame
    clock[0] += 5.0  # frames stopped coming (the camera stopped): the last numbers are not shown
    assert processor.current_view() is None
    clock[0] -= 5.0
    processor.clear_view()
    assert processor.current_view() is None


def test_a_model_of_three_classes_is_labelled_with_its_own_everywhere(detector):
    """Overlay, panel, timeline rows and CSV name the model's classes, not FER2013's; a model of
    three outputs that names none is refused in one line that says how to name them."""
    classes = ("calm", "joy", "shock")
    model = build_model("cnn", num_classes=3, filters=(8, 16, 16), dense_units=16)
    processor = LiveProcessor(Classifier(model, classes=classes), detector, LiveSettings(smoothing=0, min_face=60))
    processor.process(face_frame([(340, 90, 200)]))
    view = processor.current_view()
    assert view.latest.classes == classes and view.latest.label in classes
    timeline = Timeline(classes)
    timeline.extend(processor.drain())
    table = pd.read_csv(io.BytesIO(timeline.to_csv()))
    assert tuple(table.columns) == ("time", "face", "cut", "label", *classes, "model")
    assert set(table["label"]) <= set(classes)
    unnamed = LiveProcessor(Classifier(model), detector, LiveSettings(smoothing=0, min_face=60))
    with pytest.raises(FerError, match=r"outputs 3 probabilities and nothing names its classes; put a config.json"):
        unnamed.process(face_frame([(340, 90, 200)]))


def test_no_face_no_rows(small_classifier, detector):
    processor = LiveProcessor(small_classifier, detector)
    annotated = processor.process(face_frame([]))
    assert processor.drain() == [] and processor.latest is None and green_pixels(annotated) == 0


def test_boxes_follow_a_moving_face_between_detections(small_classifier, detector):
    processor = LiveProcessor(small_classifier, detector, LiveSettings(detect_every=5, min_face=60))
    ids = set()
    for step in range(15):
        x = 100 + 12 * step  # 12 px a frame: the tracker, not a stale box, must keep up
        processor.process(face_frame([(x, 120, 180)], seed=step))
        (track,) = processor._tracker.tracks
        ids.add(track.track_id)
        assert iou(track.box, (x, 120, 180, 180)) > 0.6, (step, track.box)
    assert ids == {1}  # one face, one identity across detections


def test_detection_runs_every_n_frames(small_classifier):
    class CountingDetector(HaarDetector):
        calls = 0

        def detect(self, *args, **kwargs):
            CountingDetector.calls += 1
            return super().detect(*args, **kwargs)

    processor = LiveProcessor(small_classifier, CountingDetector(), LiveSettings(detect_every=4))
    for step in range(12):
        processor.process(face_frame([(200, 100, 160)], seed=step))
    assert CountingDetector.calls == 3


def test_smoothing_is_an_exponential_moving_average(detector):
    a, b = np.eye(7)[3], np.eye(7)[0]
    processor = LiveProcessor(SequenceClassifier([a, b]), detector, LiveSettings(smoothing=0.5, detect_every=1))
    frame = face_frame([(200, 100, 180)])
    for _ in range(3):
        processor.process(frame)
    got = np.array([row[4:] for row in processor.drain()])
    expected = [a, 0.5 * a + 0.5 * b, 0.5 * (0.5 * a + 0.5 * b) + 0.5 * a]
    np.testing.assert_allclose(got, expected, atol=1e-6)

    processor.configure(settings=LiveSettings(smoothing=0, detect_every=1))
    processor.process(frame)
    np.testing.assert_allclose(processor.drain()[0][4:], b, atol=1e-6)  # off: the raw output


def test_timeline_rows_queue_and_csv(small_classifier, detector):
    clock = iter(np.arange(1_800_000_000.0, 1_800_000_100.0, 0.5))
    processor = LiveProcessor(
        small_classifier, detector, LiveSettings(detect_every=2), queue_size=6, clock=lambda: next(clock)
    )
    for step in range(10):
        processor.process(face_frame([(200, 100, 180)], seed=step), skipped=1)
    rows = processor.drain()
    # Bounded: the page missed 4 rows, the newest 6 are kept, and the video thread never waited.
    assert len(rows) == 6 and processor.stats.rows_dropped == 4
    assert [r[0] for r in rows] == [1_800_000_000.0 + 0.5 * i for i in range(4, 10)]
    assert processor.stats.frames == 10 and processor.stats.skipped == 10

    timeline = Timeline(CLASS_NAMES)
    timeline.extend(rows)
    recent = timeline.frame(last_seconds=1.0)
    assert len(recent) == 3  # rows at t-1.0, t-0.5 and t
    table = pd.read_csv(io.BytesIO(timeline.to_csv()))
    assert tuple(table.columns) == ("time", "face", "cut", "label", *CLASS_NAMES, "model")
    assert len(table) == 6 and set(table["face"]) == {1}
    np.testing.assert_allclose(table[list(CLASS_NAMES)].sum(axis=1), 1.0, atol=1e-4)
    assert (table["label"] == [CLASS_NAMES[i] for i in table[list(CLASS_NAMES)].to_numpy().argmax(axis=1)]).all()
    assert table["time"][0] == "2027-01-15T08:00:02.000+00:00"  # the first kept row, ISO 8601 UTC


@pytest.mark.parametrize(
    "settings",
    [LiveSettings(smoothing=1.0), LiveSettings(smoothing=-0.1), LiveSettings(min_face=5), LiveSettings(detect_every=0)],
)
def test_bad_settings_are_refused(settings):
    with pytest.raises(FerError):
        settings.validate()


def test_fps_overlay_only_when_asked(small_classifier, detector):
    frame = face_frame([])
    with_fps = LiveProcessor(small_classifier, detector, LiveSettings(show_fps=True)).process(frame)
    without = LiveProcessor(small_classifier, detector, LiveSettings(show_fps=False)).process(frame)
    assert np.array_equal(without, frame)
    assert (with_fps[:30, :200] != frame[:30, :200]).any()


@pytest.fixture(scope="module")
def attention_classifier():
    """The shipped attention_cnn on ONNX Runtime: its attention map is a second output of the pass."""
    from fer_core.artifacts import load_model
    from fer_core.paths import PROJECT_ROOT

    classifier = Classifier(load_model(PROJECT_ROOT / "trained" / "attention_cnn"))
    assert classifier.gives_attention
    return classifier


def box_mask(shape, faces) -> np.ndarray:
    inside = np.zeros(shape[:2], bool)
    for face in faces:
        x, y, w, h = face.box
        inside[max(0, y) : y + h, max(0, x) : x + w] = True
    return inside


def test_where_it_looks_draws_inside_the_boxes_and_off_restores_the_plain_frame(attention_classifier, detector):
    """With the overlay on, the frame differs from the plain one inside the faces' boxes only
    (the same faces, the same labels); turned off, it is the plain frame byte for byte."""
    settings = LiveSettings(smoothing=0, min_face=60, show_fps=False)
    plain = LiveProcessor(attention_classifier, detector, settings)
    looking = LiveProcessor(
        attention_classifier, detector, LiveSettings(smoothing=0, min_face=60, show_fps=False, looks=True)
    )
    for k in range(6):
        if k == 3:
            looking.configure(settings=settings)
        frame = face_frame([(300 + 4 * k, 90, 200), (60, 260, 120)], seed=k)
        a, b = plain.process(frame), looking.process(frame)
        assert [f.probabilities for f in plain.view.faces] == [f.probabilities for f in looking.view.faces]
        if k < 3:
            assert looking.view.look_kind == "attention" and looking.view.look_age_s < 1.0
            changed = np.any(a != b, axis=-1)
            assert changed.sum() > 5000 and not (changed & ~box_mask(a.shape, looking.view.faces)).any()
        else:
            assert looking.view.look_kind is None and np.array_equal(a, b)


def test_an_attention_models_map_is_not_its_gradcam(attention_classifier):
    """The overlay's maps come from the model: attention_cnn's attention (a forward output)
    and its Grad-CAM (a backward pass) of the same face are different maps."""
    import cv2

    from fer_core.inference.looks import LookMaps
    from helpers import synthetic_face

    face = synthetic_face(3, 0)[None]
    attention = LookMaps(attention_classifier)
    gradcam = LookMaps(attention_classifier, kind="gradcam", background=False)
    assert (attention.kind, gradcam.kind) == ("attention", "gradcam")
    np.testing.assert_array_equal(attention.classify(face, [7]), gradcam.classify(face, [7]))
    [(attended, _)], [(explained, _)] = attention.maps([7]), gradcam.maps([7])
    assert attended.shape == (12, 12) and explained.shape == (48, 48)
    attended = cv2.resize(attended, (48, 48), interpolation=cv2.INTER_CUBIC)
    assert np.corrcoef(attended.ravel(), explained.ravel())[0, 1] < 0.9
    assert np.abs(attended - explained).mean() > 0.05


def test_gradcam_maps_come_from_a_worker_and_follow_their_faces(small_classifier, detector):
    """A model without attention: Grad-CAM on the worker thread, off the frame path; a face gets
    its map within a few frames and keeps it between refreshes; a face gone loses it."""
    import time

    settings = LiveSettings(smoothing=0, min_face=60, detect_every=1, looks=True)
    processor = LiveProcessor(small_classifier, detector, settings)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        processor.process(face_frame([(300, 90, 200)]))
        if processor.view.look_age_s is not None:
            break
        time.sleep(0.05)
    assert processor.view.look_kind == "gradcam" and processor.view.look_age_s is not None
    looks = processor._looks
    assert looks.maps_made >= 1 and looks.maps(list(looks._maps))[0][0].shape == (48, 48)
    for _ in range(4):  # the face leaves: its map goes with its track
        processor.process(face_frame([]))
    assert processor.view.look_age_s is None and not looks._maps
    processor.close()


def test_the_gradcam_worker_ends_when_idle_and_starts_again(small_classifier, monkeypatch):
    """No thread is left behind by a stream that stopped: the worker ends after WORKER_IDLE_S
    without a face to explain, and the next face starts another."""
    import time

    from fer_core.inference import looks as looks_module
    from helpers import synthetic_face

    monkeypatch.setattr(looks_module, "WORKER_IDLE_S", 0.2)
    maps = looks_module.LookMaps(small_classifier, refresh_s=0.0)
    for round_ in range(2):
        maps.classify(synthetic_face(3, round_)[None], [1])
        deadline = time.monotonic() + 20
        while maps.maps_made <= round_ and time.monotonic() < deadline:
            time.sleep(0.02)
        assert maps.maps_made == round_ + 1
        worker = maps._worker
        deadline = time.monotonic() + 10
        while maps._worker is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert maps._worker is None and not worker.is_alive()


@pytest.fixture(scope="module")
def retinaface():
    return make_detector("retinaface", live=True)


@pytest.fixture(scope="module")
def saved_small(tmp_path_factory):
    """A small untrained model saved as a bare file, and its classifier: the facade names the file."""
    model = build_model("cnn", num_classes=7, filters=(8, 16, 16), dense_units=16)
    path = tmp_path_factory.mktemp("live_model") / "small.keras"
    model.save(path)
    return path, Classifier(model)


def _rotated(frame: np.ndarray, degrees: float) -> np.ndarray:
    import cv2

    height, width = frame.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(frame, turn, (width, height), borderValue=(118, 118, 118))


@pytest.mark.parametrize(
    "case, faces, turn",
    [("upright", [(120, 60, 120)], 0), ("tilted", [(120, 60, 120)], 20), ("cut by the edge", [(-40, 60, 130)], 0)],
)
def test_live_faces_are_the_facades_faces(saved_small, retinaface, case, faces, turn):
    """One pipeline: a frame on Live's processor gives the facade's boxes, cut marks and
    probabilities (levelled on the eyes, a cut face completed), and its timeline row says cut."""
    from fer_core.detection_bench import photo_frame
    from fer_core.inference.faces import detection_crop
    from fer_core.inference.detectors import to_gray
    from fer_core.recognizer import Recognizer

    # 320 px wide: the tracker detects on the frame itself (its copy is 320 px on the longest side).
    frame_bgr = _rotated(photo_frame(faces, width=320, height=240), turn)
    path, classifier = saved_small
    processor = LiveProcessor(classifier, retinaface, LiveSettings(smoothing=0, min_face=30))
    processor.process(frame_bgr)
    live = list(processor.view.faces)
    facade = Recognizer(path, detector=retinaface, min_face=30, classifier=classifier)
    expected = facade.analyze(frame_bgr, bgr=True)
    assert len(live) == len(expected) == 1, case
    assert live[0].box == expected[0].box and live[0].cut == expected[0].cut == (case == "cut by the edge")
    np.testing.assert_allclose(live[0].vector, expected[0].vector, atol=1e-5)
    [row] = processor.drain()
    assert row[2] == live[0].cut
    if case == "tilted":  # levelled: the crop differs from the box cut out as it lies
        [track] = processor._tracker.tracks
        gray = to_gray(frame_bgr[..., ::-1])
        from fer_core.inference.faces import crop_face

        assert track.detection.eyes is not None
        assert not np.array_equal(detection_crop(gray, track.detection), crop_face(gray, track.box))


def test_switching_model_keeps_the_sessions_rows_each_named_by_its_model():
    """The CSV holds every row of the session: the first model's (three classes of its own), then
    the next one's (FER2013's), each row naming its model, each class a column."""
    classes = ("calm", "joy", "shock")
    timeline = Timeline(classes, model="lab")
    timeline.extend([(1_800_000_000.0, 1, False, "joy", 0.1, 0.8, 0.1)])
    timeline.use(CLASS_NAMES, "vgg_fer")
    timeline.extend([(1_800_000_001.0, 1, False, "happy", *np.eye(len(CLASS_NAMES))[CLASS_NAMES.index("happy")])])
    assert len(timeline) == 2 and timeline.classes == CLASS_NAMES and len(timeline.frame(last_seconds=60)) == 1
    table = pd.read_csv(io.BytesIO(timeline.to_csv()))
    assert list(table.columns) == ["time", "face", "cut", "label", *classes, *CLASS_NAMES, "model"]
    assert list(table["model"]) == ["lab", "vgg_fer"] and list(table["label"]) == ["joy", "happy"]
    assert table.loc[0, "joy"] == pytest.approx(0.8) and np.isnan(table.loc[0, "happy"])
    assert np.isnan(table.loc[1, "joy"]) and table.loc[1, "happy"] == 1.0
