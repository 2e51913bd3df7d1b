"""A trained model as a file to run elsewhere: ONNX or TFLite, with what running it needs.

    fer-core export vgg_fer --format onnx [--quantize int8] [--output DIR] [--data FER2013]

The folder written holds the model file, `labels.txt` (one class a line, in output order),
`preprocess.json` (the input's name, shape and dtype, where the scaling happens, and every rule
that finds, levels and crops a face, as fields a program can follow) and the model card. For ONNX the same facts are in the file's
`metadata_props`, and for TFLite in the model's metadata entries (`tflite_metadata` reads them),
so the file alone is enough. Every export is checked against the Keras model it
came from on real faces (the dataset's test split with `--data`, else drawn faces, said so): the
largest probability difference and the top-1 agreement; with `--data` both files' accuracy on
that split is measured too, which is what a quantized file must be judged by.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from fer_core import IMAGE_SIZE
from fer_core.errors import FerError

FORMATS = ("onnx", "tflite")
QUANTIZE = ("int8", "float16")
INPUT_NAME = "faces"
CHECK_FACES = 512  # faces the export is compared on against the Keras model


def preprocessing(classes, model_name: str) -> dict:
    """What a caller must do to an image before the file sees it, and what comes out: every rule
    as fields a program can follow (made from the constants the code uses), in the order applied.
    tests/test_export.py rebuilds the crops from these fields alone, with numpy and Pillow."""
    from fer_core.inference.detectors import DEFAULT_DETECTOR
    from fer_core.inference.detectors.common import CUT_SHARE, MIN_INSIDE_SHARE
    from fer_core.inference.faces import ALIGN_EYES, CUT_FILL, FACE_CROP_MAX_SIDE, LEVEL_MIN_DEGREES
    from fer_core.inference.options import DEFAULT_MIN_FACE

    return {
        "model": model_name,
        "input": {
            "name": INPUT_NAME,
            "shape": [None, IMAGE_SIZE, IMAGE_SIZE, 1],
            "dtype": "float32",
            "layout": "NHWC",
            "channels": "grayscale",
            "range": [0, 255],
            "scaling": "inside the model (a Rescaling layer to [0, 1]): feed the 0-255 pixel values",
        },
        "output": {"shape": [None, len(classes)], "kind": "softmax probabilities", "order": "classes"},
        "classes": list(classes),
        "face": {
            # 1. The picture as grey levels.
            "grayscale": {"weights_rgb": [0.299, 0.587, 0.114], "round": "nearest"},
            # 2. A picture no longer than this on its longer side is a face crop: classified whole.
            "whole_image_max_side": FACE_CROP_MAX_SIDE,
            # 3. Otherwise the detector's faces, each a box (x0, y0, x1, y1) and the eyes' centres.
            "detector": DEFAULT_DETECTOR,
            "detector_gives": ["corners x0 y0 x1 y1", "right eye (x, y)", "left eye (x, y)", "score"],
            # 4. The box made square on its centre, its side the longer one; x, y, side rounded.
            "square_box": True,
            # 5. Clipped to the picture; dropped when less than this share of its width or height
            # lies inside; "cut" when more than cut_share does not (then the whole box is cropped
            # and the part outside made up by cut_fill), else the clipped box is cropped.
            "min_inside_share": MIN_INSIDE_SHARE,
            "cut_share": CUT_SHARE,
            "min_face": {"default": DEFAULT_MIN_FACE, "applies_to": "the clipped box's shorter side"},
            # 6. The picture turned about the box's centre so the eyes are level: the point (x, y)
            # takes the grey at (cx + cos a (x - cx) - sin a (y - cy), cy + sin a (x - cx) +
            # cos a (y - cy)), a = atan2(left_y - right_y, left_x - right_x).
            "level_eyes": {
                "enabled": bool(ALIGN_EYES),
                "skip_below_degrees": LEVEL_MIN_DEGREES,
                "about": "box centre",
                "interpolation": "bilinear",
                "border": "replicate",
            },
            # 7. The box's pixels; a cut face's outside part mirrored from its inside.
            "cut_fill": CUT_FILL,
            "cut_fill_numpy_pad_mode": {
                "mirror": "symmetric",
                "edge": "edge",
                "mean": "constant",
                "black": "constant",
            }.get(CUT_FILL),
            # 8. Resized to the input's side: area averaging when shrinking (each output pixel the
            # mean of the input area it covers), bilinear with half-pixel centres when growing.
            "resize": {
                "size": [IMAGE_SIZE, IMAGE_SIZE],
                "shrink": "area",
                "grow": "bilinear",
                "shrink_when": "the crop's shorter side is at least the size",
                "round": "nearest",
            },
        },
    }


def export_model(model, format: str, quantize: str | None = None, output=None, data=None) -> dict:
    """Write `model` (a trained model's name, run folder or .keras file) as `format` into
    `output` (default exports/<name>-<format>[-<quantize>]) and check it.

    Returns: what was written and measured (model_file, bytes, check, and accuracy with `data`).

    Raises:
        FerError: an unknown format or quantization, a model that does not load, an export that
        fails or disagrees with the model.
    """
    from fer_core.artifacts import load_model, resolve_model
    from fer_core.artifacts import model_classes

    if format not in FORMATS:
        raise FerError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise FerError(f"unknown quantization {quantize!r}; choose one of {', '.join(QUANTIZE)}")
    ref = resolve_model(model)
    classes = model_classes(ref)
    folder = Path(output) if output else Path("exports") / "-".join(filter(None, (ref.name, format, quantize)))
    if folder.exists() and not folder.is_dir():
        raise FerError(f"{folder}: exists and is not a folder")
    dataset = _test_faces(data) if data else None
    keras_model = load_model(ref)
    faces, source = (dataset[0][:CHECK_FACES], f"{dataset[2]} faces") if dataset else (_drawn_faces(), "drawn faces")

    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model_file = staging / f"model.{format}"
        facts = preprocessing(classes, ref.name)
        if format == "onnx":
            _write_onnx(keras_model, model_file, quantize, facts)
            run, facts["input"]["name"] = _onnx_runner(model_file)
        else:
            _write_tflite(keras_model, model_file, quantize)
            run, facts["input"]["name"] = _tflite_runner(model_file)
        facts["format"], facts["quantize"] = format, quantize or "none"
        if format == "tflite":
            _add_tflite_metadata(model_file, {"classes": json.dumps(list(classes)), "preprocess": json.dumps(facts)})
        (staging / "labels.txt").write_text("".join(f"{name}\n" for name in classes))
        (staging / "preprocess.json").write_text(json.dumps(facts, indent=2) + "\n")
        card = ref.folder / "MODEL_CARD.md" if ref.folder else None
        if card is not None and card.is_file():
            shutil.copy2(card, staging / "MODEL_CARD.md")
        expected, got = _keras_probabilities(keras_model, faces), run(faces)
        check = {
            "faces": int(len(faces)),
            "source": source,
            "max_abs_difference": float(np.abs(expected - got).max()),
            "top1_agreement": float(np.mean(expected.argmax(1) == got.argmax(1))),
        }
        # An unquantized file computes what the model does, up to float rounding; a quantized one
        # may move probabilities, and its accuracy (with --data) says by how much that matters.
        if quantize is None and not check["max_abs_difference"] < 1e-3:
            raise FerError(f"the {format} file disagrees with the model by {check['max_abs_difference']:.3g}")
        report = {
            "model": ref.name,
            "format": format,
            "quantize": quantize or "none",
            "folder": str(folder),
            "model_file": str(folder / model_file.name),
            "bytes": model_file.stat().st_size,
            "classes": list(classes),
            "check": check,
        }
        if dataset is not None:
            images, labels, split = dataset
            report["accuracy"] = {
                "split": split,
                "n": int(len(labels)),
                "export": float(np.mean(run(images).argmax(1) == labels)),
                "keras": float(np.mean(_keras_probabilities(keras_model, images).argmax(1) == labels)),
            }
        (staging / "export.json").write_text(json.dumps(report, indent=2) + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_onnx(model, path: Path, quantize: str | None, facts: dict) -> None:
    import onnx

    from fer_core.inference.onnx_graph import UnsupportedLayer, keras_to_onnx

    try:
        graph = keras_to_onnx(model)
    except UnsupportedLayer as exc:
        raise FerError(f"the ONNX writer does not know a layer of this model ({exc})") from None
    graph.graph.input[0].name, old_name = INPUT_NAME, graph.graph.input[0].name
    for node in graph.graph.node:
        node.input[:] = [INPUT_NAME if name == old_name else name for name in node.input]
    for value in (graph.graph.input[0], graph.graph.output[0]):
        if value.type.tensor_type.shape.dim:
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.checker.check_model(graph)
    if quantize == "float16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # float32 in and out, as the model's; the Casts it adds come last in the node list, which
        # ONNX Runtime sorts itself (onnx's checker would refuse the order, so it checks before).
        graph = convert_float_to_float16(graph, keep_io_types=True)
    del graph.metadata_props[:]
    for key, value in {
        "classes": json.dumps(facts["classes"]),
        "preprocess": json.dumps(facts),
        "model": facts["model"],
        "producer": "fer-core export",
    }.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        plain = path.with_suffix(".float32.onnx")
        onnx.save(graph, plain)
        logging.disable(logging.WARNING)  # its advice to pre-process goes to the root logger
        try:
            quantize_dynamic(str(plain), str(path), weight_type=QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
            plain.unlink(missing_ok=True)
        quantized = onnx.load(str(path))
        del quantized.metadata_props[:]
        quantized.metadata_props.extend(graph.metadata_props)
        onnx.save(quantized, path)
    else:
        onnx.save(graph, path)


def _onnx_runner(path: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(faces: np.ndarray) -> np.ndarray:
        x = _as_input(faces)
        return np.concatenate([session.run(None, {name: x[i : i + 256]})[0] for i in range(0, len(x), 256)])

    return run, name


def _write_tflite(model, path: Path, quantize: str | None) -> None:
    from fer_core.backend import load_keras

    if load_keras().backend.backend() != "tensorflow":
        raise FerError("TFLite export runs on the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    import tempfile

    import tensorflow as tf

    # Through a SavedModel: a converter fed the concrete function of a Keras 3 model loses its
    # variables (a 40-KB file answering NaN).
    with tempfile.TemporaryDirectory(prefix="fer-export-") as folder:
        model.export(f"{folder}/saved", format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(f"{folder}/saved")
        _convert(converter, path, quantize)


def _convert(converter, path: Path, quantize: str | None) -> None:
    import tensorflow as tf

    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        path.write_bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - the converter raises many types; one line is enough
        raise FerError(f"the TFLite converter failed: {' '.join(str(exc).split())[:200]}") from None


def _add_tflite_metadata(path: Path, entries: dict[str, str]) -> None:
    """Each entry as a named buffer in the TFLite model's `metadata` (the flatbuffer schema's own
    field for it), rewritten in place. Not the TFLite Support library's ModelMetadata: that
    package is no longer maintained and pins old dependencies; any flatbuffer reader of the TFLite
    schema reads these."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() not in entries]
    for name, text in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(text.encode(), dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    from fer_core.fileio import write_atomic

    write_atomic(path, lambda temporary: Path(temporary).write_bytes(builder.Output()))


def tflite_metadata(path) -> dict[str, str]:
    """The text metadata entries of a TFLite file (an export's `classes` and `preprocess`, JSON;
    the converter's own binary entries left out)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(Path(path).read_bytes(), 0))
    entries = {}
    for entry in model.metadata or []:
        try:
            entries[entry.name.decode()] = bytes(model.buffers[entry.buffer].data).decode("utf-8")
        except UnicodeDecodeError:
            continue
    return entries


def _tflite_runner(path: Path):
    from fer_core.inference.detectors import tflite_interpreter

    interpreter = tflite_interpreter(path)
    input_name = interpreter.get_input_details()[0]["name"]
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    shape = [None]

    def run(faces: np.ndarray) -> np.ndarray:
        x, out = _as_input(faces), []
        for start in range(0, len(x), 256):
            chunk = x[start : start + 256]
            if shape[0] != len(chunk):
                interpreter.resize_tensor_input(input_index, list(chunk.shape))
                interpreter.allocate_tensors()
                shape[0] = len(chunk)
            interpreter.set_tensor(input_index, chunk)
            interpreter.invoke()
            out.append(interpreter.get_tensor(output_index).copy())
        return np.concatenate(out)

    return run, input_name


def _as_input(faces: np.ndarray) -> np.ndarray:
    x = np.asarray(faces, dtype=np.float32)
    return np.ascontiguousarray(x[..., None] if x.ndim == 3 else x)


def _keras_probabilities(model, faces: np.ndarray) -> np.ndarray:
    from fer_core.inference import Classifier

    return Classifier([model], engine="keras")(faces)


def _test_faces(data) -> tuple[np.ndarray, np.ndarray, str]:
    """The faces, labels and name of the dataset's reported split (PublicTest for FER2013's folder)."""
    from fer_core.data import load_dataset
    from fer_core.data.dataset import default_evaluation_split

    dataset = load_dataset(data)
    split = default_evaluation_split(dataset)
    part = dataset.split(split) if split else dataset
    return part.images, part.labels, split or "all"


def _drawn_faces() -> np.ndarray:
    """Without data: faces drawn by fer_core.data.synthetic (eyes, brows, a mouth open or not)."""
    from fer_core.data.synthetic import drawn_face
    from fer_core.inference.faces import to_face

    return np.stack([to_face(drawn_face(seed=k, mouth_open=(k % 4) / 3)) for k in range(64)])
