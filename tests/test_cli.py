"""The fer-core CLI contract: exit codes, one-line errors, JSON shapes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_core import CLASS_NAMES
from fer_core.cli import main
from helpers import assert_one_line_error, run_cli


def test_stats_json_shape(folder_dataset, capsys):
    assert main(["stats", "--data", str(folder_dataset), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats["splits"]) == {"Training", "PublicTest"}
    assert stats["splits"]["Training"] == {name: 6 for name in CLASS_NAMES}
    assert stats["imbalance"]["ratio"] == 1.0
    assert set(stats["mean_faces"]) == set(CLASS_NAMES)
    assert len(stats["mean_faces"]["happy"]) == 48
    assert {"mean", "std", "histogram"} <= set(stats["pixels"])
    assert stats["blank"]["count"] == 0


def test_stats_flags_blank_images(tmp_path, capsys):
    import cv2
    import numpy as np

    from helpers import write_folder_dataset

    root = write_folder_dataset(tmp_path, per_class=1)
    cv2.imwrite(str(root / "train" / "sad" / "Training_777.png"), np.zeros((48, 48), np.uint8))
    assert main(["stats", "--data", str(root), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["blank"] == {"count": 1, "examples": ["train/sad/Training_777.png"]}


def test_stats_table(folder_dataset, capsys):
    assert main(["stats", "--data", str(folder_dataset)]) == 0
    out = capsys.readouterr().out
    assert "Training" in out and "PublicTest" in out and "happy" in out


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["stats", "--data", "/no/such/folder"], ["does not exist", "/no/such/folder"]),
        (["train", "--model", "vgg", "--data", "/no/such"], ["unknown model 'vgg'", "cnn, attention_cnn, resnet50"]),
        (["train", "--model", "cnn", "--data", "{data}", "--epochs", "0"], ["epochs must be >= 1"]),
        (["train", "--model", "cnn", "--data", "{data}", "--lr", "-1"], ["learning rate must be > 0"]),
        (
            ["train", "--model", "cnn", "--data", "{data}", "--batch-size", "100000"],
            ["larger than the 38 training images"],
        ),  # 42 less the selection slice
        (["evaluate", "--model", "nosuchmodel", "--data", "{data}"], ["no model 'nosuchmodel'"]),
        (["evaluate", "--model", "{notkeras}", "--data", "{data}"], ["only .keras model files"]),
        (["train", "--resume", "/no/such/run"], ["not a run directory"]),
        (["train", "--model", "cnn", "--data", "{data}", "--minutes", "0"], ["minutes must be > 0"]),
        (["train", "--model", "cnn", "--data", "{data}", "--init", "/no/such/model.keras"], ["no model"]),
        (["compact", "{notkeras}"], ["only .keras model files"]),
        (["compact", "{fakekeras}"], ["not a valid .keras file"]),
    ],
)
@pytest.mark.slow  # a fresh process per case, most of them importing Keras
def test_user_errors_exit_2_with_one_line(args, fragments, folder_dataset, tmp_path):
    not_keras = tmp_path / "model.h5"
    not_keras.write_bytes(b"\x89HDF")
    fake_keras = tmp_path / "fake.keras"
    fake_keras.write_bytes(b"not a zip archive")
    args = [a.format(data=folder_dataset, notkeras=not_keras, fakekeras=fake_keras) for a in args]
    code, _out, err = run_cli(*args)
    assert_one_line_error(code, err, *fragments)
    assert fake_keras.read_bytes() == b"not a zip archive", "a refused file is left as it was"


def test_evaluate_json_shape_and_consistency(tiny_run, folder_dataset):
    code, out, err = run_cli("evaluate", "--model", tiny_run, "--data", folder_dataset, "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert {"accuracy", "macro_f1", "n", "split", "per_class", "confusion_matrix", "classes"} <= set(metrics)
    assert metrics["split"] == "PublicTest" and metrics["n"] == 42 and metrics["classes"] == list(CLASS_NAMES)
    matrix = metrics["confusion_matrix"]
    assert sum(matrix[i][i] for i in range(7)) / 42 == pytest.approx(metrics["accuracy"])
    assert [metrics["per_class"][c]["support"] for c in CLASS_NAMES] == [6] * 7
    # Reloading the run's best model reproduces the metrics.json the run wrote.
    saved = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(saved["accuracy"], abs=1e-9)
    assert metrics["confusion_matrix"] == saved["confusion_matrix"]


def test_evaluate_ensemble_and_tta(tiny_run, folder_dataset, capsys):
    assert (
        main(
            [
                "evaluate",
                "--model",
                f"{tiny_run},{tiny_run / 'model.keras'}",
                "--data",
                str(folder_dataset),
                "--split",
                "PublicTest",
                "--tta",
                "--json",
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["split"] == "PublicTest" and len(metrics["models"]) == 2
    # An ensemble of one model twice is that model; with --tta it is the mean with the mirrored faces.
    from fer_core.artifacts import load_model
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate

    mirrored = evaluate([load_model(tiny_run)], load_dataset(folder_dataset), split="PublicTest", tta=True).metrics
    assert metrics["loss"] == pytest.approx(mirrored["loss"], abs=1e-5)
    assert metrics["confusion_matrix"] == mirrored["confusion_matrix"]


def test_evaluate_by_trained_name(tiny_run, folder_dataset, capsys, tmp_path, monkeypatch):
    from fer_core.training.promote import promote

    monkeypatch.setenv("FER_TRAINED_DIR", str(tmp_path / "trained"))
    promote(tiny_run, "cnn")
    assert main(["evaluate", "--model", "cnn", "--data", str(folder_dataset), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"] == ["cnn"]
    assert main(["models", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert list(listed["registered"])[:3] == ["cnn", "attention_cnn", "resnet50"] and "cnn" in listed["trained"]


def test_predict_json_shape(tiny_run, folder_dataset, tmp_path, capsys):
    face = next((folder_dataset / "test" / "happy").iterdir())
    bad = tmp_path / "broken.jpg"
    bad.write_text("<html>not an image</html>")
    code = main(["predict", "--model", str(tiny_run), str(face), str(bad), "--json"])
    captured = capsys.readouterr()
    assert code == 2  # one file failed; the other still got its result
    results = json.loads(captured.out)
    assert [r["file"] for r in results] == [str(face), str(bad)]
    good, broken = results
    assert good["error"] is None and len(good["faces"]) == 1
    only = good["faces"][0]
    assert only["box"] == [0, 0, 48, 48] and only["label"] in CLASS_NAMES
    assert set(only["probabilities"]) == set(CLASS_NAMES)
    assert sum(only["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert broken["faces"] == [] and "broken.jpg" in broken["error"]
    assert "broken.jpg" in captured.err


def test_predict_and_evaluate_agree_under_flip_zoom_tta(tiny_run, folder_dataset, capsys):
    from fer_core.artifacts import load_model
    from fer_core.evaluation import predict_probabilities
    from fer_core.data.images import read_grayscale

    face = next((folder_dataset / "test" / "sad").iterdir())
    assert main(["predict", "--model", str(tiny_run), str(face), "--tta", "flip+zoom", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)[0]["faces"][0]["probabilities"]
    expected = predict_probabilities(load_model(tiny_run), read_grayscale(face)[None], tta="flip+zoom")[0]
    plain = predict_probabilities(load_model(tiny_run), read_grayscale(face)[None])[0]
    assert [predicted[c] for c in CLASS_NAMES] == pytest.approx(expected.tolist(), abs=1e-5)
    assert not np.allclose(expected, plain, rtol=0, atol=1e-7), "the views change what a trained model answers"


@pytest.mark.trains
def test_train_then_runs_listing(folder_dataset, tmp_path, capsys):
    out = tmp_path / "runs"
    assert (
        main(
            [
                "train",
                "--model",
                "cnn",
                "--data",
                str(folder_dataset),
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--limit",
                "14",
                "--out",
                str(out),
                "--quiet",
                "--param",
                "filters=[4,8,8]",
                "--param",
                "dense_units=8",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "finished" and summary["epoch"] == 1
    config = json.loads((tmp_path / "runs" / os.path.basename(summary["run_dir"]) / "config.json").read_text())
    assert config["limit"] == 14 and config["model_params"] == {"filters": [4, 8, 8], "dense_units": 8}
    assert main(["runs", "--out", str(out), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert runs[0]["status"] == "finished" and runs[0]["model"] == "cnn"


def test_train_flag_choices_are_the_ones_training_accepts():
    """The parser's choices come from TrainConfig.OPTIONS, every option list of it, unchanged."""
    from fer_core.cli import build_parser
    from fer_core.training.config import TrainConfig

    train = next(a for a in build_parser()._subparsers._group_actions[0].choices.values() if a.prog.endswith(" train"))
    choices = {action.dest: tuple(action.choices) for action in train._actions if action.choices}
    assert choices == TrainConfig.OPTIONS
    assert set(TrainConfig.OPTIONS) == {"optimizer", "lr_schedule", "class_weights", "precision"}


