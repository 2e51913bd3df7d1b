"""The training recipe: the model with its augmentation, the optimizer, the learning-rate
schedule, the precision, warm starts and class weights. What a `TrainConfig` turns into before
the loop (`fer_core.training.loop`) runs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path

import numpy as np

from fer_core.backend import resolve_precision
from fer_core.errors import FerError
from fer_core.rundir import minutes_trained, read_history
from fer_core.training.config import TrainConfig, parse_params

REAL_ROWS_ACCURACY = "accuracy_over_real_rows"  # see _build_training_model

# After --freeze-epochs, every layer trains at this fraction of the rate the head trained at.
FINE_TUNE_RATE = 0.1


@contextlib.contextmanager
def precision_policy(name: str):
    """Keras' global dtype policy set to `name` while models are built, then restored: the built
    layers keep it, and nothing built later in the same process (a test, the dashboard) inherits it."""
    from fer_core.backend import load_keras

    mixed_precision = load_keras().mixed_precision
    previous = mixed_precision.global_policy()
    mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        mixed_precision.set_global_policy(previous)


def build_training_model(config: TrainConfig):
    """(training model, inference model): augmentation wraps the inference model, sharing its weights."""
    with precision_policy(resolve_precision(config.precision)):
        return _build_training_model(config)


def _build_training_model(config: TrainConfig):
    from fer_core.backend import load_keras

    keras = load_keras()
    from keras import layers

    from fer_core.models import build_model

    model = build_model(config.model, num_classes=len(config.class_names), **config.model_params)
    if config.init_from:
        load_init_weights(model, config)
    augment = []
    if config.flip:
        augment.append(layers.RandomFlip("horizontal", seed=config.seed, name="aug_flip"))
    if config.rotation_degrees:
        augment.append(
            layers.RandomRotation(
                config.rotation_degrees / 360.0, fill_mode="reflect", seed=config.seed + 1, name="aug_rotation"
            )
        )
    if config.zoom:
        augment.append(layers.RandomZoom(config.zoom, fill_mode="reflect", seed=config.seed + 2, name="aug_zoom"))
    if config.shift:
        augment.append(
            layers.RandomTranslation(
                config.shift, config.shift, fill_mode="reflect", seed=config.seed + 3, name="aug_shift"
            )
        )
    if config.erasing:
        augment.append(
            layers.RandomErasing(factor=config.erasing, value_range=(0, 255), seed=config.seed + 4, name="aug_erasing")
        )
    inputs = keras.Input(shape=model.inputs[0].shape[1:], name="pixels")
    x = inputs
    for layer in augment:
        x = layer(x)
    training_model = keras.Model(inputs, model(x), name=f"train_{config.model}")
    compile_training_model(training_model, config)
    return training_model, model


def compile_training_model(training_model, config: TrainConfig) -> None:
    """Compile (again, after layers were frozen or unfrozen: Keras reads `trainable` there)."""
    from fer_core.backend import load_keras

    keras = load_keras()
    training_model.compile(
        optimizer=optimizer_for(config),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
        # On a mesh the selection split is padded with zero-weight rows (fer_core.training.devices),
        # which Keras' `metrics` would count; a weighted accuracy does not, and replaces val_accuracy.
        weighted_metrics=[keras.metrics.CategoricalAccuracy(name=REAL_ROWS_ACCURACY)] if config.devices > 1 else None,
    )
    compile_whole_step(training_model)


# Every registered family ends in this Dense softmax layer: the head a transfer replaces.
HEAD_LAYER = "probabilities"


def set_body_trainable(model, trainable: bool) -> None:
    """Freeze or free every layer of the model but its classifier head."""
    for layer in model.layers:
        if layer.name != HEAD_LAYER:
            layer.trainable = trainable


def describe_init(spec: str, model_name: str) -> dict:
    """Resolve a warm-start source (a trained name, a run folder or a .keras file) for `model_name`
    into what config.json records: its path, and where known its reported metrics and the epochs
    and minutes behind it (cumulative over its own warm starts), so a shipped model's full
    training stays known.

    Raises:
        FerError: not found, or a model of another registry family.
    """
    from fer_core.artifacts import resolve_model
    from fer_core.artifacts import model_classes

    ref = resolve_model(spec)
    source_config = ref.config
    source_model = source_config.get("model")
    if source_model and source_model != model_name:
        raise FerError(f"cannot warm-start {model_name} from {ref.model_file}: it is a {source_model} model")
    history = read_history(ref.folder) if ref.folder else []
    earlier = source_config.get("init_from") or {}
    metrics = ref.metrics
    return {
        "path": str(ref.model_file.resolve()),
        "model": source_model or model_name,
        "model_params": source_config.get("model_params", {}),
        "reported_split": metrics.get("split"),
        "reported_accuracy": metrics.get("accuracy"),
        "classes": list(model_classes(ref)),
        "epochs": len(history) + int(earlier.get("epochs", 0) or 0),
        "minutes": round(minutes_trained(history) + float(earlier.get("minutes", 0.0) or 0.0), 2),
    }


def describe_teachers(spec: str, weight: float) -> dict:
    """Resolve comma-separated teacher references (trained names, run folders or .keras files)
    into what config.json records as `distill_from`: each file's path, sha256 and reported
    accuracy, so the targets a student learned from stay identifiable after the teachers are
    replaced.

    Raises:
        FerError: a reference that names no saved model.
    """
    from fer_core.artifacts import resolve_models
    from fer_core.fileio import file_sha256

    if not str(spec or "").replace(",", "").strip():
        raise FerError("no teacher given (--teacher NAME[,NAME...])")
    teachers = []
    for ref in resolve_models(str(spec)):
        metrics = ref.metrics
        teachers.append(
            {
                "path": str(ref.model_file.resolve()),
                "sha256": file_sha256(ref.model_file),
                "model": ref.config.get("model"),
                "reported_split": metrics.get("split"),
                "reported_accuracy": metrics.get("accuracy"),
            }
        )
    return {"weight": weight, "tta": "flip", "teachers": teachers}


def distillation_targets(
    config: TrainConfig, labels: np.ndarray, images: np.ndarray, cache: Path, report=None
) -> np.ndarray:
    """Soft targets for knowledge distillation (Hinton et al. 2015, temperature 1): each training
    image's one-hot label mixed with the teachers' mean flip-TTA probabilities for it, the
    teachers' share being `distill_from["weight"]`. Teachers see the unaugmented image; the
    student learns the same target for every augmented view of it.

    The teachers' probabilities are computed once per run and kept in `cache` (a resume reuses
    them, so a teacher replaced since cannot change a run's targets halfway), and per teacher in
    the shared probabilities cache (`evaluation.cached_probabilities`), where the next run with the
    same teacher and data finds them. `report(text)`, if given, hears which teacher is at work
    (19 minutes in all for the four shipped models on the 2-core CPU).

    Raises:
        FerError: a teacher file that is missing or no longer the one config.json recorded.
    """
    from fer_core.evaluation import cached_probabilities, read_cached_probabilities
    from fer_core.fileio import file_sha256
    from fer_core.fileio import write_atomic

    distill = config.distill_from
    probabilities = read_cached_probabilities(cache, len(labels))
    if probabilities is None:
        total = np.zeros((len(labels), len(config.class_names)), dtype=np.float64)
        for number, teacher in enumerate(distill["teachers"], start=1):
            if report:
                name = teacher.get("model") or Path(teacher["path"]).stem
                report(f"distillation targets: teacher {number} of {len(distill['teachers'])} ({name})")
            if teacher.get("sha256") and file_sha256(teacher["path"]) != teacher["sha256"]:
                raise FerError(f"teacher {teacher['path']} has changed since the run was configured")
            # Kept per teacher in the shared cache too: the next run distilling from it is spared them.
            total += cached_probabilities(teacher["path"], images, labels, tta=distill.get("tta", "flip"))
        probabilities = (total / len(distill["teachers"])).astype(np.float32)
        write_atomic(cache, lambda tmp: np.save(tmp, probabilities, allow_pickle=False))
    one_hot = np.eye(len(config.class_names), dtype=np.float32)[labels]
    weight = float(distill["weight"])
    return (1.0 - weight) * one_hot + weight * probabilities


def load_init_weights(model, config: TrainConfig) -> None:
    """Copy the warm-start model's weights into the freshly built `model` (same family and shapes),
    or, for a family that can narrow (`ModelSpec.narrow`) and a build with other parameters,
    prune them into it."""
    from fer_core.artifacts import load_model
    from fer_core.models import get_spec

    source = load_model(config.init_from["path"])
    if source.name != model.name:
        raise FerError(f"cannot warm-start {model.name} from {config.init_from['path']}: it is a {source.name} model")
    source_classes = tuple(config.init_from.get("classes") or ())
    if source_classes and source_classes != config.class_names:
        transfer_body(source, model, config)
        return
    theirs, ours = source.get_weights(), model.get_weights()
    if len(theirs) != len(ours) or any(a.shape != b.shape for a, b in zip(theirs, ours)):
        narrow = get_spec(config.model).narrow
        if narrow is not None and config.model_params != config.init_from.get("model_params", {}):
            narrow(source, model)  # a narrower build: pruned from the source's channels
            return
        raise FerError(
            f"cannot warm-start {model.name} from {config.init_from['path']}: its layers have other shapes "
            "(different model parameters)"
        )
    # Weights keep the new model's dtypes (a float16-stored source is cast to the training precision).
    model.set_weights([w.astype(o.dtype) for w, o in zip(theirs, ours)])


def transfer_body(source, model, config: TrainConfig) -> None:
    """A model for other classes started from `source`: every layer but the head takes the
    source's weights, the head (one output per new class) starts fresh."""
    copied = 0
    for layer in model.layers:
        if layer.name == HEAD_LAYER or not layer.weights:
            continue
        try:
            theirs = source.get_layer(layer.name).get_weights()
        except ValueError:
            theirs = None
        ours = layer.get_weights()
        if theirs is None or len(theirs) != len(ours) or any(a.shape != b.shape for a, b in zip(theirs, ours)):
            raise FerError(
                f"cannot transfer {model.name} from {config.init_from['path']}: layer {layer.name} has other "
                "shapes (different model parameters)"
            )
        layer.set_weights([w.astype(o.dtype) for w, o in zip(theirs, ours)])
        copied += 1
    if not copied:
        raise FerError(f"cannot transfer from {config.init_from['path']}: no layer in common")


