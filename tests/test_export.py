"""`fer-core export`: ONNX and TFLite files of a shipped model, reloaded by onnxruntime (with no
fer_core in the process) and by the TFLite interpreter, compared with the model; their labels,
preprocessing and metadata; quantized files measured; bad requests refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from fer_core.export import export_model
from fer_core.paths import PROJECT_ROOT
from fer_core.recognizer import Recognizer
from helpers import assert_one_line_error, run_cli, synthetic_face

pytestmark = pytest.mark.slow

SHIPPED = PROJECT_ROOT / "trained" / "attention_cnn"

# What the README shows: an exported ONNX file run with onnxruntime and numpy alone.
ONNX_ALONE = """
import json, sys
import numpy as np, onnxruntime
from PIL import Image

session = onnxruntime.InferenceSession(sys.argv[1] + "/model.onnx")
meta = session.get_modelmeta().custom_metadata_map
classes = json.loads(meta["classes"])
face = np.asarray(Image.open(sys.argv[2]).convert("L").resize((48, 48)), dtype=np.float32)
probabilities = session.run(None, {session.get_inputs()[0].name: face[None, :, :, None]})[0][0]
print(json.dumps({"classes": classes, "probabilities": probabilities.tolist(),
                  "fer_core": "fer_core" in sys.modules}))
"""


# A program that follows preprocess.json alone (numpy, Pillow and onnxruntime; no fer_core, no
# OpenCV): the picture's grey levels, the detector's candidates made square, clipped or cut, the
# eyes levelled, the cut part filled, resized; the faces largest first, classified by the file.
REBUILD = """
import json, math, sys
import numpy as np, onnxruntime
from PIL import Image

folder, picture, candidates = sys.argv[1:4]
facts = json.load(open(folder + "/preprocess.json"))
rule, size = facts["face"], facts["input"]["shape"][1]
rgb = np.asarray(Image.open(picture).convert("RGB"), dtype=np.float64)
gray = np.rint(rgb @ np.array(rule["grayscale"]["weights_rgb"]))
height, width = gray.shape


def bilinear(image, xs, ys):  # the border replicated
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    at = lambda y, x: image[np.clip(y, 0, image.shape[0] - 1), np.clip(x, 0, image.shape[1] - 1)]
    return (at(y0, x0) * (1 - fx) * (1 - fy) + at(y0, x0 + 1) * fx * (1 - fy)
            + at(y0 + 1, x0) * (1 - fx) * fy + at(y0 + 1, x0 + 1) * fx * fy)


def area(n, m):  # (m, n): each output pixel's share of each input pixel it covers
    edges, pixels = np.arange(m + 1) * n / m, np.arange(n)[None]
    return (np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)).clip(0) * m / n


def resize(crop):
    h, w = crop.shape
    if min(h, w) >= size:
        return np.rint(area(h, size) @ crop @ area(w, size).T)
    xs, ys = (np.arange(size) + 0.5) * w / size - 0.5, (np.arange(size) + 0.5) * h / size - 0.5
    return np.rint(bilinear(crop, *np.meshgrid(xs, ys)))


faces = []
if max(height, width) <= rule["whole_image_max_side"]:
    faces.append((0, resize(gray)))
for found in json.load(open(candidates)):
    x0, y0, x1, y1 = found["corners"]
    side, cx, cy = max(x1 - x0, y1 - y0), (x0 + x1) / 2, (y0 + y1) / 2
    x, y, w, h = round(cx - side / 2), round(cy - side / 2), round(side), round(side)
    left, top, right, bottom = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
    if right - left < rule["min_inside_share"] * w or bottom - top < rule["min_inside_share"] * h:
        continue
    if min(right - left, bottom - top) < rule["min_face"]["default"]:
        continue
    cut = w - (right - left) > rule["cut_share"] * w or h - (bottom - top) > rule["cut_share"] * h
    bx, by, bw, bh = (x, y, w, h) if cut else (left, top, right - left, bottom - top)
    image = gray
    (rx, ry), (lx, ly) = found["landmarks"][:2]
    angle = math.atan2(ly - ry, lx - rx)
    if rule["level_eyes"]["enabled"] and abs(math.degrees(angle)) >= rule["level_eyes"]["skip_below_degrees"]:
        ox, oy = bx + bw / 2, by + bh / 2
        xs, ys = np.meshgrid(np.arange(width) - ox, np.arange(height) - oy)
        c, s = math.cos(angle), math.sin(angle)
        image = np.rint(bilinear(gray, ox + c * xs - s * ys, oy + s * xs + c * ys))
    inner = image[max(0, by):min(height, by + bh), max(0, bx):min(width, bx + bw)]
    missing = ((max(0, by) - by, by + bh - min(height, by + bh)), (max(0, bx) - bx, bx + bw - min(width, bx + bw)))
    crop = np.pad(inner, missing, mode=rule["cut_fill_numpy_pad_mode"]) if any(sum(missing, ())) else inner
    faces.append(((right - left) * (bottom - top), resize(crop)))
