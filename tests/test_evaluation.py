"""fer_core.evaluation: consistent metrics in a fixed order, TTA and ensembles."""

from __future__ import annotations

import numpy as np
import pytest

from fer_core import CLASS_NAMES
from fer_core.data import load_dataset
from fer_core import FerError
from fer_core.evaluation import compute_metrics, ensemble_of, evaluate
from fer_core.inference import ZOOM_CROPS, tta_mode, tta_views
from fer_core.models import build_model, list_models
from helpers import model_params


class LookupModel:
    """A stand-in classifier that answers from a table keyed by image content: order-sensitive."""

    name = "lookup"

    def __init__(self, images, labels, flip_label=None):
        self.table = {img.tobytes(): int(label) for img, label in zip(images.astype(np.float32), labels)}
        self.flip_label = flip_label

    def __call__(self, x):
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
    m = compute_metrics(test.labels, probs, dataset.classes)
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
    assert tta.metrics["tta"] == "flip"
    assert tta.probabilities[np.arange(len(test)), test.labels].min() >= 0.47


def test_flip_zoom_tta_averages_over_the_zoomed_views(folder_dataset):
    dataset = load_dataset(folder_dataset)
    test = dataset.split("PublicTest")
    faces = test.images[..., None]
    zoomed_40 = tta_views(faces, "flip+zoom")[2]
    # Right only on the faces' 40-px centre crops scaled back to 48: one of the six views.
    model = LookupModel(zoomed_40, test.labels)
    right = np.arange(len(test)), test.labels
    zoom = evaluate([model], dataset, split="PublicTest", tta="flip+zoom")
    assert zoom.metrics["tta"] == "flip+zoom"
    assert zoom.probabilities[right].min() >= 0.94 / 6
    flip = evaluate([model], dataset, split="PublicTest", tta="flip")
    assert flip.probabilities[right][test.labels != 0].max() < 0.02  # no view it knows


def test_tta_views_are_the_face_its_zooms_and_their_mirrors():
    face = np.zeros((1, 48, 48, 1), np.uint8)
    face[0, 14:34, 14:34] = 200  # a 20-px square in the centre
    face[0, 0, 0] = 255  # and a corner pixel, to tell the mirror
    assert len(tta_views(face, "none")) == 1 and len(tta_views(face, "flip")) == 2
    views = tta_views(face, "flip+zoom")
    assert len(views) == 2 * (1 + len(ZOOM_CROPS)) and all(v.shape == face.shape for v in views)
    np.testing.assert_array_equal(views[0], face)
    for view, mirror in zip(views[:3], views[3:]):
        np.testing.assert_array_equal(mirror, view[:, :, ::-1])
    # A crop of c px scaled to 48 widens the square by 48 / c, about its centre; the corner is cut.
    for view, crop in zip(views[1:3], ZOOM_CROPS):
        bright = np.flatnonzero(view[0, 24, :, 0] > 100)
        assert abs(len(bright) - 20 * 48 / crop) <= 2 and abs(bright.mean() - 23.5) <= 1
        assert view[0, 0, 0, 0] == 0


@pytest.mark.parametrize("given, mode", [(False, "none"), (None, "none"), (True, "flip"), ("flip+zoom", "flip+zoom")])
def test_tta_mode_reads_old_booleans_and_names(given, mode):
    assert tta_mode(given) == mode


def test_unknown_tta_is_a_clear_error():
    with pytest.raises(FerError, match="unknown TTA 'crops'; choose one of none, flip, flip\\+zoom"):
        tta_mode("crops")


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


def test_ensemble_of_evaluated_models_equals_evaluating_them_together(folder_dataset):
    """The Evaluate page builds the ensemble from its cached members; it must show what
    `fer-core evaluate --model a,b` prints."""
    dataset = load_dataset(folder_dataset)
    test = dataset.split("PublicTest")
    rng = np.random.default_rng(1)
    noisy = LookupModel(
        test.images[..., None], np.where(rng.random(len(test)) < 0.5, test.labels, (test.labels + 2) % 7)
    )
    wrong = LookupModel(test.images[..., None], (test.labels + 1) % 7)
    for tta in (False, True):
        together = evaluate([noisy, wrong], dataset, split="PublicTest", tta=tta, names=["n", "w"])
        members = [
            evaluate([m], dataset, split="PublicTest", tta=tta, names=[k]) for m, k in ((noisy, "n"), (wrong, "w"))
        ]
        combined = ensemble_of(members)
        assert combined.metrics == together.metrics
        np.testing.assert_array_equal(combined.probabilities, together.probabilities)
    with pytest.raises(FerError, match="same images with the same TTA"):
        ensemble_of(
            [evaluate([noisy], dataset, split="PublicTest"), evaluate([noisy], dataset, split="PublicTest", tta=True)]
        )