def compile_whole_step(training_model) -> None:
    """On JAX, let the whole training step (augmentation included) run as one XLA program.

    Keras marks RandomRotation/Zoom/Translation `supports_jit = False` because TensorFlow's XLA
    cannot compile their image transform, and one such layer turns jit off for the whole model.
    On JAX that means every op of every step dispatched one by one: measured on an H100, 170 s
    an epoch for the paper CNN. JAX's own affine transform compiles fine, so on JAX the flag is
    lifted and the step jitted. TensorFlow keeps Keras' choice (a graph function, no XLA).
    """
    from fer_core.backend import load_keras

    if load_keras().backend.backend() != "jax":
        return
    for layer in training_model.layers:
        if layer.name.startswith("aug_"):
            layer.supports_jit = True
    training_model.jit_compile = True


def optimizer_for(config: TrainConfig):
    from fer_core.backend import load_keras

    keras = load_keras()

    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        # Nesterov momentum, as in Khaireddin & Chen's FER2013 VGGNet recipe; weight decay applied
        # by Keras as a decoupled shrink of the weights each step.
        return keras.optimizers.SGD(
            learning_rate=config.learning_rate, momentum=0.9, nesterov=True, weight_decay=config.weight_decay or None
        )
    return keras.optimizers.Adam(learning_rate=config.learning_rate)


