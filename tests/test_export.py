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
    assert "0-255" in facts["input"]["range"] and "grayscale" in facts["face"]["crop"]
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
