"""Data-parallel training (`fer-core train --devices N`): Keras' DataParallel on JAX, tested on
this CPU with two virtual devices in a child process (tests/data_parallel_child.py), and the model
it makes evaluated under TensorFlow here like any other."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from fer_core.errors import FerError
from fer_core.paths import PROJECT_ROOT
from fer_core.training.config import TrainConfig
from helpers import tiny_flags, write_folder_dataset

# Loss curves on 1 and 2 devices may differ by the order of float sums (XLA all-reduces the two
# halves' gradients), nothing more: the batch-norm statistics are the whole batch's on both.
LOSS_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def two_device_runs(tmp_path_factory):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    base = tmp_path_factory.mktemp("data-parallel")
    # 49 training images: a validation slice of 5 (odd: padded on 2 devices) and 44 to train on
    # (even: nothing trimmed, so both runs see the same images).
    data = write_folder_dataset(base / "fer", per_class=7)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "FER_CACHE_DIR": str(base / "cache")}
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tests" / "data_parallel_child.py"), str(data), str(base / "runs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report, data, base


def history(run: str) -> dict[str, np.ndarray]:
    import pandas as pd

    return {k: v.to_numpy() for k, v in pd.read_csv(f"{run}/history.csv").items()}


@pytest.mark.slow
def test_two_devices_follow_the_one_device_loss_curve(two_device_runs):
    report, _data, _base = two_device_runs
    one, two = history(report["runs"]["1"]), history(report["runs"]["2"])
    assert len(one["loss"]) == len(two["loss"]) == 3
    np.testing.assert_allclose(two["loss"], one["loss"], atol=LOSS_TOLERANCE)
    # The validation slice (5 images) was padded to 6 on two devices: accuracy is exact, and the
    # loss is over the five real images.
    np.testing.assert_allclose(two["val_loss"], one["val_loss"], atol=LOSS_TOLERANCE)
    np.testing.assert_allclose(two["val_accuracy"], one["val_accuracy"], atol=1e-6)


@pytest.mark.slow
def test_each_device_gets_half_of_every_batch(two_device_runs):
    report, _data, _base = two_device_runs
    shards = report["shards"]
    assert shards, "the two-device fit never went through the mesh"
    for placed in shards:
        rows = placed["batch"][0]
        assert [shape[0] for shape in placed["per_device"]] == [rows // 2, rows // 2], placed
    # 44 training images in batches of 8 (the last 4) and the validation slice padded to 6.
    assert {placed["batch"][0] for placed in shards} >= {8, 4, 6}


@pytest.mark.slow
def test_the_run_records_its_layout_and_the_model_evaluates_under_tensorflow_alike(two_device_runs):
    from fer_core.artifacts import load_model
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate

    report, data, _base = two_device_runs
    run = report["runs"]["2"]
    config = json.loads(open(f"{run}/config.json").read())
    assert config["devices"] == 2
    assert config["layout"] == {
        "backend": "jax",
        "devices": 2,
        "device_kind": "cpu",
        "strategy": "DataParallel",
        "mesh_shape": [2],
        "mesh_axes": ["batch"],
        "per_device_batch": 4,
        "processes": 1,
    }
    from fer_core.training.model_card import model_card
    from fer_core.training.runs import read_run

    assert "data parallel over 2 cpu devices: 4 images of each batch a device" in open(f"{run}/train.log").read()
    assert (
        "- Devices: 2 cpu devices, data-parallel (Keras DataParallel, mesh [2] on axis batch): 4 images a device "
        "of each batch of 8" in model_card(read_run(run))
    )
    assert "- Devices: one (cpu)" in model_card(read_run(report["runs"]["1"]))
    under_jax = json.loads(open(f"{run}/metrics.json").read())
    under_tf = evaluate([load_model(run)], load_dataset(data), split=under_jax["split"]).metrics
    assert under_tf["n"] == under_jax["n"]
    assert under_tf["loss"] == pytest.approx(under_jax["loss"], abs=1e-4)
    assert under_tf["accuracy"] == pytest.approx(under_jax["accuracy"], abs=1 / under_jax["n"])


@pytest.mark.slow
def test_a_distilled_run_trains_on_two_devices(two_device_runs):
    report, _data, _base = two_device_runs
    run = report["runs"]["distilled"]
    config = json.loads(open(f"{run}/config.json").read())
    assert config["layout"]["devices"] == 2 and config["distill_from"]["teachers"][0]["path"].endswith("model.keras")
    assert json.loads(open(f"{run}/progress.json").read())["status"] == "finished"
    assert len(history(run)["loss"]) == 1


@pytest.mark.slow
def test_device_counts_that_cannot_work_are_refused_in_one_line(two_device_runs):
    report, _data, base = two_device_runs
    assert report["refused"] == {
        "3": "--devices 3: the jax backend sees 2 device(s) here (cpu)",
        "2": "batch size 7 does not split evenly over 2 devices: give a multiple of 2",
    }
    assert not (base / "runs" / "refused-3").exists()  # refused before a run folder is made


@pytest.mark.slow
def test_two_processes_train_as_one_cluster(tmp_path):
    """The multi-host path on one machine: two `fer-core train` processes, one CPU device each,
    joined by keras.distribution.initialize() from the KERAS_DISTRIBUTION_* variables (JAX's CPU
    collectives: Gloo). Each feeds its own half of the images; the metrics are the cluster's, so
    both write the same history."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    data = write_folder_dataset(tmp_path / "fer", per_class=7)  # 44 to train, 5 to select: padded to 6
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cluster = {
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "FER_CACHE_DIR": str(tmp_path / "cache"),
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
    }
    command = [
        sys.executable,
        "-m",
        "fer_core",
        "train",
        *tiny_flags(data, epochs=2, seed=7),
        "--devices",
        "all",
        "--quiet",
    ]
    nodes = [
        subprocess.Popen(
            [*command, "--run-dir", str(tmp_path / f"node{rank}")],
            env={**os.environ, **cluster, "KERAS_DISTRIBUTION_PROCESS_ID": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-2000:] for _out, err in outputs]
    first, second = (history(str(tmp_path / f"node{rank}")) for rank in (0, 1))
    for column in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(first[column], second[column], rtol=1e-6)
    layout = json.loads((tmp_path / "node0" / "config.json").read_text())["layout"]
    assert layout["devices"] == 2 and layout["processes"] == 2 and layout["per_device_batch"] == 4
    assert "1 zero-weight validation row(s) added" in (tmp_path / "node0" / "train.log").read_text()


@pytest.mark.parametrize("devices, train, val", [(1, 7, 3), (2, 7, 3), (4, 9, 1), (8, 20, 5)])
def test_arrays_are_cut_and_padded_so_every_batch_splits(devices, train, val):
    from fer_core.training.devices import split_evenly

    x_train, x_val = np.arange(train), np.arange(val) + 100
    fit = split_evenly(x_train, x_train * 10, None, x_val, x_val * 10, devices=devices)
    assert len(fit.x_train) % devices == 0 and len(fit.x_val) % devices == 0
    assert fit.dropped == train - len(fit.x_train) < devices and fit.padded == len(fit.x_val) - val < devices
    assert list(fit.x_val[:val]) == list(x_val) and set(fit.x_val[val:]) <= set(x_val)  # copies of real rows
    assert list(fit.y_val) == [v * 10 for v in fit.x_val] and list(fit.y_train) == [v * 10 for v in fit.x_train]
    if fit.padded:
        assert list(fit.val_weights) == [1.0] * val + [0.0] * fit.padded
    else:
        assert fit.val_weights is None


def test_each_process_of_a_cluster_gets_an_equal_disjoint_share():
    from fer_core.training.devices import local_share, split_evenly

    x_train, x_val = np.arange(11), np.arange(5) + 100
    fit = split_evenly(x_train, x_train, None, x_val, x_val, devices=4)  # 2 processes x 2 devices
    shares = [local_share(fit, 2, index) for index in (0, 1)]
    assert [len(s.x_train) for s in shares] == [4, 4] and [len(s.x_val) for s in shares] == [4, 4]
    assert sorted([*shares[0].x_train, *shares[1].x_train]) == sorted(fit.x_train)
    assert sorted([*shares[0].val_weights, *shares[1].val_weights]) == sorted(fit.val_weights)
    assert all(s.padded == fit.padded == 3 and s.dropped == fit.dropped == 3 for s in shares)


@pytest.mark.parametrize(
    "devices, message",
    [
        (0, "devices must be a count >= 1 or 'all'. Received: devices=0"),
        ("two", "devices must be a count >= 1 or 'all'. Received: devices=two"),
        (3, "batch size 64 does not split evenly over 3 devices: give a multiple of 3"),
    ],
)
def test_a_config_refuses_a_device_count_it_cannot_use(devices, message):
    with pytest.raises(FerError, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        TrainConfig(model="cnn", data="x", devices=devices)


def test_several_devices_on_tensorflow_are_refused_by_the_cli(folder_dataset):
    """The test process runs TensorFlow, which Keras 3 does not distribute: one line, exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "fer_core", "train", "--model", "cnn", "--data", str(folder_dataset), "--devices", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
        env={**os.environ, "KERAS_BACKEND": "tensorflow"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "fer-core: error: training on 2 devices needs the JAX backend (KERAS_BACKEND=jax); this process runs "
        "tensorflow, which trains on one"
    ]
