"""What ships in trained/: each model loads, classifies a face, and carries its records, so
`make test` fails if a shipped model breaks. Parametrized over what is actually shipped."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core.artifacts import list_trained
from fer_core.paths import PROJECT_ROOT
from fer_core.fileio import read_json
from helpers import model_params

SHIPPED_ROOT = PROJECT_ROOT / "trained"
PAPER_MODELS = ("cnn", "attention_cnn", "resnet50")


@pytest.fixture(autouse=True)
def shipped_trained_dir(monkeypatch):
    monkeypatch.setenv("FER_TRAINED_DIR", str(SHIPPED_ROOT))


def _shipped() -> list[str]:
    import os

    saved = os.environ.get("FER_TRAINED_DIR")
    os.environ["FER_TRAINED_DIR"] = str(SHIPPED_ROOT)
    try:
        return list_trained()
    finally:
        if saved is None:
            os.environ.pop("FER_TRAINED_DIR")
        else:
            os.environ["FER_TRAINED_DIR"] = saved


def test_the_papers_three_models_ship():
    assert set(PAPER_MODELS) <= set(list_trained()), list_trained()


@pytest.mark.parametrize("name", model_params(_shipped()))
def test_a_shipped_model_classifies_a_face(name):
    from helpers import synthetic_face
    from fer_core.artifacts import load_model
    from fer_core.inference import Classifier

    classify = Classifier(load_model(name))
    probabilities = classify(np.stack([synthetic_face(3, 0), synthetic_face(5, 1)]))
    assert probabilities.shape == (2, 7)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    assert np.isfinite(probabilities).all()


@pytest.fixture(scope="module")
def smiling_faces() -> np.ndarray:
    """A real smile, built 18 ways: scikit-image's astronaut photo (Eileen Collins, smiling), her
    face cropped at nine offsets of 6 px, each also mirrored."""
    import cv2

    from fer_core.detection_bench import PHOTOS, _picture
    from fer_core.inference.faces import crop_face

    gray = cv2.cvtColor(_picture("astronaut"), cv2.COLOR_RGB2GRAY)
    (x, y, w, h) = PHOTOS["astronaut"][0]
    crops = [crop_face(gray, (x + dx, y + dy, w, h)) for dx in (-6, 0, 6) for dy in (-6, 0, 6)]
    return np.stack(crops + [crop[:, ::-1] for crop in crops])


@pytest.mark.parametrize("name", model_params(_shipped()))
def test_a_shipped_model_sees_a_smile_far_better_than_chance(name, smiling_faces):
    """Chance is one in seven; every shipped model calls at least 15 of the 18 crops happy (all
    four call all 18 happy, on average 0.90 to 0.94 sure, with TensorFlow on a CPU)."""
    from fer_core.artifacts import load_model
    from fer_core.inference import Classifier

    classify = Classifier(load_model(name))
    probabilities = classify(smiling_faces)
    happy = list(classify.classes).index("happy")
    assert (probabilities.argmax(axis=1) == happy).sum() >= 15
    assert probabilities[:, happy].mean() > 0.5


@pytest.mark.parametrize("name", model_params(_shipped()))
def test_a_shipped_model_carries_honest_records(name):
    folder = SHIPPED_ROOT / name
    for file in ("config.json", "history.csv", "metrics.json", "MODEL_CARD.md"):
        assert (folder / file).is_file(), file
    metrics = read_json(folder / "metrics.json")
    config = read_json(folder / "config.json")
    # Reported on a split that neither trained nor selected it, without and with TTA.
    assert metrics["split"] in ("PublicTest", "PrivateTest") and metrics["reported_on_selection_split"] is False
    assert metrics["selection_split"] != metrics["split"]
    assert {"accuracy", "macro_f1", "loss"} <= set(metrics["with_tta"]) & set(metrics["with_flip_zoom"])
    assert config["precision"] != "auto" and config["model"] == name
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"{metrics['accuracy']:.4f}" in card and metrics["split"] in card
    assert f"with flip+zoom TTA {metrics['with_flip_zoom']['accuracy']:.4f}" in card


@pytest.mark.parametrize("name", model_params(_shipped()))
def test_a_shipped_model_is_stored_compactly_to_compute_in_float32(name):
    import io
    import zipfile

    import h5py

    from fer_core.artifacts import load_model

    with zipfile.ZipFile(SHIPPED_ROOT / name / "model.keras") as archive:
        with h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights:
            dtypes = set()
            weights.visititems(lambda _n, item: dtypes.add(str(item.dtype)) if isinstance(item, h5py.Dataset) else None)
    assert "float32" not in dtypes
    assert {layer.dtype_policy.name for layer in load_model(name).layers} == {"float32"}


def test_the_shipped_ensemble_record_is_that_of_the_shipped_files():
    """Home's ensemble row: a model changed without `fer-core ensemble` run again fails here."""
    from fer_core.evaluation.ensemble import read_ensemble_record

    record, why_not = read_ensemble_record()
    assert record is not None, f"trained/ensemble.json: {why_not}; run `fer-core ensemble --data DATA`"
    # On the members' own images: PublicTest less its copies of the Training faces they learned.
    assert record["split"] == "PublicTest" and {record["n"]} == {
        read_json(SHIPPED_ROOT / n / "metrics.json")["n"] for n in _shipped()
    }
    assert record["accuracy"] > max(read_json(SHIPPED_ROOT / n / "metrics.json")["accuracy"] for n in _shipped())
