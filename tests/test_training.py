"""fer_core.training.loop and fer_core.training.runs: run directories, validation, stop/resume, promotion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from fer_core import FerError
from fer_core.data import load_dataset
from fer_core.fileio import read_json
from fer_core.models import list_models
from helpers import model_params
from fer_core.training.runs import list_runs, read_run, request_stop
from fer_core.training.promote import promote
from fer_core.backend import resolve_precision
from fer_core.training.recipe import build_training_model, describe_init, learning_rate_at
from fer_core.rundir import read_history
from fer_core.training.config import OPTIMIZERS, TrainConfig
from fer_core.training.loop import prepare_data, train

TINY_PARAMS = ["--param", "filters=[8,16,32]", "--param", "dense_units=16"]


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


def test_learning_rate_schedules():
    constant = TrainConfig(learning_rate=1e-3)
    assert [learning_rate_at(constant, e) for e in range(3)] == [1e-3] * 3
    cosine = TrainConfig(learning_rate=1e-3, lr_schedule="cosine", epochs=11, warmup_epochs=1)
    rates = [learning_rate_at(cosine, e) for e in range(11)]
    assert rates[0] == pytest.approx(1e-3) and rates[1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[1:], rates[2:])) and rates[-1] < 1e-4


def test_validation_slice_when_there_is_no_public_test(tmp_path):
    from helpers import write_folder_dataset

    root = write_folder_dataset(tmp_path, per_class=10, splits=(("train", "Training"),))
    data = prepare_data(TrainConfig(validation_split=0.2, batch_size=8), load_dataset(root))
    assert data.val_split == "validation" and len(data.y_val) == 14 and len(data.y_train) == 56
    assert np.bincount(data.y_val, minlength=7).tolist() == [2] * 7  # stratified


def test_promote_replaces_atomically_and_loads(tiny_run, tmp_path):
    from fer_core.artifacts import load_model, resolve_model

    dest = tmp_path / "trained"
    final = promote(tiny_run, "tiny", dest_root=dest)
    assert sorted(p.name for p in final.iterdir()) == [
        "MODEL_CARD.md",
        "config.json",
        "history.csv",
        "metrics.json",
        "model.keras",
    ]
    first_bytes = (final / "model.keras").read_bytes()
    promote(tiny_run, "tiny", dest_root=dest, replace=True)  # again: replaced, not duplicated
    assert [p.name for p in dest.iterdir() if not p.name.startswith(".")] == ["tiny"]
    assert (final / "model.keras").read_bytes() == first_bytes
    os.environ["FER_TRAINED_DIR"] = str(dest)
    assert load_model(resolve_model("tiny")).name == "cnn"
    card = (final / "MODEL_CARD.md").read_text()
    assert "selected on **validation**" in card and "reported on **PublicTest**" in card
    assert "--model tiny" in card and "with flip TTA" in card and "with flip+zoom TTA" in card


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
        promote(broken, "tiny", dest_root=dest, replace=True)
    assert (dest / "tiny" / "model.keras").read_bytes() == shipped
    assert [p.name for p in dest.iterdir()] == ["tiny"]  # and no kept version: nothing was replaced


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


def test_a_finished_child_that_was_never_reaped_reads_as_ended(tmp_path):
    """A launched training process that ended stays a zombie until its parent waits for it; the
    dashboard that launched it is that parent, and a zombie answers os.kill(pid, 0)."""
    from pathlib import Path

    from fer_core.rundir import pid_alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + 30
    while time.time() < deadline and Path(f"/proc/{child.pid}/stat").read_text().split(")")[1].split()[0] != "Z":
        time.sleep(0.05)  # ended, not reaped: a zombie
    (tmp_path / ".launch.lock").write_text(str(child.pid))
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "cnn", "epochs": 5}))
    (run / "progress.json").write_text(json.dumps({"status": "running", "pid": child.pid, "epoch": 2, "epochs": 5}))
    assert not pid_alive(child.pid)
    assert read_run(run).status == "interrupted"
    assert not Path(f"/proc/{child.pid}").exists()  # and it was reaped on the way
    assert pid_alive(os.getpid())


def test_a_run_asked_to_stop_reads_as_stopping_until_it_ends(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "cnn", "epochs": 5}))
    (run / "progress.json").write_text(json.dumps({"status": "running", "pid": os.getpid(), "epoch": 2, "epochs": 5}))
    request_stop(run)
    info = read_run(run)
    assert info.status == "stopping" and info.active
    (run / "progress.json").write_text(json.dumps({"status": "stopped", "pid": os.getpid(), "epoch": 2}))
    assert read_run(run).status == "stopped"


def _cli(*args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "fer_core", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.slow
def test_stop_then_resume_continues_from_the_last_epoch(folder_dataset, tmp_path):
    run = tmp_path / "run"
    process = _cli(
        "train",
        "--model",
        "cnn",
        "--data",
        str(folder_dataset),
        "--epochs",
        "4",
        "--batch-size",
        "4",
        "--run-dir",
        str(run),
        "--patience",
        "0",
        *TINY_PARAMS,
    )
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


def test_same_seed_same_run_on_one_backend(folder_dataset, tmp_path):
    dataset = load_dataset(folder_dataset)
    config = TrainConfig(
        model="cnn",
        data=str(folder_dataset),
        epochs=2,
        batch_size=8,
        seed=11,
        model_params={"filters": [4, 8, 8], "dense_units": 8},
    )
    first = train(config, out=tmp_path / "a", dataset=dataset, echo=False)
    second = train(config, out=tmp_path / "b", dataset=dataset, echo=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_history(first)) == strip(read_history(second))
    assert read_json(first / "config.json")["seed"] == 11


def test_a_run_directory_is_never_shared(tmp_path):
    from fer_core.rundir import create_run_dir

    config = TrainConfig()
    create_run_dir(config.model, run_dir=tmp_path / "run")
    with pytest.raises(FerError, match="already exists"):
        create_run_dir(config.model, run_dir=tmp_path / "run")
    made = {create_run_dir(config.model, out=tmp_path / "many") for _ in range(5)}
    assert len(made) == 5  # same second, still distinct folders


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimizer_is_built_as_configured(name):
    from fer_core.backend import load_keras
    from fer_core.training.recipe import optimizer_for

    keras = load_keras()
    optimizer = optimizer_for(TrainConfig(model="cnn", optimizer=name, learning_rate=0.02, weight_decay=0.001))
    expected = {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD}[name]
    assert type(optimizer) is expected
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.02)
    if name == "sgd":
        assert optimizer.nesterov is True and optimizer.momentum == pytest.approx(0.9)
    if name != "adam":
        assert optimizer.weight_decay == pytest.approx(0.001)


def test_an_unknown_optimizer_is_refused_in_one_line():
    with pytest.raises(FerError, match="optimizer must be one of adam, adamw, sgd"):
        TrainConfig(model="cnn", optimizer="rmsprop").validate()


# ---- time budgets, schedules, precision, warm starts, the selection split (issue 13) ----------


def test_a_run_with_a_time_budget_ends_by_itself_with_its_best_model(folder_dataset, tmp_path):
    config = TrainConfig(
        model="cnn",
        data=str(folder_dataset),
        epochs=10_000,
        minutes=0.1,
        batch_size=8,
        lr_schedule="linear",
        patience=0,
        model_params={"filters": [4, 8, 8], "dense_units": 8},
    )
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


def test_the_schedule_follows_the_budget_when_there_is_one():
    linear = TrainConfig(learning_rate=1e-3, lr_schedule="linear", minutes=10, epochs=1000)
    assert learning_rate_at(linear, epoch=0, elapsed_seconds=0) == pytest.approx(1e-3)
    assert learning_rate_at(linear, epoch=1, elapsed_seconds=150) == pytest.approx(0.75e-3, abs=1e-6)
    assert learning_rate_at(linear, epoch=900, elapsed_seconds=300) == pytest.approx(0.1e-3)  # the epochs are further
    assert learning_rate_at(linear, epoch=3, elapsed_seconds=700) == 0.0
    cosine = TrainConfig(learning_rate=1e-3, lr_schedule="cosine", minutes=10, epochs=1000, warmup_epochs=2)
    assert learning_rate_at(cosine, epoch=0, elapsed_seconds=50) == pytest.approx(0.5e-3)  # warm-up by epoch
    assert learning_rate_at(cosine, epoch=5, elapsed_seconds=300) == pytest.approx(0.5e-3)
    by_epoch = TrainConfig(learning_rate=1e-3, lr_schedule="linear", epochs=11, warmup_epochs=1)
    assert learning_rate_at(by_epoch, epoch=6, elapsed_seconds=1e9) == pytest.approx(0.5e-3)  # no budget: epochs


def test_the_warm_up_rises_step_by_step_from_near_zero(folder_dataset, tmp_path, monkeypatch):
    one_epoch = TrainConfig(learning_rate=1e-3, epochs=3, warmup_epochs=1)
    assert learning_rate_at(one_epoch, epoch=0, epoch_fraction=0.25) == pytest.approx(0.25e-3)
    assert learning_rate_at(one_epoch, epoch=1, epoch_fraction=0.25) == pytest.approx(1e-3)  # warmed up
    import fer_core.training.loop

    seen = []

    def recording(config, epoch, elapsed_seconds=0.0, epoch_fraction=1.0):
        rate = learning_rate_at(config, epoch, elapsed_seconds, epoch_fraction)
        seen.append((epoch, rate))
        return rate

    monkeypatch.setattr(fer_core.training.loop, "learning_rate_at", recording)
    config = TrainConfig(
        model="cnn",
        data=str(folder_dataset),
        epochs=3,
        batch_size=8,
        warmup_epochs=2,
        patience=0,
        model_params={"filters": [4, 8, 8], "dense_units": 8},
    )
    run = train(config, out=tmp_path, dataset=load_dataset(folder_dataset), echo=False)
    first_epoch = [rate for epoch, rate in seen if epoch == 0]
    batches = read_run(run).progress["batches"]
    assert batches > 1 and first_epoch[0] == pytest.approx(1e-3 / (2 * batches))  # the first step, not lr/2
    assert all(a <= b for a, b in zip(first_epoch, first_epoch[1:])) and len(set(first_epoch)) == batches
    assert [row["learning_rate"] for row in read_history(run)] == pytest.approx([0.5e-3, 1e-3, 1e-3])


@pytest.mark.parametrize(
    "flags, gpu, expected",
    [
        ({"avx2", "avx512f"}, False, "float32"),
        ({"avx2", "avx512f", "avx512_bf16"}, False, "mixed_bfloat16"),
        ({"amx_bf16", "amx_tile"}, False, "mixed_bfloat16"),
        (set(), True, "mixed_bfloat16"),
        (set(), False, "float32"),
    ],
)
def test_auto_precision_resolves_from_the_processor(flags, gpu, expected):
    assert resolve_precision("auto", flags=flags, gpu=gpu) == expected
    assert resolve_precision("float32", flags=flags, gpu=gpu) == "float32"  # an explicit choice stays


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    from fer_core.backend import cpu_flags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 avx512_bf16\n\n")
    assert cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(str(tmp_path / "missing")) == set()


def test_a_run_records_the_resolved_precision(tiny_run):
    assert read_json(tiny_run / "config.json")["precision"] in ("float32", "mixed_bfloat16")


def test_a_warm_start_loads_the_weights_and_records_where_they_came_from(tiny_run, folder_dataset):
    from fer_core.artifacts import load_model

    init = describe_init(str(tiny_run), "cnn")
    assert init["path"].endswith("model.keras") and init["epochs"] == 2 and init["reported_split"] == "PublicTest"
    config = TrainConfig(
        model="cnn",
        data=str(folder_dataset),
        precision="float32",
        init_from=init,
        model_params={"filters": [8, 16, 32], "dense_units": 32},
    )
    _training_model, model = build_training_model(config)
    source = load_model(tiny_run)
    for ours, theirs in zip(model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    assert TrainConfig.from_dict(config.to_dict()).init_from == init  # round-trips through config.json


def test_a_warm_start_from_another_model_or_shape_is_refused(tiny_run, folder_dataset):
    with pytest.raises(FerError, match="it is a cnn model"):
        describe_init(str(tiny_run), "attention_cnn")
    init = describe_init(str(tiny_run), "cnn")
    other_shape = TrainConfig(model="cnn", data=str(folder_dataset), precision="float32", init_from=init)
    with pytest.raises(FerError, match="other shapes"):
        build_training_model(other_shape)


def test_the_cli_warm_start_refuses_a_mismatch_in_one_line(tiny_run, folder_dataset):
    process = _cli("train", "--model", "attention_cnn", "--data", str(folder_dataset), "--init", str(tiny_run))
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "it is a cnn model" in err and "Traceback" not in err


def test_distillation_mixes_the_teachers_flip_tta_probabilities_into_each_target(
    tiny_run, folder_dataset, tmp_path, monkeypatch
):
    from fer_core.artifacts import load_model
    from fer_core.evaluation import predict_probabilities
    from fer_core.training.recipe import describe_teachers, distillation_targets
    from fer_core.training.promote import model_card
    from fer_core.training.loop import TEACHER_FILE

    distill = describe_teachers(str(tiny_run), 0.6)
    assert distill["teachers"][0]["model"] == "cnn" and len(distill["teachers"][0]["sha256"]) == 64
    config = TrainConfig(
        model="cnn",
        data=str(folder_dataset),
        epochs=1,
        batch_size=16,
        precision="float32",
        distill_from=distill,
        model_params={"filters": [8, 16, 32], "dense_units": 32},
    )
    assert TrainConfig.from_dict(config.to_dict()).distill_from == distill  # round-trips through config.json
    dataset = load_dataset(folder_dataset)
    run = train(config, out=tmp_path / "runs", dataset=dataset, echo=False)
    assert read_run(run).status == "finished"
    data = prepare_data(config, dataset)
    expected = predict_probabilities(load_model(tiny_run), data.x_train, tta="flip")
    np.testing.assert_allclose(np.load(run / TEACHER_FILE), expected, atol=1e-5)
    assert read_json(run / "progress.json").get("phase") is None  # cleared once training began
    heard = []

    def no_loading(*_args, **_kwargs):
        raise AssertionError("a teacher was loaded again")

    # Another run with the same teacher and data finds the teacher's probabilities in the shared cache.
    monkeypatch.setattr("fer_core.artifacts.load_model", no_loading)
    fresh = distillation_targets(config, data.y_train, data.x_train, tmp_path / "fresh.npy", report=heard.append)
    monkeypatch.undo()
    assert heard == ["distillation targets: teacher 1 of 1 (cnn)"]
    targets = distillation_targets(config, data.y_train, data.x_train, run / TEACHER_FILE)
    np.testing.assert_allclose(fresh, targets, atol=1e-6)
    np.testing.assert_allclose(targets, 0.4 * np.eye(7)[data.y_train] + 0.6 * expected, atol=1e-5)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    assert "Distilled: each training image's target is 0.4 its one-hot label + 0.6" in model_card(read_run(run))


def test_distillation_refuses_a_teacher_replaced_before_its_targets_were_computed(tiny_run, folder_dataset, tmp_path):
    import shutil

    from fer_core.training.recipe import describe_teachers, distillation_targets

    teacher = tmp_path / "teacher.keras"
    shutil.copy2(tiny_run / "model.keras", teacher)
    config = TrainConfig(
        model="cnn", data=str(folder_dataset), batch_size=16, distill_from=describe_teachers(str(teacher), 0.5)
    )
    teacher.write_bytes(teacher.read_bytes() + b"\0")  # another file now
    data = prepare_data(config, load_dataset(folder_dataset))
    with pytest.raises(FerError, match="has changed since the run was configured"):
        distillation_targets(config, data.y_train, data.x_train, tmp_path / "teacher_probabilities.npy")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--teacher", "no-such-model"], "no model 'no-such-model'"),
        (["--teacher", "TINY_RUN", "--distill-weight", "1.5"], "distillation weight must be in (0, 1]"),
        (["--distill-weight", "0.5"], "--distill-weight needs --teacher"),
    ],
)
def test_the_cli_refuses_a_bad_distillation_in_one_line(tiny_run, folder_dataset, flags, message):
    flags = [str(tiny_run) if flag == "TINY_RUN" else flag for flag in flags]
    process = _cli("train", "--model", "cnn", "--data", str(folder_dataset), *flags)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_selection_is_on_a_training_slice_with_the_folder_layout(folder_dataset):
    data = prepare_data(TrainConfig(batch_size=8), load_dataset(folder_dataset))
    assert data.val_split == "validation" and len(data.y_val) + len(data.y_train) == 42


def test_selection_is_on_public_test_and_reporting_on_private_test_with_the_csv(csv_dataset, tmp_path):
    dataset = load_dataset(csv_dataset)
    data = prepare_data(TrainConfig(batch_size=8), dataset)
    assert data.val_split == "PublicTest" and len(data.y_train) == 28
    config = TrainConfig(
        model="cnn",
        data=str(csv_dataset),
        epochs=1,
        batch_size=8,
        precision="float32",
        model_params={"filters": [4, 8, 8], "dense_units": 8},
    )
    metrics = read_json(train(config, out=tmp_path, dataset=dataset, echo=False) / "metrics.json")
    assert metrics["split"] == "PrivateTest" and metrics["selection_split"] == "PublicTest" and metrics["n"] == 28


def test_a_promoted_model_is_compact_and_its_metrics_are_the_stored_files(tiny_run, folder_dataset, tmp_path):
    from fer_core.artifacts import load_model
    from fer_core.evaluation import evaluate

    final = promote(tiny_run, "tiny", dest_root=tmp_path / "trained")
    assert (final / "model.keras").stat().st_size < (tiny_run / "model.keras").stat().st_size
    metrics = read_json(final / "metrics.json")
    again = evaluate([load_model(final)], load_dataset(folder_dataset), split=metrics["split"], names=["tiny"]).metrics
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert again["loss"] == pytest.approx(metrics["loss"], abs=1e-6)
    assert metrics["models"] == ["tiny"] and metrics["selection_split"] == "validation"


def test_promotion_without_the_data_keeps_nothing_half_done(tiny_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    config = read_json(copy / "config.json")
    (copy / "config.json").write_text(json.dumps({**config, "data": str(tmp_path / "gone")}))
    with pytest.raises(FerError, match="is not here"):
        promote(copy, "tiny", dest_root=tmp_path / "trained")
    assert list((tmp_path / "trained").iterdir()) == []
    assert promote(copy, "tiny", dest_root=tmp_path / "trained", compact=False).is_dir()  # as trained, if asked


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


# ---- prepared runs (the dashboard's launch), progress views, saved models --------------------------------------


def _prepared_run(tmp_path, **settings):
    from fer_core.fileio import write_json_atomic

    run = tmp_path / "prepared"
    run.mkdir()
    write_json_atomic(run / "config.json", TrainConfig(**settings).to_dict())
    return run


def test_a_prepared_run_trains_from_its_config_json(folder_dataset, tmp_path):
    from fer_core.training.loop import start_prepared

    run = _prepared_run(
        tmp_path,
        model="cnn",
        data=str(folder_dataset),
        epochs=1,
        batch_size=8,
        seed=5,
        precision="float32",
        model_params={"filters": [4, 8, 8], "dense_units": 8},
    )
    written = (run / "config.json").read_bytes()
    assert start_prepared(run, echo=False) == run
    assert read_run(run).status == "finished" and (run / "metrics.json").is_file()
    assert (run / "config.json").read_bytes() == written  # read, never written again
    with pytest.raises(FerError, match="already started"):
        start_prepared(run, echo=False)


def test_a_prepared_run_that_cannot_train_says_why_in_its_progress(folder_dataset, tmp_path):
    from fer_core.training.loop import start_prepared

    run = _prepared_run(tmp_path, model="cnn", data=str(folder_dataset), batch_size=10_000)
    with pytest.raises(FerError, match="larger than the 38 training images"):
        start_prepared(run, echo=False)
    info = read_run(run)
    assert info.status == "failed" and "larger than the 38 training images" in info.progress["error"]


def test_a_launched_process_that_died_before_training_reads_as_failed_with_its_output(tmp_path):
    from fer_core.training.runs import run_log

    run = tmp_path / "20260101-000000-cnn"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    (run / "console.log").write_text("loading...\nfer-core: error: dataset path does not exist: /nowhere\n")
    info = read_run(run)  # no launch lock with a live process beside it
    assert (
        info.status == "failed" and info.progress["error"] == "fer-core: error: dataset path does not exist: /nowhere"
    )
    assert "dataset path does not exist" in run_log(info)
    # While the launched process lives (its pid in the launch lock), the run is starting, and active.
    (tmp_path / ".launch.lock").write_text(str(os.getpid()))
    info = read_run(run)
    assert info.status == "starting" and info.active


def test_a_launched_process_still_exiting_after_its_run_ended_does_not_block_the_next_launch(tmp_path):
    """The run says "finished" seconds before its process is gone (TensorFlow shutting down); a
    launch in that window was once refused as "already in progress"."""
    from fer_core.training.launch import _take_launch_lock
    from fer_core.training.runs import launched_process_alive

    run = tmp_path / "20260101-000000-cnn"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(TrainConfig().to_dict()))
    (tmp_path / ".launch.lock").write_text(f"{os.getpid()}\n{run.name}\n")  # a live pid
    (run / "progress.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))
    assert launched_process_alive(tmp_path)
    with pytest.raises(FerError, match="already in progress"):
        _take_launch_lock(tmp_path)
    (run / "progress.json").write_text(json.dumps({"status": "finished", "pid": os.getpid()}))
    assert not launched_process_alive(tmp_path)
    os.close(_take_launch_lock(tmp_path))  # taken: the stale lock was replaced


@pytest.mark.parametrize(
    "config, progress, status, fraction, fragments",
    [
        (
            {"epochs": 4},
            {"epoch": 2, "batch": 5, "batches": 10, "eta_seconds": 90, "images_per_second": 200},
            "running",
            0.375,
            ["epoch 2/4, batch 5/10", "about 1.5 min left (200 images/s)"],
        ),
        (
            {"epochs": 100, "minutes": 30},
            {"epoch": 2, "batch": 1, "batches": 10, "minutes_left": 12.0},
            "running",
            0.6,
            ["12.0 of 30 budgeted min left"],
        ),
        ({"epochs": 4}, {"epoch": 3, "stop_reason": "early_stop"}, "finished", 1.0, ["(ended by: early stop)"]),
        (
            {"epochs": 4},
            {"epoch": 0, "phase": "distillation targets: teacher 2 of 4 (vgg_fer)"},
            "starting",
            0.0,
            ["distillation targets: teacher 2 of 4 (vgg_fer) (before epoch 1)"],
        ),
        # No finished epoch yet: no time left is made up from the compiling first batches.
        ({"epochs": 4}, {"epoch": 1, "batch": 3, "batches": 10, "eta_seconds": None}, "running", 0.075, ["estimating"]),
        # Asked to stop: the state says so, and no time left is shown.
        (
            {"epochs": 50},
            {"epoch": 3, "batch": 4, "batches": 10, "eta_seconds": 2000},
            "stopping",
            0.048,
            ["stopping after batch 4/10 of epoch 3"],
        ),
        (
            {"epochs": 50},
            {"epoch": 3, "batch": 10, "batches": 10, "wrapping_up": True, "phase": "final evaluation: measuring"},
            "stopping",
            0.06,
            ["final evaluation: measuring"],
        ),
    ],
)
def test_progress_view_follows_the_budget_or_the_epochs(config, progress, status, fraction, fragments):
    from pathlib import Path

    from fer_core.training.runs import RunInfo, progress_view

    info = RunInfo(Path("r"), status, "cnn", progress.get("epoch", 0), config["epochs"], None, progress, config)
    view = progress_view(info)
    assert view.fraction == pytest.approx(fraction)
    for fragment in fragments:
        assert fragment in view.text
    if status == "stopping" or ("eta_seconds" in progress and progress["eta_seconds"] is None):
        assert "min left" not in view.text


def test_saved_models_are_model_refs_with_their_family_and_history(tiny_run, tmp_path, monkeypatch):
    from fer_core.artifacts import saved_models
    from fer_core.training.runs import models_and_runs

    monkeypatch.setenv("FER_TRAINED_DIR", str(tmp_path / "trained"))
    monkeypatch.setenv("FER_RUNS_DIR", str(tiny_run.parent))
    promote(tiny_run, "my_cnn", dest_root=tmp_path / "trained")
    refs = models_and_runs()
    assert [r.name for r in refs] == ["my_cnn", f"run {tiny_run.name}"]
    for ref in refs:  # the family comes from the saved config, not from the file or Keras' model name
        assert ref.spec.name == "cnn" and ref.model_file.is_file() and len(ref.history) == 2
    assert [r.name for r in saved_models()] == ["my_cnn"]


@pytest.mark.slow
@pytest.mark.parametrize("name", model_params(list_models()))
def test_every_registered_model_trains_and_reports(name, folder_dataset, tmp_path):
    """One short run per registry entry: the loop, wrap-up and metrics work for every family."""
    from fer_core.artifacts import load_model
    from helpers import SMALL

    config = TrainConfig(
        model=name,
        data=str(folder_dataset),
        epochs=1,
        batch_size=16,
        precision="float32",
        model_params=SMALL[name],
    )
    run = train(config, out=tmp_path, dataset=load_dataset(folder_dataset), echo=False)
    assert read_run(run).status == "finished"
    metrics = read_json(run / "metrics.json")
    assert metrics["split"] == "PublicTest" and metrics["n"] == 42 and 0 <= metrics["accuracy"] <= 1
    assert load_model(run / "model.keras").name == name


def test_the_model_card_names_the_gpu_a_run_trained_on(tiny_run, tmp_path):
    """A GPU run's environment lists its GPUs (none on this CPU), and the card says which."""
    import shutil

    from fer_core.backend import environment
    from fer_core.training.runs import read_run
    from fer_core.training.promote import model_card

    assert "gpus" not in environment() and "tensorflow" in environment()  # the suite's CPU backend
    run = tmp_path / "gpu-run"
    shutil.copytree(tiny_run, run)
    progress = read_json(run / "progress.json")
    gpu_environment = {**progress["environment"], "backend": "jax", "jax": "0.11.2", "gpus": ["NVIDIA H200"]}
    (run / "progress.json").write_text(json.dumps({**progress, "backend": "jax", "environment": gpu_environment}))
    card = model_card(read_run(run))
    assert "Backend: jax; machine: GPU NVIDIA H200 with " in card and "jax 0.11.2" in card
    assert "GPU" not in model_card(read_run(tiny_run))


