"""fer_core.inference.video and `fer-core video`: stable face ids across frames, rows and summary,
the annotated MP4, a cancel, and every kind of bad file refused in one line."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from fer_core import CLASS_NAMES
from fer_core.errors import FerError
from fer_core.inference import Classifier, make_detector
from fer_core.inference.tracking import FaceTracks
from fer_core.inference.video import analyze, probe, row_columns
from fer_core.models import build_model
from helpers import assert_one_line_error, cli, moving_faces_video, run_cli

ROW_COLUMNS = row_columns(CLASS_NAMES)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return moving_faces_video(tmp_path_factory.mktemp("video") / "two_faces.mp4")


@pytest.fixture(scope="module")
def small_classifier():
    return Classifier(build_model("cnn", num_classes=7, filters=(8, 16, 16), dense_units=16))


def test_tracks_keep_their_ids_while_their_boxes_overlap():
    tracks = FaceTracks()
    assert tracks.update([(0, 0, 100, 100), (300, 0, 100, 100)]) == [1, 2]
    assert tracks.update([(310, 5, 100, 100), (10, 5, 100, 100)]) == [2, 1]  # order of detection does not matter
    assert tracks.update([(600, 300, 80, 80)]) == [3]  # somewhere else: someone new
    for _ in range(3):
        tracks.update([])
    assert tracks.update([(10, 5, 100, 100)]) == [4]  # gone too long: a new id


@pytest.mark.parametrize("detector", ["haar", "blazeface"])
def test_a_video_gives_each_face_one_id_rows_a_summary_and_an_annotated_mp4(clip, small_classifier, detector, tmp_path):
    import av

    output = tmp_path / "annotated.mp4"
    info = probe(clip)
    assert (info.width, info.height, info.frames) == (640, 480, 30) and info.fps == pytest.approx(10)
    result = analyze(clip, small_classifier, make_detector(detector), every=3, output=output, model_name="tiny")
    assert (result.frames_read, result.frames_analysed, result.cancelled) == (30, 10, False)
    rows = result.frame()
    assert list(rows.columns) == list(ROW_COLUMNS)
    assert set(rows["face"]) == {1, 2}  # two people, two ids, however often each is seen
    # Only analysed frames have rows; drawn faces are not always found (BlazeFace knows real ones).
    assert set(rows["frame"]) <= set(range(0, 30, 3)) and len(set(rows["frame"])) >= 8
    first = rows[rows["face"] == 1]
    assert (first["y"] < 150).all() and first["x"].is_monotonic_increasing  # face 1: the top one, moving right
    assert np.allclose(rows[list(CLASS_NAMES)].sum(axis=1), 1, atol=1e-4)
    assert (rows["model"] == "tiny").all() and (rows["detector"] == detector).all()
    summary = result.summary()
    assert list(summary["face"]) == [1, 2]
    assert np.allclose(summary[list(CLASS_NAMES)].sum(axis=1), 1)
    assert summary["frames"].sum() == len(rows)
    with av.open(str(output)) as written:
        frames = list(written.decode(video=0))
    assert len(frames) == 30 and (frames[0].width, frames[0].height) == (640, 480)
    assert result.to_csv().splitlines()[0] == ",".join(ROW_COLUMNS)


def test_a_cancel_stops_the_analysis_and_keeps_the_rows_so_far(clip, small_classifier):
    from fer_core.inference.video import VideoProgress

    cancel, progress = threading.Event(), VideoProgress()

    class CancellingAfterFiveFrames:
        name, reads_colour = "haar", False

        def __init__(self):
            self.inner = make_detector("haar")

        def detect(self, image, **kwargs):
            if progress.frames_done >= 5:
                cancel.set()
            return self.inner.detect(image, **kwargs)

    result = analyze(clip, small_classifier, CancellingAfterFiveFrames(), every=1, progress=progress, cancel=cancel)
    assert result.cancelled and 5 <= result.frames_read < 30 and len(result.rows) > 0
    assert 0 < progress.fraction < 1


def test_a_truncated_video_keeps_what_was_read(clip, small_classifier, tmp_path):
    cut = tmp_path / "cut.mp4"
    data = clip.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    try:
        result = analyze(cut, small_classifier, make_detector("haar"), every=1)
    except FerError as exc:  # an MP4 cut before its index cannot be opened at all: said in one line
        assert "cut.mp4" in str(exc) and "\n" not in str(exc)
    else:
        assert 0 < result.frames_read < 30


@pytest.mark.slow
def test_the_cli_writes_the_csv_and_the_video_and_prints_the_summary(clip, tiny_run, tmp_path):
    csv_file, mp4 = tmp_path / "rows.csv", tmp_path / "out.mp4"
    code, out, err = cli(
        "video", clip, "--model", tiny_run, "--detector", "haar", "--every", "5", "--csv", csv_file, "--output", mp4
    )
    assert code == 0, err
    assert "30 frames read, 6 analysed (every 5); 2 faces" in out and "face 1: in 6 analysed frames" in out
    assert csv_file.read_text().splitlines()[0] == ",".join(ROW_COLUMNS) and mp4.stat().st_size > 0
    code, out, err = cli("video", clip, "--model", tiny_run, "--detector", "haar", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["frames_analysed"] == 6 and {r["face"] for r in report["rows"]} == {1, 2}


def test_explain_draws_where_the_model_looks_inside_the_boxes_only(clip, tiny_run, tmp_path):
    """`fer-core video --explain`: the annotated video differs from the plain one inside the
    faces' boxes (the maps), and outside them only by the lossy codec's spreading of those changes."""
    import av
    import pandas as pd

    def frames(path):
        with av.open(str(path)) as video:
            return [f.to_ndarray(format="rgb24").astype(int) for f in video.decode(video=0)]

    runs = {}
    for name, extra in (("plain", []), ("explained", ["--explain"])):
        out, rows = tmp_path / f"{name}.mp4", tmp_path / f"{name}.csv"
        common = ("--model", tiny_run, "--detector", "haar", "--every", "1", "--csv", rows, "--output", out)
        code, text, err = cli("video", clip, *common, *extra)
        assert code == 0, err
        runs[name] = (frames(out), pd.read_csv(rows))
    assert "(with where the model looks)" in text
    (plain, rows), (explained, same_rows) = runs["plain"], runs["explained"]
    pd.testing.assert_frame_equal(rows, same_rows)  # the same faces and probabilities
    inside_changes, outside_changes = [], []
    for k, (a, b) in enumerate(zip(plain, explained)):
        inside = np.zeros(a.shape[:2], bool)
        near = np.zeros(a.shape[:2], bool)
        for x, y, w, h in rows[rows["frame"] == k][["x", "y", "w", "h"]].itertuples(index=False):
            inside[y : y + h, x : x + w] = True
            near[max(0, y - 16) : y + h + 16, max(0, x - 16) : x + w + 16] = True  # H.264's blocks
        change = np.abs(a - b).mean(axis=-1)
        inside_changes.append(change[inside].mean())
        outside_changes.append(change[~near].mean())
    # Inside: tens of grey levels on every frame (43 measured); outside: the encoder's rate control
    # moves a level or so (0.97 measured), far under a tenth of the inside's.
    assert min(inside_changes) > 10 and max(outside_changes) < 0.1 * min(inside_changes), (
        min(inside_changes),
        max(outside_changes),
    )


def _empty_mp4(path):
    """An MP4 with a video stream and no frame in it."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()  # the header, and then no frame at all
    return path


