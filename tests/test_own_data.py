"""Datasets with their own classes: a CK+-shaped folder (a class FER2013 lacks, subjects in the file
names) and FER2013 regrouped into three valence classes. They load with their classes, report
themselves (counts, groups, leakage), train from scratch and by transfer from a FER2013 model with a
frozen body, are predicted with their own class names, and bad datasets are one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_core import CLASS_NAMES
from fer_core.data import load_dataset
from fer_core.errors import FerError
from helpers import assert_one_line_error, cli, run_cli, synthetic_face, tiny_config, tiny_flags, wait_until

CK_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
# CK+'s names onto the synthetic faces FER2013's helper draws (contempt drawn as FER's "neutral").
DRAWN_AS = {"anger": 0, "contempt": 6, "disgust": 1, "fear": 2, "happy": 3, "sadness": 4, "surprise": 5}
VALENCE = {"angry": "negative", "disgust": "negative", "fear": "negative", "sad": "negative"}
VALENCE.update({"happy": "positive", "surprise": "positive", "neutral": "neutral"})


def write_ck_folder(root, subjects: int = 6, frames: int = 2):
    """CK+'s layout: a folder per class, 64x64 PNGs named subject_sequence_frame."""
    for name in CK_CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for subject in range(subjects):
            for frame in range(frames):
                face = synthetic_face(DRAWN_AS[name], subject * frames + frame)
                image = Image.fromarray(face).resize((64, 64))
                image.save(root / name / f"S{10 + subject:03d}_{CK_CLASSES.index(name) + 1:03d}_{frame + 1:08d}.png")
    return root


@pytest.fixture(scope="module")
def ck_folder(tmp_path_factory):
    return write_ck_folder(tmp_path_factory.mktemp("ck") / "ck")


@pytest.fixture(scope="module")
def valence_folder(tmp_path_factory, folder_dataset):
    """The synthetic FER2013 folder regrouped into negative / neutral / positive, splits kept."""
    root = tmp_path_factory.mktemp("valence") / "valence"
    for split in ("train", "test"):
        for name in CLASS_NAMES:
            target = root / split / VALENCE[name]
            target.mkdir(parents=True, exist_ok=True)
            for file in (folder_dataset / split / name).iterdir():
                shutil.copy(file, target / f"{name}_{file.name}")
    return root


def test_a_ck_folder_keeps_every_class_it_has(ck_folder):
    dataset = load_dataset(ck_folder, use_cache=False)
    assert dataset.classes == CK_CLASSES and not dataset.is_fer2013
    assert len(dataset) == 7 * 6 * 2 and set(dataset.split_names) == {"all"}
    assert np.bincount(dataset.labels).tolist() == [12] * 7  # contempt included
    assert dataset.images.shape[1:] == (48, 48)
    assert not dataset.report.skipped


def test_fer2013_folders_load_as_before(folder_dataset):
    dataset = load_dataset(folder_dataset, use_cache=False)
    assert dataset.classes == CLASS_NAMES and dataset.is_fer2013
    assert dataset.split_names == ["Training", "PublicTest"]


def test_a_subject_pattern_is_proposed_only_where_the_names_name_people(ck_folder, folder_dataset):
    """CK+'s `S010_004_...` names its subjects; FER2013's `Training_123.jpg` names its split."""
    from fer_core.data.groups import group_preview, propose_group_pattern

    ck = load_dataset(ck_folder, use_cache=False)
    assert propose_group_pattern(ck) == r"^([A-Za-z]+\d+)[_-]"
    assert group_preview(ck, propose_group_pattern(ck)).startswith("6 subjects; S010 from S010_")
    assert propose_group_pattern(load_dataset(folder_dataset, use_cache=False)) is None


def test_valence_classes_keep_their_splits(valence_folder):
    dataset = load_dataset(valence_folder)
    assert dataset.classes == ("negative", "neutral", "positive")
    assert set(dataset.split_names) == {"train", "test"}
    again = load_dataset(valence_folder)  # from the cache: the classes come back with the arrays
    assert again.classes == dataset.classes