def _attention_cnn_with_dead_channels(widths, kept_widths, se_ratio):
    """A small attention_cnn whose channels beyond `kept_widths` (and SE hidden units beyond what a
    narrower build keeps) are dead: BatchNorm scale and shift zero, or no weight into the gates. So
    a correct narrowing to `kept_widths` computes exactly the same function."""
    from fer_core.backend import load_keras
    from fer_core.models import build_model

    keras = load_keras()
    rng = np.random.default_rng(3)
    model = build_model("attention_cnn", filters=list(widths), se_ratio=se_ratio, dense_units=16)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.name.startswith("block"):
            width = layer.get_weights()[0].shape[0]
            keep = kept_widths[int(layer.name[len("block")]) - 1]
            alive = rng.permutation(width) < keep  # the dead channels scattered, not the last ones
            gamma = rng.uniform(0.5, 1.5, width) * rng.choice([-1, 1], width) * alive
            beta = rng.normal(0, 0.2, width) * alive
            layer.set_weights([gamma, beta, rng.normal(0, 0.1, width), rng.uniform(0.5, 2.0, width)])
        if layer.name.endswith("_se"):
            block = int(layer.name[len("block")]) - 1
            excite_kernel, excite_bias = layer.excite.get_weights()
            hidden_kept = max(kept_widths[block] // se_ratio, 4)
            excite_kernel[hidden_kept:] = 0.0
            layer.excite.set_weights([excite_kernel, excite_bias])
    return model


def test_a_narrower_attention_cnn_warm_starts_from_a_wider_one_by_pruning_its_dead_channels(folder_dataset, tmp_path):
    source = _attention_cnn_with_dead_channels([8, 16, 32], [6, 12, 24], se_ratio=2)
    source.save(tmp_path / "wide.keras")
    params = {"filters": [6, 12, 24], "se_ratio": 2, "dense_units": 16}
    config = TrainConfig(
        model="attention_cnn",
        data=str(folder_dataset),
        precision="float32",
        init_from=describe_init(str(tmp_path / "wide.keras"), "attention_cnn"),
        model_params=params,
    )
    _training_model, model = build_training_model(config)
    assert [w.shape for w in model.get_weights()] != [w.shape for w in source.get_weights()]
    faces = np.random.default_rng(5).integers(0, 256, (8, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(faces)), np.asarray(source(faces)), atol=1e-5)
    from fer_core.training.promote import model_card

    run = train(
        TrainConfig(**{**config.to_dict(), "epochs": 1, "batch_size": 16}),
        out=tmp_path / "runs",
        dataset=load_dataset(folder_dataset),
        echo=False,
    )
    card = model_card(read_run(run))
    assert "where its layers were wider than this run's, the channels with the largest BatchNorm scales" in card


@pytest.mark.parametrize(
    "params",
    [{"filters": [10, 16, 32]}, {"filters": [6, 12, 24], "convs_per_block": 1}, {"dense_units": 8}, {"se_ratio": 1}],
)
def test_narrowing_refuses_anything_but_a_narrower_build_of_the_same_shape(folder_dataset, tmp_path, params):
    source = _attention_cnn_with_dead_channels([8, 16, 32], [6, 12, 24], se_ratio=2)
    source.save(tmp_path / "wide.keras")
    config = TrainConfig(
        model="attention_cnn",
        data=str(folder_dataset),
        precision="float32",
        init_from=describe_init(str(tmp_path / "wide.keras"), "attention_cnn"),
        model_params={"filters": [6, 12, 24], "se_ratio": 2, "dense_units": 16, **params},
    )
    with pytest.raises(FerError, match="narrower attention_cnn is warm-started only from a wider one"):
        build_training_model(config)


def test_time_left_comes_from_finished_epochs_and_the_wrap_up_says_what_it_does(folder_dataset, tmp_path, monkeypatch):
    """No time left is said during the first epoch (its batches include compiling the graph);
    while the best model is measured at the end, the run says so and gives no time left."""
    import fer_core.training.loop as training

    writes, during_final = [], []
    original_write, original_measure = training.write_progress, training._write_reported_metrics

    def recording_write(run_dir, **fields):
        writes.append(dict(fields))
        original_write(run_dir, **fields)

    def recording_measure(path, *args, **kwargs):
        during_final.append(read_run(path))
        return original_measure(path, *args, **kwargs)

    monkeypatch.setattr(training, "write_progress", recording_write)
    monkeypatch.setattr(training, "_write_reported_metrics", recording_measure)
    config = TrainConfig(
        model="cnn",
        data=str(folder_dataset),
        epochs=2,
        batch_size=8,
        precision="float32",
        **{"model_params": {"filters": [4, 8, 8], "dense_units": 8}},
    )
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