def schedule_fraction(config: TrainConfig, epoch: int, elapsed_seconds: float) -> float:
    """How far through the run the schedule is, 0..1: the epoch over the epoch count, or with a
    time budget whichever is further along, the time or the epochs, so a run ends annealed
    whichever limit it reaches first."""
    span = max(1, config.epochs - config.warmup_epochs)
    by_epoch = min(1.0, max(0.0, (epoch - config.warmup_epochs) / span))
    if config.minutes:
        return max(by_epoch, min(1.0, elapsed_seconds / (config.minutes * 60.0)))
    return by_epoch


def learning_rate_at(
    config: TrainConfig, epoch: int, elapsed_seconds: float = 0.0, epoch_fraction: float = 1.0
) -> float:
    """The learning rate for a 0-based epoch: linear warm-up over `warmup_epochs`, then constant,
    cosine or linear decay to zero over the schedule (`schedule_fraction`).

    `epoch_fraction` in (0, 1] is how far into the epoch the next step lands; the training loop
    passes it batch by batch so the warm-up rises step by step from near zero (with the default 1.0
    the warm-up is a staircase, one rate an epoch, and a one-epoch warm-up would be no warm-up)."""
    if config.warmup_epochs and epoch < config.warmup_epochs:
        return config.learning_rate * (epoch + epoch_fraction) / config.warmup_epochs
    t = schedule_fraction(config, epoch, elapsed_seconds)
    # After a frozen-body start, the whole network fine-tunes at a lower rate than the head had.
    base = config.learning_rate * (FINE_TUNE_RATE if config.freeze_epochs and epoch >= config.freeze_epochs else 1.0)
    if config.lr_schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * t))
    if config.lr_schedule == "linear":
        return base * (1.0 - t)
    return base