def test_default_split_is_private_then_public(csv_dataset, folder_dataset):
    csv = load_dataset(csv_dataset)
    model = LookupModel(csv.images[..., None], csv.labels)
    assert evaluate([model], csv).metrics["split"] == "PrivateTest"
    folder = load_dataset(folder_dataset)
    assert evaluate([LookupModel(folder.images[..., None], folder.labels)], folder).metrics["split"] == "PublicTest"


class CountingLoader:
    """fer_core's real model loader, counting how often the evaluation had to load the model."""

    def __init__(self):
        self.calls = 0

    def __call__(self, path):
        from fer_core.artifacts import load_model

        self.calls += 1
        return load_model(path)


@pytest.fixture
def model_copy(tiny_run, tmp_path):
    import shutil

    path = tmp_path / "model.keras"
    shutil.copy(tiny_run / "model.keras", path)
    return path


def test_model_file_evaluation_is_computed_once_then_read_from_disk(model_copy, folder_dataset):
    from fer_core.artifacts import load_model
    from fer_core.evaluation import evaluate_model_file

    dataset = load_dataset(folder_dataset)
    load = CountingLoader()
    first = evaluate_model_file(model_copy, dataset, split="PublicTest", name="tiny", load=load)
    again = evaluate_model_file(model_copy, dataset, split="PublicTest", name="tiny", load=load)
    assert load.calls == 1
    direct = evaluate([load_model(model_copy)], dataset, split="PublicTest", names=["tiny"])
    np.testing.assert_array_equal(first.probabilities, direct.probabilities)
    np.testing.assert_array_equal(again.probabilities, direct.probabilities)
    assert again.metrics == direct.metrics
    # TTA and another split are entries of their own.
    with_tta = evaluate_model_file(model_copy, dataset, split="PublicTest", tta=True, load=load)
    assert load.calls == 2 and with_tta.metrics["tta"] == "flip"
    evaluate_model_file(model_copy, dataset, split="Training", load=load)
    assert load.calls == 3
    evaluate_model_file(model_copy, dataset, split="PublicTest", tta="flip+zoom", load=load)
    assert load.calls == 4


def test_a_retrained_model_at_the_same_path_is_not_answered_from_the_cache(model_copy, folder_dataset):
    from fer_core.artifacts import load_model
    from fer_core.evaluation import evaluate_model_file

    dataset = load_dataset(folder_dataset)
    load = CountingLoader()
    before = evaluate_model_file(model_copy, dataset, split="PublicTest", load=load)
    model = load_model(model_copy)
    kernel, bias = model.get_layer("probabilities").get_weights()
    model.get_layer("probabilities").set_weights([kernel, bias + np.arange(7, dtype=np.float32)])
    model.save(model_copy)
    after = evaluate_model_file(model_copy, dataset, split="PublicTest", load=load)
    assert load.calls == 2
    assert not np.allclose(after.probabilities, before.probabilities)
    np.testing.assert_array_equal(
        after.probabilities, evaluate([load_model(model_copy)], dataset, split="PublicTest").probabilities
    )


@pytest.mark.parametrize("damage", [b"", b"not a numpy file", "wrong shape"])
def test_a_damaged_cache_entry_is_computed_again(model_copy, folder_dataset, damage):
    from fer_core.paths import cache_dir
    from fer_core.evaluation import evaluate_model_file

    dataset = load_dataset(folder_dataset)
    load = CountingLoader()
    first = evaluate_model_file(model_copy, dataset, split="PublicTest", load=load)
    (entry,) = (cache_dir() / "probabilities").glob("*.npy")
    if damage == "wrong shape":
        np.save(entry, np.zeros((3, 7), dtype=np.float32))
    else:
        entry.write_bytes(damage)
    again = evaluate_model_file(model_copy, dataset, split="PublicTest", load=load)
    assert load.calls == 2
    np.testing.assert_array_equal(again.probabilities, first.probabilities)
    assert np.load(entry).shape == first.probabilities.shape  # and the entry is repaired


def test_a_missing_model_file_is_a_clear_error(folder_dataset, tmp_path):
    from fer_core.evaluation import evaluate_model_file

    with pytest.raises(FerError, match="cannot read model file"):
        evaluate_model_file(tmp_path / "gone.keras", load_dataset(folder_dataset), split="PublicTest")


