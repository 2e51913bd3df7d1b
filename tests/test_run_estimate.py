"""A run's length before launch: images counted without decoding, speed from recorded runs."""

from __future__ import annotations

import json
import socket

import pytest

from fer_core.data import load_dataset, split_counts
from fer_core.errors import FerError
from fer_core.training.estimate import estimate_run, training_images
from fer_core.training.config import TrainConfig


def test_split_counts_match_the_loaded_dataset(folder_dataset, csv_dataset):
    for path in (folder_dataset, csv_dataset):
        dataset = load_dataset(path, use_cache=False)
        expected = {name: len(dataset.split(name)) for name in dataset.split_names}
        assert split_counts(path) == expected


def test_training_images_follow_the_selection_split(folder_dataset, csv_dataset):
    from fer_core.training.loop import prepare_data

    for path in (folder_dataset, csv_dataset):
        for limit in (None, 3):
            config = TrainConfig(model="cnn", data=str(path), limit=limit, batch_size=2)
            assert training_images(config) == len(prepare_data(config, load_dataset(path)).y_train)


def write_record(
    folder, model="cnn", precision="float32", seconds=(30.0, 10.0, 12.0), images=1200, host=None, **progress
):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": model, "precision": precision, "model_params": {}}))
    progress = {"train_images": images, "host": host or socket.gethostname(), **progress}
    (folder / "progress.json").write_text(json.dumps(progress))
    rows = "".join(f"{i + 1},1,0.5,1,0.5,0.001,{s}\n" for i, s in enumerate(seconds))
    (folder / "history.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds\n" + rows)


def test_an_estimate_comes_from_a_recorded_speed_or_is_not_made_up(folder_dataset, tmp_path):
    config = TrainConfig(model="cnn", data=str(folder_dataset), epochs=10, precision="float32")
    unknown = estimate_run(config, roots=[tmp_path], prior_file=None)
    assert unknown.minutes is None and "no estimate" in unknown.describe(10)
    write_record(tmp_path / "run-a")  # 1200 images in a median of 11 s (the compiling first epoch left out)
    write_record(tmp_path / "run-b", model="resnet50", seconds=(1000.0, 1000.0))  # another model: ignored
    known = estimate_run(config, roots=[tmp_path])
    assert known.images_per_second == pytest.approx(1200 / 11)
    assert known.minutes == pytest.approx(10 * known.train_images / (1200 / 11) / 60)
    assert "on this machine" in known.source
    assert "start-up and the final measurement not timed here yet" in known.describe(10)
    budgeted = estimate_run(TrainConfig(**{**config.to_dict(), "epochs": 10**6, "minutes": 5.0}), roots=[tmp_path])
    assert budgeted.minutes == 5.0


def test_every_run_is_a_record_folds_included_and_the_whole_is_said(folder_dataset, tmp_path):
    """A cross-validation's folds count as timed runs; a run on a GPU says nothing of this CPU;
    the start-up and final measurement the runs recorded are added, once per fold."""
    config = TrainConfig(model="cnn", data=str(folder_dataset), epochs=10, precision="float32")
    timed = {"status": "finished", "setup_seconds": 20.0, "wrap_up_seconds": 10.0}
    write_record(tmp_path / "crossval-20261207T100000-cnn" / "fold-1", **timed)
    write_record(tmp_path / "crossval-20261207T100000-cnn" / "fold-2", **timed)
    write_record(tmp_path / "on-a-gpu", seconds=(1.0, 1.0), environment={"gpus": ["NVIDIA H200"]}, **timed)
    estimate = estimate_run(config, roots=[tmp_path])
    assert estimate.images_per_second == pytest.approx(1200 / 11) and "median of 2 runs" in estimate.source
    assert estimate.besides_minutes == pytest.approx(0.5)
    assert estimate.whole_minutes == pytest.approx(estimate.minutes + 0.5)
    assert estimate.describe(10).endswith("to start, load the data and measure the result (as those runs did)")
    long = {**config.to_dict(), "epochs": 10**6, "minutes": 3.0}
    folds = estimate_run(TrainConfig(**long), roots=[tmp_path], folds=5)
    assert folds.minutes == 3.0 and folds.besides_minutes == pytest.approx(2.5)  # a 3-minute budget, 5.5 in all
    assert folds.describe(10**6).startswith("about 5.5 min in all: about 3.0 min of training")


