"""fer_core.training.loop: a run directory from a config, refusals before it is made, stop and resume, the time budget, prepared runs, the wrap-up."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from fer_core import FerError
from fer_core.data import load_dataset
from fer_core.fileio import read_json
from fer_core.models import list_models
from helpers import model_params, start_cli, tiny_config, tiny_flags, wait_until
from fer_core.training.runs import read_run, request_stop
from fer_core.rundir import read_history
from fer_core.training.config import TrainConfig
from fer_core.training.loop import prepare_data, train


def _prepared_run(tmp_path, config: TrainConfig):
    from fer_core.fileio import write_json_atomic

    run = tmp_path / "prepared"
    run.mkdir()
    write_json_atomic(run / "config.json", config.to_dict())
    return run


def test_a_finished_run_has_every_file(tiny_run, folder_dataset):
    from fer_core.artifacts import load_model
    from fer_core.evaluation import evaluate

    for name in (
        "config.json",
        "history.csv",
        "progress.json",
        "model.keras",
        "metrics.json",
        "train.log",
        "checkpoint.keras",
        "state.json",
    ):
        assert (tiny_run / name).is_file(), name
    config = TrainConfig.from_dict(read_json(tiny_run / "config.json"))
    assert config.model == "cnn" and config.epochs == 2 and config.seed == 3
    history = read_history(tiny_run)
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(np.isfinite(row["val_loss"]) for row in history)
    info = read_run(tiny_run)
    assert info.status == "finished" and info.epoch == 2
    # What the process did besides training, timed for the next run's estimate.
    assert info.progress["setup_seconds"] > 0 and info.progress["wrap_up_seconds"] > 0
    # The best checkpoint is the epoch with the best accuracy on the selection split.
    assert info.best_val_accuracy == pytest.approx(max(row["val_accuracy"] for row in history), abs=1e-6)
    # metrics.json reports that model on PublicTest, which played no part in choosing it.
    metrics = read_json(tiny_run / "metrics.json")
    assert metrics["split"] == "PublicTest" and metrics["n"] == 42
    assert metrics["selection_split"] == "validation" and metrics["reported_on_selection_split"] is False
    assert set(metrics["with_tta"]) == set(metrics["with_flip_zoom"]) == {"accuracy", "macro_f1", "loss"}
    zoomed = evaluate([load_model(tiny_run)], load_dataset(folder_dataset), split="PublicTest", tta="flip+zoom")
    assert metrics["with_flip_zoom"]["loss"] == pytest.approx(zoomed.metrics["loss"], abs=1e-5)


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
    with pytest.raises(FerError, match="larger than the 38 training images"):  # 42 less the 10% selection slice
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


def test_validation_slice_when_there_is_no_public_test(tmp_path):
    from helpers import write_folder_dataset

    root = write_folder_dataset(tmp_path, per_class=10, splits=(("train", "Training"),))
    data = prepare_data(TrainConfig(validation_split=0.2, batch_size=8), load_dataset(root))
    assert data.val_split == "validation" and len(data.y_val) == 14 and len(data.y_train) == 56
    assert np.bincount(data.y_val, minlength=7).tolist() == [2] * 7  # stratified


@pytest.mark.slow
def test_stop_then_resume_continues_from_the_last_epoch(folder_dataset, tmp_path):
    run = tmp_path / "run"
    process = start_cli("train", *tiny_flags(folder_dataset, epochs=4, batch_size=4, patience=0), "--run-dir", str(run))
    wait_until(lambda: read_history(run), 240, "the first epoch", every=0.2)
    request_stop(run)  # via the STOP file, as the dashboard does
    _out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    info = read_run(run)
    assert info.status == "stopped" and info.progress["stop_reason"] == "stop_request"
    stopped_at = len(read_history(run))
    assert 1 <= stopped_at < 4
    # Only whole epochs are kept (one a stop cut short is trained again on resume), and the run
    # ends without its final evaluation: promotion measures the best model instead.
    assert all(row["val_accuracy"] is not None for row in read_history(run))
    assert (run / "model.keras").is_file() and not (run / "metrics.json").exists()
    from fer_core.training.promote import promote

    promoted = promote(run, "stopped_cnn", dest_root=tmp_path / "trained")
    assert json.loads((promoted / "metrics.json").read_text())["accuracy"] >= 0
    assert not (run / "metrics.json").exists()  # the run itself is left as it was

    resumed = start_cli("train", "--resume", str(run), "--quiet")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "finished"
    history = read_history(run)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert read_run(run).status == "finished"

    again = start_cli("train", "--resume", str(run))
    _out, err = again.communicate(timeout=120)
    assert again.returncode == 2 and "already finished" in err and "Traceback" not in err


@pytest.mark.trains
def test_same_seed_same_run_on_one_backend(folder_dataset, tmp_path):
    dataset = load_dataset(folder_dataset)
    config = tiny_config(folder_dataset, epochs=2, seed=11)
    first = train(config, out=tmp_path / "a", dataset=dataset, echo=False)
    second = train(config, out=tmp_path / "b", dataset=dataset, echo=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_history(first)) == strip(read_history(second))
    assert read_json(first / "config.json")["seed"] == 11


@pytest.mark.trains
def test_a_run_with_a_time_budget_ends_by_itself_with_its_best_model(folder_dataset, tmp_path):
    config = tiny_config(folder_dataset, epochs=10_000, minutes=0.1, lr_schedule="linear", patience=0)
    started = time.monotonic()
    run = train(config, out=tmp_path, dataset=load_dataset(folder_dataset), echo=False)
    info = read_run(run)
    assert info.status == "finished" and info.progress["stop_reason"] == "budget"
    assert 1 <= info.epoch < 10_000 and (run / "model.keras").is_file()
    assert time.monotonic() - started < 120  # ended by the 6-second budget, not by the epoch cap
    rates = [row["learning_rate"] for row in read_history(run)]
    # Annealed over the budget. Against the configured rate, not the first epoch's: on a busy CPU
    # (the suite's other worker) the first epoch can take the whole 6 seconds, leaving one row.
    assert rates[-1] < config.learning_rate and all(a >= b for a, b in zip(rates, rates[1:]))
    assert info.progress["minutes_spent"] >= 0.1


def test_selection_is_on_a_training_slice_with_the_folder_layout(folder_dataset):
    data = prepare_data(TrainConfig(batch_size=8), load_dataset(folder_dataset))
    assert data.val_split == "validation" and len(data.y_val) + len(data.y_train) == 42


@pytest.mark.trains
def test_selection_is_on_public_test_and_reporting_on_private_test_with_the_csv(csv_dataset, tmp_path):
    dataset = load_dataset(csv_dataset)
    data = prepare_data(TrainConfig(batch_size=8), dataset)
    assert data.val_split == "PublicTest" and len(data.y_train) == 28
    config = tiny_config(csv_dataset)
    metrics = read_json(train(config, out=tmp_path, dataset=dataset, echo=False) / "metrics.json")
    assert metrics["split"] == "PrivateTest" and metrics["selection_split"] == "PublicTest" and metrics["n"] == 28


def test_a_run_killed_after_its_last_epoch_is_wrapped_up_by_resume(tiny_run, tmp_path):
    """A kill between the last epoch and the wrap-up leaves status "running"; resume finishes it."""
    import shutil

    from fer_core.training.loop import resume

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "metrics.json").unlink()
    progress = read_json(run / "progress.json")
    (run / "progress.json").write_text(json.dumps({**progress, "status": "running", "pid": 999_999_999}))
    assert read_run(run).status == "interrupted"
    resume(run, echo=False)
    info = read_run(run)
    assert info.status == "finished" and info.progress["stop_reason"] == "epochs"
    assert read_json(run / "metrics.json")["split"] == "PublicTest"
    assert [row["epoch"] for row in read_history(run)] == [1, 2]
    with pytest.raises(FerError, match="already finished"):
        resume(run, echo=False)


@pytest.mark.trains
def test_a_prepared_run_trains_from_its_config_json(folder_dataset, tmp_path):
    from fer_core.training.loop import start_prepared

    run = _prepared_run(tmp_path, tiny_config(folder_dataset, seed=5))
    written = (run / "config.json").read_bytes()
    assert start_prepared(run, echo=False) == run
    assert read_run(run).status == "finished" and (run / "metrics.json").is_file()
    assert (run / "config.json").read_bytes() == written  # read, never written again
    with pytest.raises(FerError, match="already started"):
        start_prepared(run, echo=False)


def test_a_prepared_run_that_cannot_train_says_why_in_its_progress(folder_dataset, tmp_path):
    from fer_core.training.loop import start_prepared

    run = _prepared_run(tmp_path, tiny_config(folder_dataset, batch_size=10_000))
    with pytest.raises(FerError, match="larger than the 38 training images"):
        start_prepared(run, echo=False)
    info = read_run(run)
    assert info.status == "failed" and "larger than the 38 training images" in info.progress["error"]


@pytest.mark.slow
@pytest.mark.parametrize("name", model_params(list_models()))
def test_every_registered_model_trains_and_reports(name, folder_dataset, tmp_path):
    """One short run per registry entry: the loop, wrap-up and metrics work for every family."""
    from fer_core.artifacts import load_model
    from helpers import SMALL

    config = tiny_config(folder_dataset, model=name, batch_size=16, model_params=SMALL[name])
    run = train(config, out=tmp_path, dataset=load_dataset(folder_dataset), echo=False)
    assert read_run(run).status == "finished"
    metrics = read_json(run / "metrics.json")
    assert metrics["split"] == "PublicTest" and metrics["n"] == 42 and 0 <= metrics["accuracy"] <= 1
    assert load_model(run / "model.keras").name == name


@pytest.mark.trains
def test_time_left_comes_from_finished_epochs_and_the_wrap_up_says_what_it_does(folder_dataset, tmp_path, monkeypatch):
    """No time left is said during the first epoch (its batches include compiling the graph);
    while the best model is measured at the end, the run says so and gives no time left."""
    import fer_core.training.callback as callback
    import fer_core.training.loop as training

    writes, during_final = [], []
    original_write, original_measure = callback.write_progress, training.measure_best_model

    def recording_write(run_dir, **fields):
        writes.append(dict(fields))
        original_write(run_dir, **fields)

    def recording_measure(path, *args, **kwargs):
        during_final.append(read_run(path))
        return original_measure(path, *args, **kwargs)

    monkeypatch.setattr(callback, "write_progress", recording_write)
    monkeypatch.setattr(training, "measure_best_model", recording_measure)
    config = tiny_config(folder_dataset, epochs=2)
    run = train(config, out=tmp_path, dataset=load_dataset(folder_dataset), echo=False)
    epoch = 0
    eta_by_epoch: dict[int, list] = {}
    for fields in writes:
        epoch = fields.get("epoch", epoch)
        if "eta_seconds" in fields:
            eta_by_epoch.setdefault(epoch, []).append(fields["eta_seconds"])
    assert set(eta_by_epoch[1]) == {None} and all(isinstance(v, float) for v in eta_by_epoch[2])
    [info] = during_final
    assert info.progress["wrapping_up"] and "final evaluation" in info.progress["phase"]
    from fer_core.training.runs import progress_view

    assert "final evaluation" in progress_view(info).text and "min left" not in progress_view(info).text
    done = read_run(run)
    assert done.status == "finished" and not done.progress["wrapping_up"] and done.progress["phase"] is None