def test_evaluating_on_the_selection_or_training_split_is_flagged(folder_dataset, csv_dataset):
    from fer_core.data import load_dataset
    from fer_core.evaluation import selection_warning

    folder, kaggle = load_dataset(folder_dataset), load_dataset(csv_dataset)
    selected_on_slice = {"split": "PublicTest", "selection_split": "validation"}
    assert selection_warning("cnn", selected_on_slice, folder, "PublicTest") is None
    assert "was trained on Training" in selection_warning("cnn", selected_on_slice, folder, "Training")
    selected_on_public = {"split": "PrivateTest", "selection_split": "PublicTest"}
    assert "picked cnn's best epoch" in selection_warning("cnn", selected_on_public, kaggle, "PublicTest")
    assert selection_warning("cnn", selected_on_public, kaggle, "PrivateTest") is None


def test_a_face_it_learned_is_left_out_whatever_path_or_split_it_comes_through(tiny_run, folder_dataset, tmp_path):
    """A copy of the dataset elsewhere, with one training face also copied into PublicTest under
    another name: that face is left out of PublicTest (said in one line), and the copy's Training
    split, every face of which it learned, is refused."""
    import json
    import shutil

    from helpers import PER_CLASS, assert_one_line_error, cli

    copy = shutil.copytree(folder_dataset, tmp_path / "copy" / "fer")
    learned = sorted((copy / "train" / "happy").iterdir())[0]
    shutil.copy(learned, copy / "test" / "happy" / "PublicTest_999.png")
    code, out, err = cli("evaluate", "--model", tiny_run, "--data", copy, "--split", "PublicTest", "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["n"] == len(CLASS_NAMES) * PER_CLASS and metrics["split"] == "PublicTest"
    total = len(CLASS_NAMES) * PER_CLASS + 1
    assert f"measured on its {total - 1} held-out images: 1 of the {total} images of PublicTest" in err
    code, _out, err = cli("evaluate", "--model", tiny_run, "--data", copy, "--split", "Training")
    assert_one_line_error(code, err, "trained or selected on all", "recognised by their pixels")


def test_image_hashes_are_exact_content():
    from fer_core.evaluation.unseen import image_hashes
    from helpers import synthetic_face

    faces = np.stack([synthetic_face(3, 0), synthetic_face(3, 1), synthetic_face(3, 0)])
    hashes = image_hashes(faces)
    assert hashes[0] == hashes[2] != hashes[1]
    assert image_hashes(faces[..., None]).tolist() == hashes.tolist()  # (N, 48, 48, 1) as training holds them
    brighter = faces.copy()
    brighter[0, 0, 0] ^= 1  # one pixel's lowest bit: another image
    assert image_hashes(brighter)[0] != hashes[0]


def test_the_cli_refuses_a_run_on_the_split_it_trained_on(tiny_run, folder_dataset, capsys):
    from fer_core.cli import main

    assert main(["evaluate", "--model", str(tiny_run), "--data", str(folder_dataset), "--split", "Training"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained or selected on all" in err
    assert main(["evaluate", "--model", str(tiny_run), "--data", str(folder_dataset), "--split", "PublicTest"]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("name", model_params(list_models()))
def test_evaluation_predicts_through_the_fast_classifier_for_every_model(name, folder_dataset):
    """Evaluation and the Predict page share one prediction path, and it is the model's own answer."""
    from fer_core.evaluation import classifier_for
    from fer_core.inference import Classifier
    from fer_core.models import build_model
    from helpers import SMALL

    model = build_model(name, num_classes=7, **SMALL[name])
    assert isinstance(classifier_for(model), Classifier)
    dataset = load_dataset(folder_dataset)
    test = dataset.split("PublicTest")
    result = evaluate([model], dataset, split="PublicTest")
    direct = np.asarray(model(test.images[..., None].astype(np.float32), training=False))
    assert np.abs(result.probabilities - direct).max() < 1e-4
    assert result.metrics["loss"] == pytest.approx(compute_metrics(test.labels, direct, test.classes)["loss"], abs=1e-3)


def test_the_comparison_puts_measured_rows_above_the_papers(folder_dataset):
    from fer_core.evaluation.paper import MEASURED_SOURCE, PAPER_SOURCE, PAPER_TABLE_4, comparison_rows

    dataset = load_dataset(folder_dataset)
    test = dataset.split("PublicTest")
    model = LookupModel(test.images[..., None], test.labels)
    results = {
        "ours": evaluate([model], dataset, split="PublicTest"),
        "ours, flipped too": evaluate([model], dataset, split="PublicTest", tta=True),
    }
    rows = comparison_rows(results, {"ours": 12})
    assert rows[0] == {
        "model": "ours",
        "source": MEASURED_SOURCE,
        "split": "PublicTest",
        "accuracy": 1.0,
        "macro-F1": 1.0,
        "loss": results["ours"].metrics["loss"],
        "epochs": 12,
    }
    assert rows[1]["split"] == "PublicTest +flip TTA" and rows[1]["epochs"] is None
    assert [r["source"] for r in rows[2:]] == [PAPER_SOURCE] * len(PAPER_TABLE_4)
    assert rows[2]["accuracy"] == PAPER_TABLE_4["cnn"]["accuracy"]


def test_an_evaluation_counts_its_faces_and_a_cancel_leaves_nothing_cached(model_copy, folder_dataset, monkeypatch):
    """The Evaluate page's bar follows the faces done; a Cancel (an exception raised from the
    progress call, as Streamlit's rerun does) ends the prediction there and caches nothing, so
    the next evaluation measures every face."""
    import fer_core.evaluation.predict as predict
    from fer_core.evaluation import evaluate_model_file

    monkeypatch.setattr(predict, "PROGRESS_CHUNK", 4)  # several chunks of the small test split
    dataset = load_dataset(folder_dataset)
    faces = len(dataset.split("PublicTest"))
    load = CountingLoader()

    class Cancelled(Exception):
        pass

    def cancel_at_second_chunk(done, total):
        if done >= 4:
            raise Cancelled

    with pytest.raises(Cancelled):
        evaluate_model_file(
            model_copy, dataset, split="PublicTest", tta="flip", load=load, progress=cancel_at_second_chunk
        )
    seen = []
    result = evaluate_model_file(
        model_copy, dataset, split="PublicTest", tta="flip", load=load, progress=lambda d, t: seen.append((d, t))
    )
    assert load.calls == 2  # nothing was cached by the cancelled one
    assert seen == [(done, faces) for done in range(0, faces, 4)] + [(faces, faces)]
    direct = evaluate_model_file(model_copy, dataset, split="PublicTest", tta="flip", load=load)
    assert load.calls == 2 and np.array_equal(direct.probabilities, result.probabilities)


def test_a_dataset_of_other_names_is_matched_by_name_and_synonym(folder_dataset):
    """A CK+-style dataset (anger, contempt, sadness, ...) measured by a FER2013 model: anger and
    sadness are matched by synonym and said so, contempt is left out and said so, and the labels
    follow the model's order."""
    import dataclasses

    from fer_core.evaluation.evaluate import align_to_model, class_matches

    ck = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
    assert class_matches(CLASS_NAMES, ck) == {
        "anger": ("angry", "synonym"),
        "disgust": ("disgust", "name"),
        "fear": ("fear", "name"),
        "happy": ("happy", "name"),
        "sadness": ("sad", "synonym"),
        "surprise": ("surprise", "name"),
    }
    fer = load_dataset(str(folder_dataset)).split("PublicTest")
    # The same faces under CK+'s names: FER2013 label k becomes the CK+ class of that emotion.
    as_ck = {0: 0, 1: 2, 2: 3, 3: 4, 4: 5, 5: 6}
    keep = np.isin(fer.labels, list(as_ck))
    renamed = fer.subset(keep)
    renamed = dataclasses.replace(renamed, labels=np.array([as_ck[k] for k in renamed.labels]), classes=ck)
    aligned, left_out = align_to_model(renamed, CLASS_NAMES)
    assert left_out == ["contempt"] and list(aligned.labels) == list(fer.labels[keep])
    model = build_model("cnn", num_classes=7, filters=(4, 8, 8), dense_units=8)
    metrics = evaluate([model], renamed, classes=CLASS_NAMES).metrics
    assert metrics["matched_by_synonym"] == {"anger": "angry", "sadness": "sad"}
    assert metrics["left_out_classes"] == ["contempt"] and metrics["n"] == int(keep.sum())


def test_no_faces_give_no_rows_in_the_models_own_columns():
    """An empty input's probabilities have the model's width (three classes here), whichever way
    the model comes: a Keras model, the fast classifier, or a function."""
    from fer_core.evaluation.predict import predict_probabilities
    from fer_core.inference import Classifier
    from fer_core.models import build_model

    model = build_model("cnn", num_classes=3, filters=(4, 8, 8), dense_units=8)
    none = np.zeros((0, 48, 48), np.uint8)
    for classify in (model, Classifier(model), lambda faces: np.full((len(faces), 3), 1 / 3)):
        assert predict_probabilities(classify, none, tta="flip").shape == (0, 3)