def test_runs_on_a_cpu_of_the_same_kind_with_other_cores_give_a_rough_estimate(folder_dataset, tmp_path):
    """The shipped lineage's 2-core runs say something of an 8-core CPU with the same features:
    their speed scaled by the cores, said to be rough; another kind of processor says nothing."""
    import os

    from fer_core.backend import SPEED_FLAGS, cpu_flags

    config = TrainConfig(model="cnn", data=str(folder_dataset), epochs=10, precision="float32")
    this_kind = sorted(set(SPEED_FLAGS) & cpu_flags())
    cores = os.cpu_count()
    write_record(tmp_path / "elsewhere", host="another", environment={"cores": 2 * cores, "cpu_flags": this_kind})
    write_record(
        tmp_path / "other-kind", host="another", seconds=(1.0, 1.0), environment={"cores": cores, "cpu_flags": ["x"]}
    )
    estimate = estimate_run(config, roots=[tmp_path])
    assert estimate.images_per_second == pytest.approx(1200 / 11 / 2)
    assert estimate.source == f"rough: 1 recorded run on {2 * cores}-core CPUs of this kind, scaled to {cores} cores"
    write_record(tmp_path / "here", seconds=(5.0, 5.0))  # a run of this machine's own: it counts alone
    assert estimate_run(config, roots=[tmp_path]).images_per_second == pytest.approx(1200 / 5)


def test_an_estimate_needs_a_dataset():
    with pytest.raises(FerError, match="no dataset configured"):
        estimate_run(TrainConfig(model="cnn", data=""))


def test_with_no_record_the_shipped_prior_of_this_processor_kind_gives_a_rough_estimate(folder_dataset, tmp_path):
    """A machine with no timed run: the prior's run of the model's defaults on a processor with the
    same features, scaled by cores and said to be rough; another kind, other settings: none."""
    import os

    from fer_core.backend import SPEED_FLAGS, cpu_flags

    this_kind, cores = sorted(set(SPEED_FLAGS) & cpu_flags()), os.cpu_count()
    prior = tmp_path / "prior.json"
    runs = [
        {"model": "cnn", "precision": "float32", "cpu_flags": this_kind, "cores": 2 * cores},
        {"model": "cnn", "precision": "float32", "cpu_flags": ["another"], "cores": cores},
    ]
    runs = [{**run, "images_per_second": 100.0, "stands_in": None} for run in runs]
    prior.write_text(json.dumps({"runs": runs}))
    config = TrainConfig(model="cnn", data=str(folder_dataset), epochs=10, precision="float32")
    records = tmp_path / "no-runs"
    estimate = estimate_run(config, roots=[records], prior_file=prior)
    assert estimate.images_per_second == pytest.approx(50.0)
    assert estimate.source == (
        f"rough: the shipped prior's run on a {2 * cores}-core CPU with {', '.join(this_kind)}, scaled to {cores} cores"
    )
    assert "start-up and the final measurement not timed here yet" in estimate.describe(10)
    other = TrainConfig(**{**config.to_dict(), "model_params": {"dense_units": 8}})
    assert estimate_run(other, roots=[records], prior_file=prior).minutes is None  # the prior is the defaults'
    write_record(records / "here", seconds=(5.0, 5.0))  # a run of this machine's own comes first
    assert estimate_run(config, roots=[records], prior_file=prior).images_per_second == pytest.approx(1200 / 5)


def test_the_shipped_prior_holds_a_run_of_every_model_for_this_kind_of_processor():
    from fer_core.models import MODEL_NAMES
    from fer_core.training.estimate import SPEED_PRIOR

    runs = json.loads(SPEED_PRIOR.read_text())["runs"]
    assert all(run["images_per_second"] > 0 and run["model"] in MODEL_NAMES for run in runs)
    measured = {run["model"] for run in runs if run["precision"] == "float32" and run["stands_in"] is None}
    assert measured == set(MODEL_NAMES)
