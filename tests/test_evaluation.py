"""fer_core.evaluation: consistent metrics in a fixed order, TTA and ensembles."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core import CLASS_NAMES
from fer_core.data import load_dataset
from fer_core.evaluation import compute_metrics, evaluate


class LookupModel:
    """A stand-in model that answers from a table keyed by image content: order-sensitive."""

    name = "lookup"

    def __init__(self, images, labels, accuracy_mask=None, flip_label=None):
        self.table = {img.tobytes(): int(l) for img, l in zip(images.astype(np.float32), labels)}
        self.flip_label = flip_label

    def predict(self, x, batch_size=None, verbose=0):
        out = np.full((len(x), 7), 0.01, dtype=np.float32)
        for i, img in enumerate(np.asarray(x, dtype=np.float32)[..., 0]):
            label = self.table.get(img.tobytes(), self.flip_label)
            out[i, label if label is not None else 0] = 0.94
        return out


def test_metrics_are_consistent(folder_dataset):
    dataset = load_dataset(folder_dataset)
    test = dataset.split("PublicTest")
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=len(test))
    m = compute_metrics(test.labels, probs)
    matrix = np.array(m["confusion_matrix"])
    assert np.trace(matrix) / matrix.sum() == pytest.approx(m["accuracy"])
    assert [m["per_class"][c]["support"] for c in CLASS_NAMES] == np.bincount(test.labels, minlength=7).tolist()
    assert matrix.sum(axis=1).tolist() == np.bincount(test.labels, minlength=7).tolist()
    np.testing.assert_allclose(np.array(m["confusion_matrix_normalized"]).sum(axis=1), 1.0, atol=1e-5)
    assert sum(b["count"] for b in m["calibration"]["bins"]) == len(test)


def test_evaluation_keeps_the_dataset_order(folder_dataset):
    dataset = load_dataset(folder_dataset)
    test = dataset.split("PublicTest")
    result = evaluate([LookupModel(test.images[..., None], test.labels)], dataset, split="PublicTest")
    assert result.metrics["accuracy"] == 1.0
    assert result.metrics["split"] == "PublicTest"
    assert result.metrics["n"] == len(test)
    np.testing.assert_array_equal(result.predictions, test.labels)
    # A model right on the mirrored faces only: TTA averages the two views, halving confidence.
    flipped = LookupModel(test.images[:, :, ::-1][..., None], test.labels, flip_label=None)
    tta = evaluate([flipped], dataset, split="PublicTest", tta=True)
    assert tta.metrics["tta"] is True
    assert tta.probabilities[np.arange(len(test)), test.labels].min() >= 0.47


def test_ensemble_is_the_mean_of_probabilities(folder_dataset):
    dataset = load_dataset(folder_dataset)
    test = dataset.split("PublicTest")
    right = LookupModel(test.images[..., None], test.labels)
    wrong = LookupModel(test.images[..., None], (test.labels + 1) % 7)
    a = evaluate([right], dataset, split="PublicTest").probabilities
    b = evaluate([wrong], dataset, split="PublicTest").probabilities
    both = evaluate([right, wrong], dataset, split="PublicTest", names=["r", "w"])
    np.testing.assert_allclose(both.probabilities, (a + b) / 2, atol=1e-6)
    assert both.metrics["models"] == ["r", "w"]


def test_default_split_is_private_then_public(csv_dataset, folder_dataset):
    csv = load_dataset(csv_dataset)
    model = LookupModel(csv.images[..., None], csv.labels)
    assert evaluate([model], csv).metrics["split"] == "PrivateTest"
    folder = load_dataset(folder_dataset)
    assert evaluate([LookupModel(folder.images[..., None], folder.labels)], folder).metrics["split"] == "PublicTest"
