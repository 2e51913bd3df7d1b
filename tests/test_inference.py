"""fer_core.inference: face crops, the compiled classifier, drawing, smoothing; upload expansion."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from helpers import model_params, synthetic_face
from fer_core import CLASS_NAMES, FerError
from fer_core.data.images import decode_grayscale, expand_uploads
from fer_core.inference import Classifier, Face, classify_image, crop_face, draw_faces
from fer_core.inference.detectors import HaarDetector
from fer_core.inference.live import Smoother
from fer_core.models import build_model, list_models


@pytest.fixture(scope="module")
def small_cnn():
    return build_model("cnn", num_classes=7, filters=(8, 16, 32), dense_units=16)


def png_bytes(image: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", image)[1].tobytes()


def test_classifier_matches_the_model_and_keeps_order(small_cnn):
    faces = np.stack([synthetic_face(i % 7, i) for i in range(11)])  # 11 pads to the 16 bucket
    probs = Classifier(small_cnn)(faces)
    expected = np.asarray(small_cnn(faces[..., None].astype(np.float32), training=False))
    assert probs.shape == (11, 7)
    assert np.abs(probs - expected).max() < 1e-4
    assert Classifier(small_cnn)(faces[:0]).shape == (0, 7)


@pytest.mark.parametrize("name", model_params(list_models()))
@pytest.mark.parametrize("engine", ["auto", "keras"])
def test_every_engine_gives_the_models_probabilities(name, engine):
    from helpers import SMALL

    model = build_model(name, num_classes=7, **SMALL[name])
    faces = np.random.default_rng(3).integers(0, 256, (5, 48, 48)).astype(np.uint8)
    classify = Classifier(model, engine=engine)
    expected = np.asarray(model(faces[..., None].astype(np.float32), training=False))
    assert np.abs(classify(faces) - expected).max() < 1e-4  # whichever engine "auto" settled on
    # "auto" takes ONNX Runtime through fer_core's own graph writer, which covers every registered model.
    assert classify.engines[0] == ("keras" if engine == "keras" else "onnx")


def test_onnx_engine_is_used_for_the_cnn_and_a_bad_cache_entry_falls_back():
    pytest.importorskip("onnxruntime")
    from fer_core.inference.onnx_engine import model_key, onnx_dir
    from fer_core.inference.onnx_graph import GRAPH_VERSION

    def cached(model, ext):  # written by fer_core.onnx_graph, not tf2onnx
        return onnx_dir() / f"{model_key(model)}.graph{GRAPH_VERSION}.{ext}"

    model = build_model("cnn", num_classes=7, filters=(8, 16, 16), dense_units=16)
    assert Classifier(model).engines == ["onnx"] and cached(model, "onnx").exists()  # written, checked, cached
    other = build_model("cnn", num_classes=7, filters=(8, 16, 16), dense_units=16)  # same shapes, other weights
    Classifier(other)
    # A stale or tampered cache entry: the first model's file now holds the second's graph.
    cached(other, "onnx").replace(cached(model, "onnx"))
    faces = np.random.default_rng(4).integers(0, 256, (3, 48, 48)).astype(np.uint8)
    fallback = Classifier(model)
    assert fallback.engines == ["keras"] and cached(model, "failed").exists()
    expected = np.asarray(model(faces[..., None].astype(np.float32), training=False))
    assert np.abs(fallback(faces) - expected).max() < 1e-4
    with pytest.raises(FerError, match="ONNX Runtime path is unavailable or inexact"):
        Classifier(model, engine="onnx")
    with pytest.raises(FerError, match="unknown inference engine"):
        Classifier(model, engine="tensorrt")


def test_the_onnx_cache_prefers_a_good_file_to_a_failure_marker_and_works_unwritable(tmp_path, monkeypatch, caplog):
    """A failure marker never outranks a good file beside it; a cache folder that cannot be
    written (here: a path through a regular file) still gives the ONNX path, made in memory,
    with one warning, and writes nothing."""
    pytest.importorskip("onnxruntime")
    from fer_core.inference import onnx_engine
    from fer_core.inference.onnx_graph import GRAPH_VERSION

    model = build_model("cnn", num_classes=7, filters=(8, 16, 16), dense_units=16)
    assert Classifier(model).engines == ["onnx"]
    stem = onnx_engine.onnx_dir() / f"{onnx_engine.model_key(model)}.graph{GRAPH_VERSION}"
    stem.with_suffix(".failed").write_text("MemoryError: once, while another worker converted\n")
    assert Classifier(model).engines == ["onnx"]

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FER_CACHE_DIR", str(blocker / "cache"))
    other = build_model("cnn", num_classes=7, filters=(8, 16, 16), dense_units=16)
    with caplog.at_level("WARNING", logger="fer_core.inference.onnx_engine"):
        assert Classifier(other).engines == ["onnx"]
        assert Classifier(other).engines == ["onnx"]
    warnings = [r.getMessage() for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1 and "made in memory" in warnings[0]
    assert blocker.read_text() == "not a folder"


def test_a_model_the_graph_writer_does_not_know_goes_through_tf2onnx():
    pytest.importorskip("onnxruntime")
    import keras

    from fer_core.backend import load_keras
    from fer_core.inference.onnx_engine import model_key, onnx_dir

    if load_keras().backend.backend() != "tensorflow":
        pytest.skip("tf2onnx converts TensorFlow graphs only")
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.LayerNormalization()(x)  # not a layer fer_core.onnx_graph writes
    outputs = keras.layers.Dense(7, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    classify = Classifier(model)
    faces = np.random.default_rng(5).integers(0, 256, (2, 48, 48)).astype(np.uint8)
    assert classify.engines == ["onnx"] and (onnx_dir() / f"{model_key(model)}.onnx").exists()
    assert np.abs(classify(faces) - np.asarray(model(faces[..., None].astype(np.float32)))).max() < 1e-4


def test_a_crash_in_the_graph_writer_costs_speed_not_the_prediction(monkeypatch):
    import fer_core.inference.onnx_graph

    def broken(model):
        raise RuntimeError("a bug in the writer")

    monkeypatch.setattr(fer_core.inference.onnx_graph, "keras_to_onnx", broken)
    model = build_model("cnn", num_classes=7, filters=(4, 8, 8), dense_units=8)
    classify = Classifier(model)  # tf2onnx where the backend has it, else the compiled call
    faces = np.random.default_rng(6).integers(0, 256, (2, 48, 48)).astype(np.uint8)
    assert np.abs(classify(faces) - np.asarray(model(faces[..., None].astype(np.float32)))).max() < 1e-4


def test_ensemble_classifier_is_the_mean(small_cnn):
    other = build_model("cnn", num_classes=7, filters=(4, 8, 8), dense_units=8)
    faces = np.stack([synthetic_face(1, i) for i in range(3)])
    both = Classifier([small_cnn, other])(faces)
    np.testing.assert_allclose(both, (Classifier(small_cnn)(faces) + Classifier(other)(faces)) / 2, atol=1e-6)


def test_a_face_crop_is_classified_whole(small_cnn):
    faces = classify_image(synthetic_face(3, 0), Classifier(small_cnn), HaarDetector())
    assert len(faces) == 1 and faces[0].box == (0, 0, 48, 48)
    as_dict = faces[0].to_dict()
    assert as_dict["label"] == max(as_dict["probabilities"], key=as_dict["probabilities"].get)
    assert sum(as_dict["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)


def test_no_face_in_a_plain_large_image(small_cnn):
    plain = np.full((300, 400), 128, np.uint8)
    assert classify_image(plain, Classifier(small_cnn), HaarDetector()) == []
    whole = classify_image(plain, Classifier(small_cnn), HaarDetector(), whole_image=True)
    assert whole[0].box == (0, 0, 400, 300)


def test_crop_and_draw():
    image = np.zeros((100, 120), np.uint8)
    image[10:60, 20:70] = 200
    crop = crop_face(image, (20, 10, 50, 50))
    assert crop.shape == (48, 48) and crop.min() == 200
    with pytest.raises(FerError, match="outside"):
        crop_face(image, (500, 500, 10, 10))
    probs = np.eye(7, dtype=np.float32)[3]
    drawn = draw_faces(image, [Face.of((20, 10, 50, 50), probs, CLASS_NAMES)], min_side=0)
    assert drawn.shape == (100, 120, 3)
    assert (drawn[60, 20:70] == (0, 200, 0)).all()  # the box's bottom edge
    assert draw_faces(image[:48, :48], [Face.of((0, 0, 48, 48), probs, CLASS_NAMES)]).shape == (
        336,
        336,
        3,
    )  # enlarged x7


def test_smoother_is_an_exponential_moving_average():
    smooth = Smoother(0.5)
    a, b = np.eye(7)[0], np.eye(7)[1]
    np.testing.assert_allclose(smooth(1, a), a)
    np.testing.assert_allclose(smooth(1, b), 0.5 * a + 0.5 * b)
    np.testing.assert_allclose(Smoother(0.0)(1, b), b)
    smooth.forget(set())
    np.testing.assert_allclose(smooth(1, b), b)
    with pytest.raises(FerError):
        Smoother(1.0)


def test_expand_uploads_reads_zips_in_memory_and_refuses_escapes():
    face = png_bytes(synthetic_face(2, 0))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/b/face.png", face)
        archive.writestr("../../evil.png", face)
        archive.writestr("/abs.png", face)
        archive.writestr("notes.txt", b"hello")
        archive.writestr("bad.jpg", b"not a jpeg")
    items = expand_uploads([("faces.zip", buffer.getvalue()), ("plain.png", face), ("broken.zip", b"PK\x03\x04junk")])
    by_name = {name: (data, error) for name, data, error in items}
    assert by_name["faces.zip/a/b/face.png"][0] == face
    assert "escapes" in by_name["faces.zip/../../evil.png"][1]
    assert "escapes" in by_name["faces.zip//abs.png"][1]
    assert by_name["plain.png"] == (face, None)
    assert "not a readable zip" in by_name["broken.zip"][1]
    with pytest.raises(FerError, match="bad.jpg"):
        decode_grayscale(by_name["faces.zip/bad.jpg"][0], name="faces.zip/bad.jpg")


def test_draw_faces_gives_rgb_for_display():
    image = np.zeros((100, 100), np.uint8)
    probs = np.eye(7)[3]
    bgr = draw_faces(image, [Face.of((20, 10, 50, 50), probs, CLASS_NAMES)], min_side=0)
    rgb = draw_faces(image, [Face.of((20, 10, 50, 50), probs, CLASS_NAMES)], min_side=0, rgb=True)
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])


def test_auto_runs_onnx_for_a_few_faces_and_the_compiled_call_for_large_batches():
    pytest.importorskip("onnxruntime")
    from fer_core.inference import LARGE_BATCH

    model = build_model("cnn", num_classes=7, filters=(8, 16, 16), dense_units=16)
    classify = Classifier(model)
    assert classify.engines_for(1) == classify.engines_for(LARGE_BATCH // 2) == ["onnx"]
    assert classify.engines_for(LARGE_BATCH // 2 + 1) == ["keras"]  # padded up to LARGE_BATCH
    assert Classifier(model, engine="onnx").engines_for(1000) == ["onnx"]  # asked for: kept
    faces = np.random.default_rng(5).integers(0, 256, (LARGE_BATCH + 300, 48, 48)).astype(np.uint8)
    expected = np.asarray(model(faces[..., None].astype(np.float32), training=False))
    # 364 faces: a chunk of 256 and one of 108 (padded to 128), both through Keras ...
    assert np.abs(classify(faces) - expected).max() < 1e-4
    assert np.abs(classify(faces[:3]) - expected[:3]).max() < 1e-4  # ... and 3 through ONNX