faces.sort(key=lambda face: -face[0])
session = onnxruntime.InferenceSession(folder + "/model.onnx")
batch = np.stack([crop for _, crop in faces]).astype(np.float32)[..., None]
print(json.dumps({"probabilities": session.run(None, {session.get_inputs()[0].name: batch})[0].tolist(),
                  "fer_core": "fer_core" in sys.modules, "cv2": "cv2" in sys.modules}))
"""


def rebuild_pictures(tmp_path):
    """Real faces (scikit-image's astronaut) as a photo, turned 12 degrees (levelled on the eyes),
    cut by the left edge, and small (grown to 48 px, not shrunk), each saved as a PNG."""
    from PIL import Image

    from fer_core.detection_bench import _picture

    astronaut = _picture("astronaut")
    small = np.full((400, 400, 3), 120, np.uint8)
    small[100:300, 100:300] = np.asarray(Image.fromarray(astronaut).resize((200, 200), Image.BOX))
    turned = np.asarray(Image.fromarray(astronaut).rotate(12, resample=Image.BILINEAR, fillcolor=(120, 120, 120)))
    pictures = {"photo": astronaut, "turned": turned, "cut": np.ascontiguousarray(astronaut[:, 205:]), "small": small}
    for name, picture in pictures.items():
        Image.fromarray(picture).save(tmp_path / f"{name}.png")
    return pictures


@pytest.fixture(scope="module")
def onnx_export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export") / "attention_cnn-onnx"
    return folder, export_model(SHIPPED, "onnx", output=folder)


def test_an_onnx_file_runs_with_onnxruntime_alone_and_gives_the_facades_probabilities(onnx_export, tmp_path):
    from PIL import Image

    folder, report = onnx_export
    face_file = tmp_path / "face.png"
    Image.fromarray(synthetic_face(3, 1)).save(face_file)
    done = subprocess.run(
        [sys.executable, "-c", ONNX_ALONE, str(folder), str(face_file)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    alone = json.loads(done.stdout)
    assert alone["fer_core"] is False
    [face] = Recognizer(SHIPPED).analyze(face_file)  # a 48x48 crop: classified whole, as the script does
    assert alone["classes"] == list(face.probabilities)
    assert np.allclose(alone["probabilities"], list(face.probabilities.values()), atol=1e-4)
    assert report["check"]["max_abs_difference"] < 1e-4 and report["check"]["top1_agreement"] == 1.0


def test_preprocess_json_alone_rebuilds_the_facades_crops(onnx_export, tmp_path):
    """A program with numpy and Pillow, reading only preprocess.json, turns the detector's
    candidates into the crops the facade makes: the same faces, the same probabilities through the
    ONNX file, on a photo, a face cut by the edge and a face smaller than the input."""
    from fer_core.inference.detectors import RetinaFaceDetector

    folder, _report = onnx_export
    recognizer, detector = Recognizer(SHIPPED, detector="retinaface"), RetinaFaceDetector()
    for name, picture in rebuild_pictures(tmp_path).items():
        found = [
            {"corners": c.corners, "landmarks": c.landmarks, "score": c.score} for c in detector.candidates(picture)
        ]
        (tmp_path / f"{name}.json").write_text(json.dumps(found))
        done = subprocess.run(
            [sys.executable, "-c", REBUILD, str(folder), str(tmp_path / f"{name}.png"), str(tmp_path / f"{name}.json")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        rebuilt = json.loads(done.stdout)
        assert rebuilt["fer_core"] is False and rebuilt["cv2"] is False
        faces = recognizer.analyze(tmp_path / f"{name}.png")
        assert len(faces) == len(rebuilt["probabilities"]) == 1, name
        if name == "cut":
            assert faces[0].cut
        expected = np.array([list(face.probabilities.values()) for face in faces])
        # The same to rounding: OpenCV's fixed-point bilinear against floats (a rule left out
        # moves some picture's probabilities by 0.002 to 0.05).
        assert np.abs(expected - np.array(rebuilt["probabilities"])).max() < 0.0015, name


def test_the_export_folder_says_how_to_feed_the_file(onnx_export):
    import onnx

    folder, report = onnx_export
    assert sorted(p.name for p in folder.iterdir()) == [
        "MODEL_CARD.md",
        "export.json",
        "labels.txt",
        "model.onnx",
        "preprocess.json",
    ]
    labels = (folder / "labels.txt").read_text().splitlines()
    facts = json.loads((folder / "preprocess.json").read_text())
    assert labels == facts["classes"] == report["classes"] and labels[3] == "happy"
    assert facts["input"]["name"] == "faces" and facts["input"]["shape"] == [None, 48, 48, 1]
    assert facts["input"]["range"] == [0, 255] and facts["face"]["resize"]["size"] == [48, 48]
    meta = {p.key: p.value for p in onnx.load(str(folder / "model.onnx")).metadata_props}
    assert json.loads(meta["classes"]) == labels and json.loads(meta["preprocess"])["input"]["dtype"] == "float32"
    assert not list(folder.parent.glob(".*partial"))  # written whole, then moved into place


@pytest.mark.parametrize("quantize", [None, "float16", "int8"])
def test_tflite_exports_reload_and_agree_with_the_model(quantize, tmp_path, folder_dataset):
    report = export_model(SHIPPED, "tflite", quantize=quantize, output=tmp_path / "out", data=folder_dataset)
    assert (tmp_path / "out" / "model.tflite").stat().st_size == report["bytes"] > 100_000
    from fer_core.inference.detectors import tflite_interpreter

    interpreter = tflite_interpreter(tmp_path / "out" / "model.tflite")
    assert list(interpreter.get_input_details()[0]["shape_signature"]) == [-1, 48, 48, 1]
    # The labels travel inside the file too, in its metadata, with the preprocessing.
    from fer_core.export import tflite_metadata

    inside = tflite_metadata(tmp_path / "out" / "model.tflite")
    labels = (tmp_path / "out" / "labels.txt").read_text().splitlines()
    assert json.loads(inside["classes"]) == labels == report["classes"]
    assert json.loads(inside["preprocess"]) == json.loads((tmp_path / "out" / "preprocess.json").read_text())
    check = report["check"]
    bound = 1e-4 if quantize is None else 0.1
    assert check["max_abs_difference"] < bound and check["source"] == "PublicTest faces"
    measured = report["accuracy"]
    assert measured["split"] == "PublicTest" and measured["n"] == check["faces"]
    assert abs(measured["export"] - measured["keras"]) <= (0 if quantize is None else 0.1)


def test_an_int8_onnx_file_is_smaller_and_measured(tmp_path, folder_dataset):
    plain = export_model(SHIPPED, "onnx", output=tmp_path / "plain")
    small = export_model(SHIPPED, "onnx", quantize="int8", output=tmp_path / "int8", data=folder_dataset)
    assert small["bytes"] < plain["bytes"] / 3
    assert small["check"]["top1_agreement"] >= 0.8 and "accuracy" in small


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["attention_cnn", "--format", "onnx"], "no model 'attention_cnn'"),  # this test's trained/ is empty
        ([str(SHIPPED), "--format", "onnx", "--data", "/no/such/data"], "/no/such/data"),
    ],
)
def test_bad_exports_are_one_line(arguments, message, tmp_path):
    code, _out, err = run_cli("export", *arguments, "--output", tmp_path / "x")
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "x").exists()