def test_promote_measures_a_run_from_another_machine_on_the_data_named_here(
    tiny_run, folder_dataset, tmp_path, capsys, monkeypatch
):
    """A GPU machine's run names its own copy of the data; --data names the one here."""
    import shutil

    run = tmp_path / "gpu-run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": "/tmp/elsewhere/fer2013"}))
    monkeypatch.setenv("FER_TRAINED_DIR", str(tmp_path / "trained"))
    assert main(["promote", str(run), "--name", "cnn"]) == 2
    assert "is not here (name a copy of it with --data)" in capsys.readouterr().err
    assert not (tmp_path / "trained" / "cnn").exists()
    assert main(["promote", str(run), "--name", "cnn", "--data", str(folder_dataset)]) == 0
    shipped = tmp_path / "trained" / "cnn"
    metrics = json.loads((shipped / "metrics.json").read_text())
    assert metrics["split"] == "PublicTest" and metrics["n"] == 42
    card = (shipped / "MODEL_CARD.md").read_text()
    assert "Data: /tmp/elsewhere/fer2013" in card  # where it trained ...
    assert f"--model cnn --data {folder_dataset} --split PublicTest" in card  # ... and where to reproduce it
    assert main(["promote", str(run), "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_predict_reports_a_missing_image_before_loading_any_model(tmp_path):
    """A typo costs no Keras import: the paths are checked first."""
    import subprocess
    import sys

    script = (
        "import sys; from fer_core.cli import main; code = main(['predict', sys.argv[1]]); "
        "print(code, 'keras' in sys.modules, 'tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "nope.jpg")], capture_output=True, text=True)
    assert done.stdout.split() == ["2", "False", "False"], done.stderr
    assert_one_line_error(2, done.stderr, "nope.jpg: no such file or folder")


def test_predict_defaults_to_the_best_model_expands_folders_and_reports_in_order(
    tiny_run, folder_dataset, tmp_path, monkeypatch, capsys
):
    import csv
    import shutil

    from fer_core.fileio import read_json
    from fer_core.training.promote import promote

    trained = tmp_path / "trained"
    monkeypatch.setenv("FER_TRAINED_DIR", str(trained))
    for name, accuracy in (("weaker", 0.20), ("better", 0.60)):
        folder = promote(tiny_run, name, dest_root=trained, compact=False, again=True)
        metrics = read_json(folder / "metrics.json")
        (folder / "metrics.json").write_text(json.dumps({**metrics, "accuracy": accuracy}))
    images = tmp_path / "photos"
    images.mkdir()
    faces = sorted((folder_dataset / "test" / "happy").iterdir())[:2]
    shutil.copy(faces[0], images / "a.jpg")
    (images / "b.jpg").write_text("not an image")
    shutil.copy(faces[1], images / "c.jpg")
    (images / "notes.txt").write_text("ignored: not an image file")
    out_csv = tmp_path / "out.csv"
    code = main(["predict", str(images), "--tta", "flip", "--csv", str(out_csv)])
    captured = capsys.readouterr()
    assert code == 2  # one of three refused: non-zero, after the good ones were reported
    assert [line.split(":")[0] for line in captured.out.splitlines()] == [str(images / "a.jpg"), str(images / "c.jpg")]
    assert "b.jpg" in captured.err
    rows = list(csv.DictReader(out_csv.open()))
    assert [Path(r["file"]).name for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert {r["model"] for r in rows} == {"better"} and {r["tta"] for r in rows} == {"flip"}
    assert rows[1]["error"] and rows[0]["label"] in CLASS_NAMES
    assert sum(float(rows[0][c]) for c in CLASS_NAMES) == pytest.approx(1.0, abs=1e-3)


def test_split_names_are_matched_without_regard_to_case(tiny_run, folder_dataset, capsys):
    assert (
        main(["evaluate", "--model", str(tiny_run), "--data", str(folder_dataset), "--split", "publictest", "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["split"] == "PublicTest"
    code = main(["evaluate", "--model", str(tiny_run), "--data", str(folder_dataset), "--split", "nosuch"])
    assert code == 2 and "no split named 'nosuch'" in capsys.readouterr().err


def test_a_bare_model_file_is_labelled_as_fer2013_and_says_so(tiny_run, folder_dataset, tmp_path):
    """A .keras file with no records beside it: its 7 outputs read as FER2013's, said in one warning."""
    bare = tmp_path / "bare.keras"
    shutil.copy(tiny_run / "model.keras", bare)
    face = sorted((folder_dataset / "test" / "happy").iterdir())[0]
    code, out, err = run_cli("predict", "--model", bare, face, "--json")
    assert code == 0, err
    assert err.strip() == (
        "fer-core: warning: bare.keras has no records naming its classes: its 7 outputs are read as FER2013's "
        '(put a config.json with "classes" beside it to name others)'
    )
    assert list(json.loads(out)[0]["faces"][0]["probabilities"]) == list(CLASS_NAMES)