def class_weight_map(labels: np.ndarray, how: str, num_classes: int) -> dict[int, float] | None:
    """'balanced': n / (k * count_c) for the classes present, as in scikit-learn."""
    if how == "none":
        return None
    counts = np.bincount(labels, minlength=num_classes)
    present = counts > 0
    return {c: float(len(labels) / (present.sum() * counts[c])) if counts[c] else 0.0 for c in range(num_classes)}


def build_config(
    settings: dict,
    config_file: str | None = None,
    params: list[str] | None = None,
    init: str | None = None,
    teachers: list[str] | None = None,
    distill_weight: float | None = None,
) -> TrainConfig:
    """The TrainConfig of a new run: `config_file`'s settings (a config.json), overridden by
    `settings` (None values are not given), `params` (KEY=VALUE) merged into the model
    parameters, the warm start (`init`) and the teachers resolved to what config.json records.

    Raises:
        FerError: no model or data, an unreadable config file, or settings TrainConfig refuses.
    """
    base = {}
    if config_file:
        from fer_core.fileio import read_json

        base = read_json(config_file)
        if not isinstance(base, dict):
            raise FerError(f"{config_file}: not a readable JSON config")
        base.pop("classes", None)  # the data's, recorded again when this run loads its data
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    merged = {**base, **{k: v for k, v in settings.items() if k in fields and v is not None}}
    if params:
        merged["model_params"] = {**base.get("model_params", {}), **parse_params(params)}
    if not merged.get("model"):
        raise FerError("no model given (--model NAME)")
    if not merged.get("data"):
        raise FerError("no dataset given (--data PATH)")
    merged["data"] = str(Path(merged["data"]).expanduser())
    if init:
        merged["init_from"] = describe_init(init, merged["model"])
    if teachers:
        merged["distill_from"] = describe_teachers(teachers, 0.5 if distill_weight is None else distill_weight)
    elif distill_weight is not None:
        raise FerError("--distill-weight needs --teacher (the models to distil from)")
    return TrainConfig.from_dict(merged)
