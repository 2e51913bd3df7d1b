"""fer_core.training.recipe: optimizers, schedules, precision, warm starts, distillation, narrowing."""

from __future__ import annotations


import numpy as np
import pytest

from fer_core import FerError
from helpers import start_cli, tiny_config
from fer_core.data import load_dataset
from fer_core.fileio import read_json
from fer_core.training.runs import read_run
from fer_core.backend import resolve_precision
from fer_core.training.recipe import build_training_model, describe_init, learning_rate_at
from fer_core.rundir import read_history
from fer_core.training.config import OPTIMIZERS, TrainConfig
from fer_core.training.loop import prepare_data, train


def _attention_cnn_with_dead_channels(widths, kept_widths, se_ratio):
    """A small attention_cnn whose channels beyond `kept_widths` (and SE hidden units beyond what a
    narrower build keeps) are dead: BatchNorm scale and shift zero, or no weight into the gates. So
    a correct narrowing to `kept_widths` computes exactly the same function."""
    from fer_core.backend import load_keras
    from fer_core.models import build_model

    keras = load_keras()
    rng = np.random.default_rng(3)
    model = build_model("attention_cnn", num_classes=7, filters=list(widths), se_ratio=se_ratio, dense_units=16)
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


def test_learning_rate_schedules():
    constant = TrainConfig(learning_rate=1e-3)
    assert [learning_rate_at(constant, e) for e in range(3)] == [1e-3] * 3
    cosine = TrainConfig(learning_rate=1e-3, lr_schedule="cosine", epochs=11, warmup_epochs=1)
    rates = [learning_rate_at(cosine, e) for e in range(11)]
    assert rates[0] == pytest.approx(1e-3) and rates[1] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[1:], rates[2:])) and rates[-1] < 1e-4


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


@pytest.mark.trains
def test_the_warm_up_rises_step_by_step_from_near_zero(folder_dataset, tmp_path, monkeypatch):
    one_epoch = TrainConfig(learning_rate=1e-3, epochs=3, warmup_epochs=1)
    assert learning_rate_at(one_epoch, epoch=0, epoch_fraction=0.25) == pytest.approx(0.25e-3)
    assert learning_rate_at(one_epoch, epoch=1, epoch_fraction=0.25) == pytest.approx(1e-3)  # warmed up
    import fer_core.training.callback

    seen = []

    def recording(config, epoch, elapsed_seconds=0.0, epoch_fraction=1.0):
        rate = learning_rate_at(config, epoch, elapsed_seconds, epoch_fraction)
        seen.append((epoch, rate))
        return rate

    monkeypatch.setattr(fer_core.training.callback, "learning_rate_at", recording)
    config = tiny_config(folder_dataset, epochs=3, warmup_epochs=2, patience=0)
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
    process = start_cli("train", "--model", "attention_cnn", "--data", str(folder_dataset), "--init", str(tiny_run))
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and "it is a cnn model" in err and "Traceback" not in err


def test_distillation_mixes_the_teachers_flip_tta_probabilities_into_each_target(
    tiny_run, folder_dataset, tmp_path, monkeypatch
):
    from fer_core.artifacts import load_model
    from fer_core.evaluation import predict_probabilities
    from fer_core.training.recipe import describe_teachers, distillation_targets
    from fer_core.training.model_card import model_card
    from fer_core.training.fitting import TEACHER_FILE

    distill = describe_teachers(str(tiny_run), 0.6)
    assert distill["teachers"][0]["model"] == "cnn" and len(distill["teachers"][0]["sha256"]) == 64
    config = tiny_config(folder_dataset, batch_size=16, distill_from=distill)
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
    process = start_cli("train", "--model", "cnn", "--data", str(folder_dataset), *flags)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.trains
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
    from fer_core.training.model_card import model_card

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
