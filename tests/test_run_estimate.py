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


def write_record(folder, model="cnn", precision="float32", seconds=(30.0, 10.0, 12.0), images=1200, host=None):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": model, "precision": precision, "model_params": {}}))
    (folder / "progress.json").write_text(json.dumps({"train_images": images, "host": host or socket.gethostname()}))
    rows = "".join(f"{i + 1},1,0.5,1,0.5,0.001,{s}\n" for i, s in enumerate(seconds))
    (folder / "history.csv").write_text("epoch,loss,accuracy,val_loss,val_accuracy,learning_rate,seconds\n" + rows)


def test_an_estimate_comes_from_a_recorded_speed_or_is_not_made_up(folder_dataset, tmp_path):
    config = TrainConfig(model="cnn", data=str(folder_dataset), epochs=10, precision="float32")
    unknown = estimate_run(config, roots=[tmp_path])
    assert unknown.minutes is None and "no estimate" in unknown.describe(10)
    write_record(tmp_path / "run-a")  # 1200 images in a median of 11 s (the compiling first epoch left out)
    write_record(tmp_path / "run-b", model="resnet50", seconds=(1000.0, 1000.0))  # another model: ignored
    known = estimate_run(config, roots=[tmp_path])
    assert known.images_per_second == pytest.approx(1200 / 11)
    assert known.minutes == pytest.approx(10 * known.train_images / (1200 / 11) / 60)
    assert "on this machine" in known.source
    budgeted = estimate_run(TrainConfig(**{**config.to_dict(), "epochs": 10**6, "minutes": 5.0}), roots=[tmp_path])
    assert budgeted.minutes == 5.0


def test_an_estimate_needs_a_dataset():
    with pytest.raises(FerError, match="no dataset configured"):
        estimate_run(TrainConfig(model="cnn", data=""))