def test_stats_name_the_classes_groups_and_identical_images(ck_folder, tmp_path):
    copy = shutil.copytree(ck_folder, tmp_path / "ck")
    first = sorted((copy / "happy").iterdir())[0]
    shutil.copy(first, copy / "surprise" / "S099_001_00000001.png")  # one face under two classes
    code, out, err = cli("stats", "--data", copy, "--group-by", r"^(S\d+)_", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["classes"] == list(CK_CLASSES) and stats["splits"]["all"]["contempt"] == 12
    assert stats["groups"]["count"] == 7 and stats["groups"]["per_group"]["S010"] == 14
    leak = stats["leakage"]["identical_across_classes"]
    assert leak["count"] == 1 and any("S099_001_00000001.png" in f for f in leak["examples"][0])
    code, out, err = cli("stats", "--data", copy)
    assert code == 0 and "contempt" in out and "identical images under two classes: 1" in out


def test_a_near_identical_frame_in_another_split_is_named(valence_folder, tmp_path):
    """A face re-saved a shade brighter in the test split (a sequence's next frame, say) is not
    byte-identical, but its perceptual hash is the training face's: named as leakage."""
    copy = shutil.copytree(valence_folder, tmp_path / "valence")
    original = sorted((copy / "train" / "positive").iterdir())[0]
    brighter = np.clip(np.asarray(Image.open(original).convert("L"), dtype=np.int16) + 3, 0, 255).astype(np.uint8)
    Image.fromarray(brighter).save(copy / "test" / "positive" / "next_frame.png")
    code, out, err = cli("stats", "--data", copy, "--json")
    assert code == 0, err
    leak = json.loads(out)["leakage"]
    assert leak["identical_across_splits"]["count"] == 0
    assert leak["near_identical_across_splits"]["count"] >= 1
    assert any("next_frame.png" in f for group in leak["near_identical_across_splits"]["examples"] for f in group)


@pytest.mark.parametrize(
    "layout, message",
    [
        ("one_class", "only one class"),
        ("no_images", "no images found"),
        ("one_class_csv", "only one class"),
        ("bad_regex", "matches no file name"),
    ],
)
def test_bad_datasets_are_one_line(layout, message, tmp_path, ck_folder):
    data, extra = tmp_path / "data", []
    if layout == "one_class":
        shutil.copytree(ck_folder / "contempt", data / "contempt")
    elif layout == "no_images":
        (data / "happy").mkdir(parents=True)
        (data / "sad").mkdir()
    elif layout == "one_class_csv":
        data.mkdir()
        face = " ".join(["128"] * 48 * 48)
        (data / "faces.csv").write_text(f"label,pixels\nhappy,{face}\nhappy,{face}\n")
        data = data / "faces.csv"
    else:
        data, extra = ck_folder, ["--group-by", r"^(X\d+)_"]
    code, _out, err = cli("stats", "--data", data, *extra)
    assert_one_line_error(code, err, message)


def test_a_labelled_csv_with_paths_and_groups(ck_folder, tmp_path):
    rows = ["label,path,group"]
    for name in ("happy", "contempt", "fear"):
        for file in sorted((ck_folder / name).iterdir()):
            rows.append(f"{name},{file.relative_to(ck_folder)},{file.name[:4]}")
    shutil.copytree(ck_folder, tmp_path / "ck")
    (tmp_path / "ck" / "labels.csv").write_text("\n".join(rows) + "\n")
    dataset = load_dataset(tmp_path / "ck" / "labels.csv")
    assert dataset.classes == ("contempt", "fear", "happy") and len(dataset) == 36
    assert sorted(set(dataset.groups)) == [f"S{10 + k:03d}" for k in range(6)]
    (tmp_path / "ck" / "escape.csv").write_text("label,path\nhappy,../../etc/passwd\nfear,x.png\n")
    with pytest.raises(FerError, match="no usable rows"):
        load_dataset(tmp_path / "ck" / "escape.csv")


def test_train_from_scratch_and_by_transfer_and_predict_with_own_classes(ck_folder, tiny_run, tmp_path):
    from fer_core.artifacts import load_model, model_classes, resolve_model
    from fer_core.recognizer import Recognizer

    code, _out, err = cli("train", *tiny_flags(ck_folder, epochs=3), "--run-dir", tmp_path / "scratch")
    assert code == 0, err
    config = json.loads((tmp_path / "scratch" / "config.json").read_text())
    metrics = json.loads((tmp_path / "scratch" / "metrics.json").read_text())
    assert config["classes"] == list(CK_CLASSES) and metrics["classes"] == list(CK_CLASSES)
    assert len(metrics["confusion_matrix"]) == 7 and "contempt" in metrics["per_class"]

    code, _out, err = cli(
        "train",
        *tiny_flags(ck_folder, epochs=3),
        "--init",
        tiny_run,
        "--freeze-epochs",
        "1",
        "--run-dir",
        tmp_path / "tl",
    )
    assert code == 0, err
    config = json.loads((tmp_path / "tl" / "config.json").read_text())
    assert config["init_from"]["classes"] == list(CLASS_NAMES) and config["freeze_epochs"] == 1
    assert "the body is freed" in (tmp_path / "tl" / "train.log").read_text()
    source, model = load_model(resolve_model(tiny_run)), load_model(resolve_model(tmp_path / "tl"))
    scratch = load_model(resolve_model(tmp_path / "scratch"))
    assert model.output_shape == (None, 7) and model_classes(resolve_model(tmp_path / "tl")) == CK_CLASSES
    # The body started from the FER2013 model's weights (and moved little: one frozen epoch, then
    # a tenth of the rate); a model trained from scratch shares nothing with them.
    assert first_conv_correlation(model, source) > 0.9 > 0.5 > abs(first_conv_correlation(scratch, source))
    faces = Recognizer(tmp_path / "tl").analyze(sorted((ck_folder / "contempt").iterdir())[0])
    assert list(faces[0].probabilities) == list(CK_CLASSES)
    from fer_core.training.promote import promote

    card = (
        promote(tmp_path / "tl", "ck_cnn", dest_root=tmp_path / "trained", compact=False) / "MODEL_CARD.md"
    ).read_text()
    assert f"Classes (7, in output order): {', '.join(CK_CLASSES)}" in card
    assert "Transfer: started from cnn trained on 7 other classes (angry, disgust" in card
    assert "the body frozen for the first 1 epochs" in card
    # Measured again at promotion (compacted): on the same held-out faces as when the run ended,
    # never on the slice that picked its epoch, and recorded with its dataset.
    promoted = promote(tmp_path / "scratch", "ck_scratch", dest_root=tmp_path / "trained", compact=True)
    again = json.loads((promoted / "metrics.json").read_text())
    assert again["split"] == metrics["split"] == "test" and not again["reported_on_selection_split"]
    assert again["n"] == metrics["n"] and again["dataset"]["name"] == metrics["dataset"]["name"] == "ck"
    assert again["dataset"]["fingerprint"] == metrics["dataset"]["fingerprint"]
    # Evaluated on its own dataset, the model is measured on its held-out faces only (the promoted
    # copy keeps the list), never on the 80% it trained on, and says so.
    assert (promoted / "held_out.txt").read_text() == (tmp_path / "scratch" / "held_out.txt").read_text()
    code, out, err = cli("evaluate", "--model", promoted, "--data", ck_folder, "--json")
    assert code == 0, err
    measured = json.loads(out)
    assert measured["split"] == "held-out" and measured["n"] == metrics["n"]
    assert measured["accuracy"] == pytest.approx(again["accuracy"], abs=1e-6)
    assert f"measured on its {metrics['n']} held-out images" in err
    # Through the label review's corrected copy (a labelled CSV naming the same files, less two)
    # of a copy of the folder, the faces it learned are recognised by their pixels: only its
    # held-out faces are measured, never the ones it trained or selected on.
    from fer_core.data.corrections import EXCLUDE, write_corrected_copy

    moved = shutil.copytree(ck_folder, tmp_path / "elsewhere" / "ck")
    held = (promoted / "held_out.txt").read_text().split()
    images = [(str(p.relative_to(moved)), p.parent.name, p.name[:4]) for p in sorted(moved.rglob("*.png"))]
    learned = next(path for path, _label, _group in images if path not in held)
    copy = write_corrected_copy(moved, images, {held[0]: EXCLUDE, learned: EXCLUDE}, CK_CLASSES)
    code, out, err = cli("evaluate", "--model", promoted, "--data", copy, "--json")
    assert code == 0, err
    through_copy = json.loads(out)
    assert through_copy["split"] == "held-out" and through_copy["n"] == len(held) - 1
    assert f"measured on its {len(held) - 1} held-out images: {len(images) - len(held) - 1} of the" in err
    assert "recognised by their pixels" in err


def test_transfer_to_three_classes_builds_a_new_head(valence_folder, tiny_run, tmp_path):
    from fer_core.artifacts import load_model, resolve_model

    code, _out, err = cli(
        "train", *tiny_flags(valence_folder, epochs=2), "--init", tiny_run, "--run-dir", tmp_path / "valence"
    )
    assert code == 0, err
    model, source = load_model(resolve_model(tmp_path / "valence")), load_model(resolve_model(tiny_run))
    assert model.output_shape == (None, 3)
    metrics = json.loads((tmp_path / "valence" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["classes"] == ["negative", "neutral", "positive"]
    assert first_conv_correlation(model, source) > 0.5  # the body came from the FER2013 model


def first_conv_correlation(a, b) -> float:
    """Correlation of two models' first convolution kernels."""
    kernels = [next(w for w in m.get_weights() if w.ndim == 4).ravel() for m in (a, b)]
    return float(np.corrcoef(*kernels)[0, 1])


@pytest.fixture(scope="module")
def ck_crossval(ck_folder, tmp_path_factory):
    """A real 3-fold cross-validation of the CK-shaped folder, grouped by subject, made once for
    the module through the command line: (folder, what --json printed, its stderr, its exit code)."""
    out = tmp_path_factory.mktemp("ck_runs") / "cv"
    code, out_text, err = cli(
        "crossval", *tiny_flags(ck_folder, epochs=2), "--folds", "3", "--group-by", r"^(S\d+)_", "--out", out, "--json"
    )
    return out, out_text, err, code


@pytest.mark.trains
def test_crossval_keeps_each_subject_in_one_fold(ck_crossval, ck_folder, tmp_path):
    out, out_text, err, code = ck_crossval
    assert code == 0, err
    result = json.loads(out_text)
    assert result["folds"] == 3 and result["groups"] == 6 and result["classes"] == list(CK_CLASSES)
    folds = json.loads((out / "folds.json").read_text())["files"]
    subject_folds: dict[str, set] = {}
    for file, fold in folds.items():
        subject_folds.setdefault(file.split("/")[-1][:4], set()).add(fold)
    assert all(len(f) == 1 for f in subject_folds.values())  # no subject on both sides
    tested = [set(row["test_groups"]) for row in result["per_fold"]]
    assert set().union(*tested) == set(subject_folds) and sum(len(t) for t in tested) == 6
    assert sum(row["test_images"] for row in result["per_fold"]) == result["pooled"]["n"] == 84
    accuracies = [row["accuracy"] for row in result["per_fold"]]
    assert result["accuracy"]["mean"] == pytest.approx(np.mean(accuracies))
    assert result["accuracy"]["std"] == pytest.approx(np.std(accuracies, ddof=1))
    matrix = np.array(result["pooled"]["confusion_matrix"])
    assert matrix.shape == (7, 7) and result["pooled"]["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    for row in result["per_fold"]:  # each fold a run, reported on its held-out fold, named in held_out.txt
        metrics = json.loads((out / f"fold-{row['fold']}" / "metrics.json").read_text())
        assert metrics["split"] == "test" and metrics["n"] == row["test_images"]
        held = (out / f"fold-{row['fold']}" / "held_out.txt").read_text().split()
        assert sorted(held) == sorted(f for f, k in folds.items() if k == row["fold"] - 1)
    near = result["near_identical_across_folds"]  # the synthetic faces share their smooth shape
    assert near["count"] and all(len({folds[f] for f in files}) > 1 for files in near["examples"])
    # Evaluated on its dataset, a fold's model is measured on its own fold only, the number it reported.
    code, text, err = cli("evaluate", "--model", out / "fold-2", "--data", ck_folder, "--json")
    assert code == 0, err
    measured, fold_two = json.loads(text), result["per_fold"][1]
    assert measured["split"] == "held-out" and measured["n"] == fold_two["test_images"]
    assert measured["accuracy"] == pytest.approx(fold_two["accuracy"], abs=1e-6)
    # Every image once in out_of_fold.csv, from the fold that did not train on it; the review reads it.
    import pandas as pd

    from fer_core.evaluation.label_review import REVIEW_COLUMNS

    table = pd.read_csv(out / "out_of_fold.csv")
    assert list(table.columns) == ["path", "group", "fold", "label", *CK_CLASSES] and len(table) == 84
    assert dict(zip(table["path"], table["fold"] - 1)) == folds
    assert np.allclose(table[list(CK_CLASSES)].sum(axis=1), 1, atol=1e-4)
    assert set(table["group"]) == set(subject_folds)
    code, text, err = cli("review", out, "--csv", tmp_path / "suspects.csv", "--top", "3")
    assert code == 0, err
    suspects = pd.read_csv(tmp_path / "suspects.csv")
    found = int(text.strip().splitlines()[-1].split()[0])  # "N suspect labels; ..."
    assert list(suspects.columns) == list(REVIEW_COLUMNS)
    assert list(suspects["rank"]) == list(range(1, min(found, 3) + 1))  # --top 3: the CSV too
    assert set(suspects["path"]) <= set(table["path"]) and text.strip().endswith(
        f"written: {tmp_path / 'suspects.csv'}"
    )


@pytest.mark.parametrize("same_fold", [True, False])
def test_near_identical_images_in_two_folds_are_named(same_fold):
    """A face and the same face a little brighter (one sequence's frames) share a perceptual hash:
    named when two folds hold them, not when one does."""
    from fer_core.data.dataset import Dataset
    from fer_core.training.crossval import near_identical_across_folds

    face, other = synthetic_face(0, 3), synthetic_face(3, 4)
    images = np.stack([face, np.clip(face.astype(int) + 6, 0, 255).astype(np.uint8), other, other[:, ::-1]])
    dataset = Dataset(
        images=images,
        labels=np.array([0, 0, 3, 3]),
        splits=np.array(["all"] * 4),
        classes=("a", "b", "c", "d"),
        sources=np.array(["x/a1.png", "x/a2.png", "x/c1.png", "x/c2.png"]),
    )
    found = near_identical_across_folds(dataset, np.array([0, 0 if same_fold else 1, 0, 1]))
    assert found == (
        {"count": 0, "examples": []} if same_fold else {"count": 1, "examples": [["x/a1.png", "x/a2.png"]]}
    )


def test_suspect_labels_are_reviewed_on_the_evaluate_page_and_saved_as_a_corrected_copy(
    ck_crossval, ck_folder, tiny_run, tmp_path, monkeypatch
):
    """Evaluate's cross-validation section shows the suspects with their faces; one excluded and
    one relabelled, "Save a corrected copy" writes label,path,group beside the dataset (the
    originals untouched), and the copy loads as a dataset of the same classes."""
    import streamlit_webrtc.component
    from streamlit.testing.v1 import AppTest

    from fer_core.data import load_dataset
    from fer_core.evaluation.label_review import review
    from fer_core.training.promote import promote
    from helpers import APP

    out = ck_crossval[0]
    promote(tiny_run, "cnn", dest_root=tmp_path / "trained")
    monkeypatch.setenv("FER_TRAINED_DIR", str(tmp_path / "trained"))
    monkeypatch.setenv("FER_RUNS_DIR", str(out.parent))
    monkeypatch.setenv("FER_DATA", str(ck_folder))
    monkeypatch.setattr(streamlit_webrtc.component, "get_this_session_info", lambda: None)
    suspects = review(out)
    assert len(suspects) >= 2, "the tiny folds' models doubt a few labels"
    before = sorted(p.name for p in ck_folder.rglob("*"))
    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("app_pages/evaluate.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    # The section warns of the near-identical faces across folds (the synthetic faces share a
    # hash), and each fold's model can be picked: measured on its own fold, never its training.
    assert any("near-identical images sit in different folds" in w.value for w in at.warning)
    [models] = [m for m in at.multiselect if m.label == "Models"]
    assert "run cv/fold-1" in models.options
    models.set_value(["run cv/fold-1"]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    fold_one = json.loads((out / "crossval.json").read_text())["per_fold"][0]["test_images"]
    assert any(f"measured on its {fold_one} held-out images" in i.value for i in at.info)
    first, second = suspects["path"].iloc[0], suspects["path"].iloc[1]
    boxes = {box.label: box for box in at.selectbox}
    boxes[first].set_value("exclude")
    relabel = next(o for o in boxes[second].options if o.startswith("relabel as "))
    boxes[second].set_value(relabel)
    at.run()
    [save] = [b for b in at.button if b.label.startswith("Save a corrected copy")]
    assert save.label == "Save a corrected copy (2 changed)"
    save.click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    written = ck_folder.parent / "ck-corrected.csv"
    assert written.is_file() and any(written.name in s.value for s in at.success)
    rows = written.read_text().splitlines()
    assert rows[0] == "label,path,group" and len(rows) == 1 + 84 - 1
    assert not any(f"ck/{first}," in row for row in rows)
    assert f"{relabel.removeprefix('relabel as ')},ck/{second}," in "\n".join(rows)
    corrected = load_dataset(str(written), use_cache=False)
    assert len(corrected) == 83 and tuple(corrected.classes) == CK_CLASSES
    assert sorted(p.name for p in ck_folder.rglob("*")) == before
    written.unlink()


@pytest.mark.trains
def test_a_stopped_crossval_resumes_from_its_finished_folds(ck_folder, tmp_path, monkeypatch):
    """Stopped after its first fold (the real stop request), the cross-validation says how to go
    on; `--resume` trains only the second fold and leaves the first as it was."""
    from fer_core.training import crossval as crossval_module
    from fer_core.training.crossval_runs import request_crossval_stop

    out = tmp_path / "cv"
    written = crossval_module._write_fold_predictions

    def stop_after_the_first_fold(run_dir, fold_data, k):
        written(run_dir, fold_data, k)
        if k == 0:
            request_crossval_stop(out)

    monkeypatch.setattr(crossval_module, "_write_fold_predictions", stop_after_the_first_fold)
    config = tiny_config(ck_folder)
    with pytest.raises(FerError, match=r"stopped before fold 2 of 2; resume with fer-core crossval --resume"):
        crossval_module.crossval(config, 2, out, group_by=r"^(S\d+)_")
    first = (out / "fold-1" / "model.keras").stat().st_mtime_ns
    assert not (out / "fold-2").exists() and not (out / "crossval.json").exists()
    code, _text, err = cli("review", out)
    assert_one_line_error(code, err, "no out_of_fold.csv: the cross-validation has not finished")
    # A fresh process: this one still stops after the first fold.
    code, text, err = run_cli("crossval", "--resume", out, "--json")
    assert code == 0, err
    assert json.loads(text)["folds"] == 2 and (out / "fold-1" / "model.keras").stat().st_mtime_ns == first
    assert len((out / "out_of_fold.csv").read_text().splitlines()) == 85
    code, _text, err = run_cli("crossval", "--resume", out)
    assert_one_line_error(code, err, "finished already")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--folds", "7", "--group-by", r"^(S\d+)_"], "6 groups cannot fill 7 folds"),
        (["--folds", "13"], "fewer than the 13 folds"),
        (["--group-by", r"^(Q\d+)_"], "matches no file name"),
    ],
)
def test_crossval_refuses_what_cannot_be_folded(ck_folder, extra, message, tmp_path):
    code, _out, err = cli("crossval", "--model", "cnn", "--data", ck_folder, "--out", tmp_path / "cv", *extra)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "cv" / "fold-1").exists()


def test_photos_that_are_not_face_crops_go_through_the_detector(tmp_path):
    """`--detect-faces`: each photo's face is found and cropped; a photo without one is named."""
    import skimage.data

    astronaut, coffee = skimage.data.astronaut(), skimage.data.coffee()
    root = tmp_path / "photos"
    for name, flip in (("smiling", False), ("also_smiling", True)):
        (root / name).mkdir(parents=True)
        for k in range(3):
            image = astronaut[:, ::-1] if flip else astronaut
            Image.fromarray(np.roll(image, 8 * k, axis=1)).save(root / name / f"p{k}.jpg", quality=92)
    Image.fromarray(coffee).save(root / "smiling" / "cup.jpg")
    code, out, err = cli("stats", "--data", root, "--detect-faces", "--json")
    assert code == 0, err
    stats = json.loads(out)
    assert stats["n"] == 6 and stats["classes"] == ["also_smiling", "smiling"]
    named = [line for line in stats["load_report"] if "no face found" in line]
    assert named and "cup.jpg" in named[0], stats["load_report"]  # named, not silently dropped
    assert "no face found" in err  # and said on stderr
    from fer_core.inference.faces import dataset_face_finder

    crop = dataset_face_finder()((root / "smiling" / "p0.jpg").read_bytes(), "p0.jpg")
    whole = load_dataset(root, use_cache=False)  # without detection: the whole photo shrunk
    assert crop.shape == (48, 48) and len(whole) == 7
    # The crop is the face (the astronaut's, at about x 170-280, y 60-175), not the whole photo.
    import cv2

    by_hand = cv2.resize(cv2.cvtColor(astronaut[60:175, 170:285], cv2.COLOR_RGB2GRAY), (48, 48))
    shrunk = whole.images[list(whole.sources).index("smiling/p0.jpg")]
    face_match = np.corrcoef(crop.ravel(), by_hand.ravel())[0, 1]
    assert face_match > 0.7 > np.corrcoef(shrunk.ravel(), by_hand.ravel())[0, 1]


@pytest.mark.trains
def test_a_crossval_is_launched_stopped_and_resumed_from_the_train_page(ck_folder, tmp_path, monkeypatch):
    """The Train page launches a 2-fold cross-validation as its own process; its Stop ends it
    with the finished folds kept (no crossval.json); Resume trains the rest; it ends with every
    image's out-of-fold probabilities."""

    import streamlit_webrtc.component
    from streamlit.testing.v1 import AppTest

    from fer_core.training.crossval_runs import crossval_progress
    from helpers import APP

    monkeypatch.setenv("FER_DATA", str(ck_folder))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(streamlit_webrtc.component, "get_this_session_info", lambda: None)

    at = AppTest.from_file(APP, default_timeout=240)
    at.run()
    at.switch_page("app_pages/train.py")
    at.run()
    numbers = {box.label: box for box in at.number_input}
    numbers["Epochs"].set_value(3)
    numbers["Batch size"].set_value(8)
    at.run()
    at.radio(key="launch_mode").set_value("a cross-validation").run()
    at.number_input(key="folds").set_value(2).run()
    assert any("A run a fold" in c.value for c in at.caption)
    at.button(key="launch_cv").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    folder = Path(at.session_state["watching"])
    wait_until(lambda: (folder / "fold-1" / "progress.json").is_file(), 180, "the first fold to start")
    at.run()
    at.button(key="stop_cv").click().run()
    wait_until(lambda: crossval_progress(folder).status == "stopped", 180, "the stop")
    assert not (folder / "crossval.json").exists() and not (folder / "fold-2" / "metrics.json").exists()
    at.run()
    assert "stopped with" in crossval_progress(folder).text
    at.button(key="resume_cv").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    wait_until(lambda: crossval_progress(folder).status in ("finished", "failed"), 300, "the resumed cross-validation")
    assert crossval_progress(folder).status == "finished", crossval_progress(folder).text
    assert len((folder / "out_of_fold.csv").read_text().splitlines()) == 85


def test_zero_shot_measures_a_fer2013_model_on_the_classes_it_knows(ck_folder, tiny_run):
    """The baseline on the Dataset page: a FER2013 model on a CK+-style folder, anger and sadness
    matched by synonym, contempt left out, every other image measured."""
    from fer_core.artifacts import resolve_model
    from fer_core.evaluation.evaluate import zero_shot

    dataset = load_dataset(ck_folder, use_cache=False)
    [row] = zero_shot(dataset, [resolve_model(tiny_run)])
    assert row["images"] == 72 and row["left out"] == "contempt" and row["trained on"] == "FER2013"
    assert "anger (as angry)" in row["classes known"] and "sadness (as sad)" in row["classes known"]
    assert 0 <= row["accuracy"] <= 1
