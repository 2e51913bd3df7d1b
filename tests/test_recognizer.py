"""The Python facade (`from fer_core import Recognizer`) on real files and a shipped model: every
kind of input gives the same faces, batches equal single calls, bad input is one line, and the
CLI's predict goes through it (the same probabilities)."""

from __future__ import annotations

import re
import io
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fer_core.errors import FerError
from fer_core.paths import PROJECT_ROOT
from fer_core.recognizer import Recognizer, model_classes, results_frame, results_table
from helpers import cli, moving_faces_video

SHIPPED = PROJECT_ROOT / "trained" / "attention_cnn"  # the smallest shipped model: quick to load


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A real photo with one face (scikit-image's astronaut) as a JPEG file, and a two-person
    'group photo' made of it side by side."""
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    rgb = skimage.data.astronaut()
    Image.fromarray(rgb).save(folder / "astronaut.jpg", quality=95)
    group = np.concatenate([rgb, rgb[:, ::-1]], axis=1)
    Image.fromarray(group).save(folder / "group.png")
    return folder


@pytest.fixture(scope="module")
def recognizer():
    return Recognizer(SHIPPED)


def test_importing_and_making_a_recognizer_loads_no_keras():
    script = (
        "import sys; from fer_core import Recognizer; r = Recognizer(sys.argv[1]); "
        "print(r.model_name, 'keras' in sys.modules, 'tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(SHIPPED)], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["attention_cnn", "False", "False"], done.stderr


def test_a_path_bytes_a_pil_image_and_arrays_give_the_same_face(recognizer, photo):
    path = photo / "astronaut.jpg"
    data = path.read_bytes()
    rgb = np.asarray(Image.open(path).convert("RGB"))
    answers = [
        recognizer.analyze(path),
        recognizer.analyze(str(path)),
        recognizer.analyze(data),
        recognizer.analyze(Image.open(io.BytesIO(data))),
        recognizer.analyze(rgb),
        recognizer.analyze(np.ascontiguousarray(rgb[..., ::-1]), bgr=True),  # an OpenCV frame
        recognizer.analyze(rgb.astype(np.float32)),
    ]
    first = answers[0]
    assert len(first) == 1
    face = first[0]
    assert face.label == "happy" and face.confidence > 0.5  # the astronaut smiles
    assert set(face.probabilities) == set(model_classes(recognizer.refs[0]))
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
    for other in answers[1:]:
        assert len(other) == 1 and other[0].box == face.box
        assert np.allclose(list(other[0].probabilities.values()), list(face.probabilities.values()), atol=1e-5)
    shape = face.to_dict()
    assert set(shape) == {"box", "detector_score", "cut", "label", "confidence", "probabilities"}
    assert shape["cut"] is False
    assert shape["label"] == face.label and shape["box"] == list(face.box)
    json.dumps(shape)  # plain JSON types only


def test_a_group_photo_gives_every_face_and_a_batch_equals_single_calls(recognizer, photo):
    group = recognizer.analyze(photo / "group.png")
    assert len(group) == 2
    assert group[0].box[0] < 512 <= group[1].box[0] or group[1].box[0] < 512 <= group[0].box[0]
    crop = np.asarray(Image.open(photo / "astronaut.jpg").convert("L").crop((170, 60, 290, 180)).resize((48, 48)))
    batch = recognizer.analyze_many([photo / "group.png", crop, photo / "astronaut.jpg"])
    singles = [
        recognizer.analyze(photo / "group.png"),
        recognizer.analyze(crop),
        recognizer.analyze(photo / "astronaut.jpg"),
    ]
    assert [len(faces) for faces in batch] == [2, 1, 1]
    assert batch[1][0].box == (0, 0, 48, 48)  # a 48x48 crop is the face itself
    for many, one in zip(batch, singles):
        for a, b in zip(many, one):
            assert a.box == b.box and np.allclose(
                list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5
            )


def test_bad_input_is_one_line_and_fails_only_its_own_image(recognizer, photo, tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(FerError, match="notes.jpg: not an image"):
        recognizer.analyze(tmp_path / "notes.jpg")
    with pytest.raises(FerError, match="no such file"):
        recognizer.analyze(tmp_path / "missing.png")
    with pytest.raises(FerError, match="not an image: give a path"):
        recognizer.analyze(12345)
    with pytest.raises(FerError, match=r"\(H, W\) or \(H, W, 3\)"):
        recognizer.analyze(np.zeros((4, 4, 5), np.uint8))
    results = recognizer.results([b"\x89PNG broken", photo / "astronaut.jpg"], names=["broken.png", "ok.jpg"])
    assert results[0].error.startswith("broken.png:") and results[0].faces == []
    assert results[1].error is None and len(results[1].faces) == 1
    rows = results_table(results, recognizer.classes, {"model": recognizer.model_name})
    assert [row["file"] for row in rows] == ["broken.png", "ok.jpg"] and rows[0]["error"] and not rows[1]["error"]
    # In a CSV the boxes stay whole pixels beside a file with none (the CLI's and the page's alike).
    written = results_frame(results, recognizer.classes, {"model": recognizer.model_name}).to_csv(index=False)
    broken, ok = written.splitlines()[1:]
    assert broken.startswith("broken.png,0,,,,,") and re.match(r"ok\.jpg,1,\d+,\d+,\d+,\d+,False,", ok), ok


@pytest.mark.parametrize(
    "options, message",
    [
        ({"detector": "nope"}, "unknown detector 'nope'"),
        ({"tta": "sideways"}, "unknown TTA mode"),
        ({"min_face": 2}, "min_face must be"),
        ({"model": "no_such_model"}, "no model 'no_such_model'"),
    ],
)
def test_bad_options_are_refused_when_the_recognizer_is_made(options, message):
    with pytest.raises(FerError, match=message):
        Recognizer(**{"model": SHIPPED, **options})


def test_an_ensemble_of_models_with_other_classes_is_refused(tmp_path):
    other = tmp_path / "valence"
    shutil.copytree(SHIPPED, other, ignore=shutil.ignore_patterns("lineage"))
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "classes": ["negative", "neutral", "positive"]}))
    assert model_classes(Recognizer(other).refs[0]) == ("negative", "neutral", "positive")
    with pytest.raises(FerError, match="the same classes"):
        Recognizer([SHIPPED, other])


def test_analyze_video_returns_the_rows_fer_core_video_writes(recognizer, tmp_path):
    clip = moving_faces_video(tmp_path / "two.mp4", frames=12)
    rows = Recognizer(SHIPPED, detector="haar").analyze_video(clip, every=3)
    assert list(rows.columns[:9]) == ["time", "frame", "face", "x", "y", "w", "h", "cut", "label"]
    assert set(recognizer.classes) <= set(rows.columns) and set(rows["frame"]) <= {0, 3, 6, 9}
    assert (rows["model"] == "attention_cnn").all() and not rows.empty
    csv_file = tmp_path / "rows.csv"
    code, _out, err = cli("video", clip, "--model", SHIPPED, "--detector", "haar", "--every", "3", "--csv", csv_file)
    assert code == 0, err
    import pandas as pd

    written = pd.read_csv(csv_file)
    assert list(written.columns) == list(rows.columns) and len(written) == len(rows)


def test_cli_predict_json_is_the_facades_shape_and_numbers(recognizer, photo):
    code, out, err = cli("predict", photo / "group.png", "--model", SHIPPED, "--json")
    assert code == 0, err
    [entry] = json.loads(out)
    assert entry["model"] == "attention_cnn" and entry["error"] is None
    assert entry["faces"] == [face.to_dict() for face in recognizer.analyze(photo / "group.png")]


def test_a_face_cut_by_the_edge_is_found_marked_and_classified_from_its_mirrored_half(recognizer, photo):
    """A group photo whose third person is cut by the right edge through the middle of the face:
    all three found; the cut one's box ends at the edge and says so in the JSON, the table and
    the CLI's CSV; the astronaut's smile is still read from half a face."""
    import pandas as pd
    import skimage.data

    astronaut = skimage.data.astronaut()
    camera = np.repeat(skimage.data.camera()[..., None], 3, axis=2)
    group = np.hstack([astronaut, camera, astronaut[:, :230]])  # the edge through the third face
    path = photo / "cut_group.png"
    Image.fromarray(group).save(path)
    faces = recognizer.analyze(path)
    assert len(faces) == 3
    [cut] = [face for face in faces if face.cut]
    x, y, w, h = cut.box
    assert x > 1024 and x + w == group.shape[1]
    assert cut.to_dict()["cut"] is True and cut.label == "happy"
    assert [row["cut"] for row in results_table(recognizer.results([path]), recognizer.classes, {})].count(True) == 1
    code, _out, err = cli("predict", path, "--model", SHIPPED, "--csv", photo / "cut_group.csv")
    assert code == 0, err
    rows = pd.read_csv(photo / "cut_group.csv")
    assert sorted(rows["cut"]) == [False, False, True]


def test_the_services_face_schema_is_the_face_types_json():
    """One face shape: the service's pydantic `Face` holds exactly what `Face.to_dict` gives."""
    from fer_core.inference.faces import Face
    from fer_core.serve.schemas import Face as FaceSchema

    face = Face.of((1, 2, 30, 40), np.array([0.25, 0.75]), ("calm", "surprised"), score=0.5, cut=True)
    assert set(FaceSchema.model_fields) == set(face.to_dict())
    assert FaceSchema.model_validate(face.to_dict()).model_dump() == face.to_dict()
