"""fer_core.catalog: each model's dataset, models grouped per dataset, and the default model, which
a better score on another dataset never takes over."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fer_core import CLASS_NAMES
from fer_core.catalog import (
    FER2013,
    dataset_tag,
    default_model,
    model_dataset,
    models_by_dataset,
    set_default_model,
)
from fer_core.artifacts import saved_models
from fer_core.errors import FerError
from fer_core.paths import trained_dir

CK_CLASSES = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]


def write_model(name: str, accuracy: float, classes=CLASS_NAMES, split="PublicTest", dataset=None, **extra):
    """A trained model's folder as promotion leaves it (the weights file is not read here)."""
    folder = trained_dir() / name
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"PK")
    (folder / "config.json").write_text(json.dumps({"model": "cnn", "classes": list(classes), "data": "/d/ck"}))
    metrics = {"accuracy": accuracy, "split": split, "classes": list(classes), **extra}
    if dataset is not None:
        metrics["dataset"] = {"name": dataset, "classes": list(classes), "split": split, "fingerprint": "f"}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_a_better_score_on_another_dataset_does_not_take_the_default():
    write_model("vgg_fer", 0.688)
    write_model("cnn", 0.656)
    write_model("ck_model", 0.847, classes=CK_CLASSES, split="held_out", dataset="ck")
    assert default_model().name == "vgg_fer"
    groups = models_by_dataset(saved_models())
    assert [(tag.name, [ref.name for ref in refs]) for tag, refs in groups.items()] == [
        (FER2013, ["vgg_fer", "cnn"]),
        ("ck", ["ck_model"]),
    ]


def test_the_default_moves_only_when_chosen_and_a_stale_choice_falls_back():
    write_model("vgg_fer", 0.688)
    write_model("ck_model", 0.847, classes=CK_CLASSES, split="held_out", dataset="ck")
    set_default_model("ck_model")
    assert default_model().name == "ck_model"
    set_default_model(None)
    assert default_model().name == "vgg_fer"
    set_default_model("ck_model")
    (trained_dir() / "ck_model").rename(trained_dir() / ".versions-ck")
    assert default_model().name == "vgg_fer"
    with pytest.raises(FerError, match="no trained model 'nope' to make the default"):
        set_default_model("nope")


def test_a_number_on_the_selection_split_never_makes_the_default():
    write_model("honest", 0.60)
    write_model("selected_on_itself", 0.90, reported_on_selection_split=True)
    assert default_model().name == "honest"


def test_without_fer2013_models_the_default_is_the_best_of_the_largest_dataset():
    write_model("ck_a", 0.70, classes=CK_CLASSES, split="held_out", dataset="ck")
    write_model("ck_b", 0.80, classes=CK_CLASSES, split="held_out", dataset="ck")
    write_model("other", 0.95, classes=["neg", "pos"], split="test", dataset="valence")
    assert default_model().name == "ck_b"


def test_a_model_without_a_dataset_record_is_placed_by_its_classes_and_split():
    write_model("old_fer", 0.6)
    write_model("old_ck", 0.8, classes=CK_CLASSES, split="held_out")
    refs = saved_models()
    tags = {ref.name: model_dataset(ref) for ref in refs}
    assert tags["old_fer"].name == FER2013 and tags["old_ck"].name == "ck"
    assert tags["old_ck"].classes == tuple(CK_CLASSES)


def test_the_dataset_fingerprint_follows_files_and_labels(folder_dataset):
    from fer_core.data import load_dataset

    dataset = load_dataset(str(folder_dataset))
    tag = dataset_tag(dataset, "PublicTest")
    assert tag.name == FER2013 and len(tag.fingerprint) == 16
    relabelled = dataset.subset(slice(None))
    relabelled.labels = relabelled.labels.copy()
    relabelled.labels[0] = (relabelled.labels[0] + 1) % len(dataset.classes)
    assert dataset_tag(relabelled, "PublicTest").fingerprint != tag.fingerprint
    assert dataset_tag(dataset.subset(slice(None)), "PublicTest").fingerprint == tag.fingerprint


def test_fer_core_default_shows_sets_and_refuses_in_one_line():
    write_model("vgg_fer", 0.688)
    write_model("ck_model", 0.847, classes=CK_CLASSES, split="held_out", dataset="ck")

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "fer_core", "default", *args], capture_output=True, text=True, env=dict(os.environ)
        )

    shown = cli()
    assert shown.returncode == 0 and shown.stdout.startswith("vgg_fer: the best measured on FER2013's PublicTest")
    chosen = cli("ck_model", "--json")
    assert chosen.returncode == 0 and json.loads(chosen.stdout)["model"] == "ck_model"
    assert json.loads((trained_dir() / "default.json").read_text()) == {"model": "ck_model"}
    refused = cli("nope")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr


def test_the_recognizer_without_a_model_takes_the_default():
    from fer_core.recognizer import Recognizer

    write_model("vgg_fer", 0.688)
    write_model("ck_model", 0.847, classes=CK_CLASSES, split="held_out", dataset="ck")
    assert [ref.name for ref in Recognizer().refs] == ["vgg_fer"]
    set_default_model("ck_model")
    assert [ref.name for ref in Recognizer().refs] == ["ck_model"]