@pytest.mark.parametrize(
    "make, extra, fragment",
    [
        (lambda p: p.write_bytes(b""), [], "empty (0 bytes)"),
        (lambda p: p.write_bytes(np.random.default_rng(1).bytes(50_000)), [], "not a video"),
        (lambda p: p.write_text("just some text, not a film\n" * 100), [], "not a video"),
        (_empty_mp4, [], "holds no video frames"),
        (None, ["--max-minutes", "0.01"], "over the 0.01-minute limit"),
        (None, ["--max-mb", "0.001"], "over the 0.001 MiB limit"),
        (None, ["--every", "0"], "every must be a whole number of frames, 1-1000"),
        (None, ["--output", "out.avi"], "--output must name an .mp4 file"),
        (None, ["--explain"], "--explain draws into the annotated video: give --output"),
    ],
)
def test_bad_videos_are_refused_in_one_line(make, extra, fragment, clip, tiny_run, tmp_path):
    path = clip
    if make is not None:
        path = tmp_path / "bad.mp4"
        make(path)
    code, _out, err = run_cli("video", path, "--model", tiny_run, "--detector", "haar", *extra)
    assert_one_line_error(code, err, fragment)


def test_a_missing_file_is_refused_in_one_line(tmp_path):
    code, _out, err = run_cli("video", tmp_path / "nowhere.mp4")
    assert_one_line_error(code, err, "no such file")


def test_a_rows_face_is_found_again_as_the_model_saw_it(clip, small_classifier):
    """Explain from a moment: the face a row names, at its frame, is the crop the analysis
    classified (its probabilities again), found again by the same detector."""
    from fer_core.inference.video import face_at

    detector = make_detector("haar")
    result = analyze(clip, small_classifier, detector, every=3)
    row = result.frame().iloc[4]
    box = tuple(int(row[k]) for k in "xywh")
    crop = face_at(clip, int(row["frame"]), box, detector)
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    probabilities = small_classifier(crop[None])[0]
    assert np.allclose(probabilities, row[list(CLASS_NAMES)].to_numpy(dtype=float), atol=1e-4)
    assert face_at(clip, int(row["frame"]), box).shape == (48, 48)  # no detector: the box as it is
    with pytest.raises(FerError, match="two_faces.mp4: no frame 999"):
        face_at(clip, 999, box)
