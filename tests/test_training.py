"""fer_core.training and fer_core.runs: run directories, validation, stop/resume, promotion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fer_core import FerError
from fer_core.data import load_dataset
from fer_core.fileio import read_json
from fer_core.runs import list_runs, promote, read_run, request_stop
from fer_core.training import TrainConfig, learning_rate_at, read_history, train

TINY_PARAMS = ["--param", "filters=[8,16,32]", "--param", "dense_units=16"]


def test_a_finished_run_has_every_file(tiny_run):
    for name in ("config.json", "history.csv", "progress.json", "model.keras", "metrics.json", "train.log",
                 "checkpoint.keras", "state.json"):
        assert (tiny_run / name).is_file(), name
    config = TrainConfig.from_dict(read_json(tiny_run / "config.json"))
    assert config.model == "cnn" and config.epochs == 2 and config.seed == 3
    history = read_history(tiny_run)
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(np.isfinite(row["val_loss"]) for row in history)
    info = read_run(tiny_run)
    assert info.status == "finished" and info.epoch == 2
    metrics = read_json(tiny_run / "metrics.json")
    assert metrics["split"] == "PublicTest" and metrics["n"] == 42
    # The best checkpoint is the epoch with the best validation accuracy.
    assert info.best_val_accuracy == pytest.approx(max(row["val_accuracy"] for row in history), abs=1e-6)
    assert metrics["accuracy"] == pytest.approx(info.best_val_accuracy, abs=1e-6)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"epochs": -3}, "epochs must be >= 1"),
        ({"learning_rate": 0.0}, "learning rate must be > 0"),
        ({"learning_rate": -1e-3}, "learning rate must be > 0"),
        ({"batch_size": 0}, "batch size must be >= 1"),
        ({"model": "vgg"}, "valid models"),
        ({"label_smoothing": 1.5}, "label smoothing"),
        ({"precision": "int8"}, "precision must be one of"),
        ({"limit": 0}, "limit must be >= 1"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(FerError, match=message):
        TrainConfig(**settings).validate()


def test_batch_larger_than_data_is_refused(folder_dataset, tmp_path):
    config = TrainConfig(data=str(folder_dataset), batch_size=10_000)
    with pytest.raises(FerError, match="larger than the 42 training images"):
        train(config, out=tmp_path, dataset=load_dataset(folder_dataset), echo=False)
    assert list(tmp_path.iterdir()) == []  # refused before a run directory is made


def test_unwritable_output_folder_is_refused(folder_dataset, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    config = TrainConfig(data=str(folder_dataset), epochs=1, batch_size=8)
    with pytest.raises(FerError, match="cannot create"):
        train(config, out=blocker / "runs", dataset=load_dataset(folder_dataset), echo=False)


def test_unknown_config_keys_are_refused():
    with pytest.raises(FerError, match="unknown training settings: colour"):
        TrainConfig.from_dict({"model": "cnn", "colour": "red"})


def test_learning_rate_schedules():
    constant = TrainConfig(learning_rate=1e-3)
    assert [learning_rate_at(constant, e) for e in range(3)] == [1e-3] * 3
    cosine = TrainConfig(learning_rate=1e-3, lr_schedule="cosine", epochs=11, warmup_epochs=1)
    rates = [learning_rate_at(cosine, e) for e in range(11)]
    assert rates[0] == pytest.approx(1e-3) and rates[1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[1:], rates[2:])) and rates[-1] < 1e-4


def test_validation_slice_when_there_is_no_public_test(tmp_path):
    from conftest import write_folder_dataset
    from fer_core.training import prepare_data

    root = write_folder_dataset(tmp_path, per_class=10, splits=(("train", "Training"),))
    data = prepare_data(TrainConfig(validation_split=0.2, batch_size=8), load_dataset(root))
    assert data.val_split == "validation" and len(data.y_val) == 14 and len(data.y_train) == 56
    assert np.bincount(data.y_val, minlength=7).tolist() == [2] * 7  # stratified


def test_promote_replaces_atomically_and_loads(tiny_run, tmp_path):
    from fer_core.artifacts import load_model, resolve_model

    dest = tmp_path / "trained"
    final = promote(tiny_run, "tiny", dest_root=dest)
    assert sorted(p.name for p in final.iterdir()) == ["MODEL_CARD.md", "config.json", "history.csv", "metrics.json", "model.keras"]
    first_bytes = (final / "model.keras").read_bytes()
    promote(tiny_run, "tiny", dest_root=dest)  # again: replaced, not duplicated
    assert [p.name for p in dest.iterdir()] == ["tiny"]
    assert (final / "model.keras").read_bytes() == first_bytes
    os.environ["FER_TRAINED_DIR"] = str(dest)
    assert load_model(resolve_model("tiny")).name == "cnn"
    assert "Validation accuracy" in (final / "MODEL_CARD.md").read_text()


def test_failed_promotion_keeps_the_shipped_model(tiny_run, tmp_path):
    dest = tmp_path / "trained"
    promote(tiny_run, "tiny", dest_root=dest)
    shipped = (dest / "tiny" / "model.keras").read_bytes()
    broken = tmp_path / "broken_run"
    broken.mkdir()
    for name in ("config.json", "history.csv", "metrics.json", "progress.json"):
        (broken / name).write_bytes((tiny_run / name).read_bytes())
    (broken / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(FerError, match="not a valid .keras file"):
        promote(broken, "tiny", dest_root=dest)
    assert (dest / "tiny" / "model.keras").read_bytes() == shipped
    assert [p.name for p in dest.iterdir()] == ["tiny"]


def test_a_run_whose_process_is_gone_reads_as_interrupted(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "cnn", "epochs": 5}))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / "progress.json").write_text(json.dumps({"status": "running", "pid": dead.pid, "epoch": 2, "epochs": 5}))
    info = read_run(run)
    assert info.status == "interrupted" and not info.active
    with pytest.raises(FerError, match="not running"):
        request_stop(run)
    assert [r.name for r in list_runs(tmp_path)] == ["r"]


def _cli(*args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "fer_core", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_stop_then_resume_continues_from_the_last_epoch(folder_dataset, tmp_path):
    run = tmp_path / "run"
    process = _cli("train", "--model", "cnn", "--data", str(folder_dataset), "--epochs", "4", "--batch-size", "4",
                   "--run-dir", str(run), "--patience", "0", *TINY_PARAMS)
    deadline = time.time() + 240
    while time.time() < deadline and len(read_history(run)) < 1:
        time.sleep(0.2)
    assert read_history(run), "no epoch finished in time"
    request_stop(run)  # via the STOP file, as the dashboard does
    _out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    info = read_run(run)
    assert info.status == "stopped"
    stopped_at = len(read_history(run))
    assert 1 <= stopped_at < 4
    assert (run / "model.keras").is_file()

    resumed = _cli("train", "--resume", str(run), "--quiet")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "finished"
    history = read_history(run)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert read_run(run).status == "finished"

    again = _cli("train", "--resume", str(run))
    _out, err = again.communicate(timeout=120)
    assert again.returncode == 2 and "already finished" in err and "Traceback" not in err
