"""One fit of a run's model on its prepared arrays: the targets (one-hot labels, or a distillation's
teachers' probabilities), the arrays cut to split evenly over the devices, and Keras' `fit` with
the run's callback, in two phases where a transfer's body is frozen first. `fer_core.training.loop`
owns the run around it (its folder, progress, failure and wrap-up)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fer_core.rundir import write_progress
from fer_core.training.config import TrainConfig
from fer_core.training.devices import local_share, real_rows_only, split_evenly
from fer_core.training.recipe import class_weight_map, compile_training_model, distillation_targets, set_body_trainable
from fer_core.training.splits import TrainingData

# The teachers' probabilities for the training images of a distillation run (see distillation_targets).
TEACHER_FILE = "teacher_probabilities.npy"


def training_targets(path: Path, config: TrainConfig, data: TrainingData, log) -> np.ndarray:
    """One-hot labels, or with teachers the distillation targets (computed once a run)."""
    if not config.distill_from:
        from fer_core.backend import load_keras

        return load_keras().utils.to_categorical(data.y_train, len(config.class_names))
    log.info("distillation targets from %d teacher(s)", len(config.distill_from["teachers"]))
    targets = distillation_targets(
        config,
        data.y_train,
        data.x_train,
        path / TEACHER_FILE,
        report=lambda text: write_progress(path, phase=text),
    )
    write_progress(path, phase=None)
    return targets


def fit_on_devices(path, config, data, y_train, state, stop, training_model, model, log) -> None:
    """The weights and arrays of one fit, cut to split evenly over the devices, and the fit."""
    from fer_core.backend import load_keras
    from fer_core.training.callback import RunCallback  # loads Keras: imported when it fits

    keras = load_keras()
    # Class weights as per-image weights from the true labels: Keras' class_weight would read
    # the class off the target's argmax, which a soft (distilled) target may have moved.
    weights = class_weight_map(data.y_train, config.class_weights, len(config.class_names))
    if weights is not None:
        weights = np.array([weights[int(y)] for y in data.y_train], np.float32)
    layout = config.layout or {}
    processes = int(layout.get("processes", 1))
    y_val = keras.utils.to_categorical(data.y_val, len(config.class_names))
    fit = split_evenly(data.x_train, y_train, weights, data.x_val, y_val, devices=config.devices)
    if processes > 1:  # a cluster: each process feeds its own share of the images
        import jax

        fit = local_share(fit, processes, jax.process_index())
    if config.devices > 1:
        log.info(
            "data parallel over %d %s devices: %d images of each batch a device; %d training image(s) left "
            "out and %d zero-weight validation row(s) added so every batch splits",
            config.devices,
            layout.get("device_kind", "?"),
            layout.get("per_device_batch", config.batch_size // config.devices),
            fit.dropped,
            fit.padded,
        )
    batch_size = config.batch_size // processes
    real_rows = len(data.y_val)  # the whole cluster's, like the metrics Keras reports
    callbacks = [real_rows_only(real_rows, fit.padded)] if config.devices > 1 else []
    callbacks.append(RunCallback(path, config, model, state, stop, math.ceil(len(fit.y_train) / batch_size), log))
    validation = (fit.x_val, fit.y_val) if fit.val_weights is None else (fit.x_val, fit.y_val, fit.val_weights)
    # A transfer's frozen-body epochs are a fit of their own: Keras reads `trainable` when it
    # compiles, so the body is freed and the model compiled again between the two.
    phases = [config.epochs]
    if config.freeze_epochs and state.epoch < config.freeze_epochs:
        phases = [config.freeze_epochs, config.epochs]
        set_body_trainable(model, False)
        compile_training_model(training_model, config)
    for number, end in enumerate(phases):
        if number:
            log.info("epoch %d: the body is freed; every layer trains from here", state.epoch + 1)
            set_body_trainable(model, True)
            compile_training_model(training_model, config)
        training_model.fit(
            fit.x_train,
            fit.y_train,
            validation_data=validation,
            batch_size=batch_size,
            epochs=end,
            initial_epoch=state.epoch,
            sample_weight=fit.weights,
            callbacks=callbacks,
            shuffle=True,
            verbose=0,
        )
        if state.stop_reason or state.stopped:
            break
