"""The training loop: one `TrainConfig` → one run directory (format: `fer_core.rundir`), written
only by the training process. The recipe it runs (model, augmentation, optimizer, schedule,
precision) is `fer_core.training.recipe`'s; the fit itself `fer_core.training.fitting`'s; the per-batch and
per-epoch work is the callback's (`fer_core.training.callback`), its bookkeeping a `RunState`.

The best epoch is picked on a selection split that is never the reported one
(`fer_core.training.splits`); metrics.json reports the best model on the other split.

A stop request (a `STOP` file in the run directory, SIGTERM or SIGINT) ends the run after the
current batch; the epoch is closed out with validation so the best model is still kept. So does
a spent time budget.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from pathlib import Path


from fer_core.backend import resolve_precision
from fer_core.data import Dataset
from fer_core.errors import FerError
from fer_core.fileio import read_json, write_json_atomic, write_text_atomic
from fer_core.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOG_FILE,
    STATE_FILE,
    STOP_FILE,
    create_run_dir,
    now,
    pid_alive,
    read_history,
    read_progress,
    write_progress,
    write_progress_quietly,
)
from fer_core.training.stop_request import StopRequest
from fer_core.training.config import TrainConfig
from fer_core.training.devices import distribution_scope, resolve_devices
from fer_core.training.estimate import run_ended, setup_seconds
from fer_core.training.fitting import fit_on_devices, training_targets
from fer_core.training.recipe import build_training_model, compile_whole_step, precision_policy
from fer_core.evaluation.unseen import HELD_OUT_FILE, write_seen
from fer_core.training.reporting import measure_best_model, read_config, write_reported_metrics
from fer_core.training.splits import (
    TrainingData,
    as_the_run_saw_it,
    load_run_data,
    prepare_data,
    selection_split_name,
)
from fer_core.training.state import RunState


def train(
    config: TrainConfig,
    out: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    dataset: Dataset | None = None,
    echo: bool = True,
) -> Path:
    """Train a new run; returns its run directory (status in progress.json)."""
    config, dataset, data = _prologue(config, dataset)  # refuses before a run directory is made
    path = create_run_dir(config.model, out=out, run_dir=run_dir)
    write_json_atomic(path / CONFIG_FILE, config.to_dict())
    return _fit(path, config, dataset, data, RunState(), echo=echo)


def start_prepared(run_dir: str | os.PathLike, dataset: Dataset | None = None, echo: bool = True) -> Path:
    """Train a run whose directory holds only its config.json, as the dashboard's launch writes
    it (`fer_core.training.launch`): the config is read once, here, not passed along again.

    Raises:
        FerError: not such a directory, or settings or data that cannot train (also recorded
        in progress.json, for the Train page).
    """
    path = Path(run_dir)
    config = read_config(path)
    if read_progress(path) or (path / STATE_FILE).exists():
        raise FerError(f"{path}: the run has already started (use --resume to continue it)")
    try:
        config, dataset, data = _prologue(config, dataset)
    except FerError as exc:
        write_progress_quietly(path, status="failed", error=str(exc), finished_at=now())
        raise
    # config.json stays as the dashboard wrote it (read, never written again): the data's classes
    # reach the model's records through metrics.json, which names them too.
    return _fit(path, config, dataset, data, RunState(), echo=echo)


def resume(run_dir: str | os.PathLike, dataset: Dataset | None = None, echo: bool = True) -> Path:
    """Continue an interrupted or stopped run from its last completed epoch."""
    path = Path(run_dir)
    config = read_config(path)
    state = resumable_state(path, config)
    config, dataset, data = _prologue(config, dataset)
    if state.all_epochs_done(config.epochs):  # killed after its last epoch, before its wrap-up
        return _finish(path, config, dataset, data, state, _run_logger(path, echo))
    (path / STOP_FILE).unlink(missing_ok=True)
    state.stop_reason = None
    return _fit(path, config, dataset, data, state, checkpoint=path / CHECKPOINT_FILE, echo=echo)


def _load_checkpoint(path: Path, config: TrainConfig):
    """The training model (augmentation, weights, optimizer state) of the last completed epoch."""
    from fer_core.backend import load_keras

    keras = load_keras()

    from fer_core.models import load_families

    load_families()  # registers the custom layers for deserialisation

    try:
        with precision_policy(config.precision):
            training_model = keras.saving.load_model(str(path), safe_mode=True)
    except Exception as exc:
        raise FerError(f"{path.parent}: the checkpoint cannot be loaded ({str(exc).splitlines()[0][:160]})") from None
    compile_whole_step(training_model)
    return training_model


def _prologue(config: TrainConfig, dataset: Dataset | None) -> tuple[TrainConfig, Dataset, TrainingData]:
    """What every way into a run does first: the precision and the devices resolved (once: launch
    writes them resolved, and resolving a resolved one is a no-op), the data loaded and split."""
    config = resolve_devices(dataclasses.replace(config, precision=resolve_precision(config.precision)))
    if dataset is None:
        if not config.data:
            raise FerError("no dataset given (--data PATH)")
        dataset = load_run_data(config)
    config, dataset = as_the_run_saw_it(config, dataset)
    if config.classes is None:  # recorded in config.json: the model's classes are the data's
        config = dataclasses.replace(config, classes=list(dataset.classes))
    elif tuple(config.classes) != tuple(dataset.classes):
        raise FerError(
            f"the run's classes ({', '.join(config.classes)}) are not the data's ({', '.join(dataset.classes)})"
        )
    return config, dataset, prepare_data(config, dataset)


def resumable_state(path: Path, config: TrainConfig) -> RunState:
    """The state to continue from, or a one-line refusal: still running, nothing to resume from,
    or already finished (checked by the launch too, before a process starts)."""
    progress = read_progress(path)
    if (
        progress.get("status") == "running"
        and pid_alive(progress.get("pid"))
        and progress.get("host") == socket.gethostname()
    ):
        raise FerError(f"{path}: the run is still running (pid {progress['pid']})")
    if not (path / CHECKPOINT_FILE).is_file():
        raise FerError(f"{path}: no completed epoch to resume from; start a new run instead")
    saved, history = read_json(path / STATE_FILE), read_history(path)
    if isinstance(saved, dict):
        state = RunState.from_saved(saved, history)
    elif history:
        state = RunState.from_history(history)
    else:
        raise FerError(f"{path}: no completed epoch to resume from; start a new run instead")
    if state.all_epochs_done(config.epochs) and progress.get("status") in ("finished", "stopped", "failed"):
        raise FerError(f"{path}: the run already finished ({state.epoch} epochs); nothing to resume")
    state.stopped = False
    return state


def _run_logger(run_dir: Path, echo: bool) -> logging.Logger:
    log = logging.getLogger(f"fer_core.run.{run_dir.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers.clear()
    file_handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(file_handler)
    if echo:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(stream)
    return log


def _fit(
    path: Path,
    config: TrainConfig,
    dataset: Dataset,
    data: TrainingData,
    state: RunState,
    echo: bool,
    checkpoint: Path | None = None,
) -> Path:
    """Fit a new model, or continue from `checkpoint`, on the devices `config.layout` names."""
    from fer_core.backend import environment, load_keras

    keras = load_keras()

    log = _run_logger(path, echo)
    (path / STOP_FILE).unlink(missing_ok=True)
    # A process killed mid-write leaves its temp file (never the target) behind; sweep those.
    for leftover in path.glob(".*.tmp*"):
        leftover.unlink(missing_ok=True)
    if config.held_out:  # the held-out faces by name, so the reported numbers can be recomputed
        write_text_atomic(path / HELD_OUT_FILE, "".join(f"{f}\n" for f in dataset.split("test").sources))
    # The faces it trains and selects on, by their pixels: no measurement counts them, by any path.
    write_seen(path, data.x_train, data.x_val)
    stop = StopRequest(path)
    stop.install()
    write_progress(
        path,
        status="starting",
        pid=os.getpid(),
        host=socket.gethostname(),
        epochs=config.epochs,
        epoch=state.epoch,
        started_at=now(),
        error=None,
        wrapping_up=False,
        backend=keras.backend.backend(),
        train_images=int(len(data.y_train)),
        val_images=int(len(data.y_val)),
        val_split=data.val_split,
        environment=environment(),
        setup_seconds=setup_seconds(),  # what the estimate adds to the training, with the wrap-up
    )
    log.info(
        "run %s: %s on %d training / %d validation (%s) images, backend %s",
        path,
        config.model,
        len(data.y_train),
        len(data.y_val),
        data.val_split,
        keras.backend.backend(),
    )
    try:
        # The model and its optimizer are made inside the distribution's scope (JAX refuses
        # single-device variables in a mesh's program); the fit runs there too.
        y_train = training_targets(path, config, data, log)  # before the scope: teachers predict on one device
        with distribution_scope(config.devices):
            keras.utils.set_random_seed(config.seed + state.epoch)
            if checkpoint is None:
                training_model, model = build_training_model(config)
            else:
                training_model = _load_checkpoint(checkpoint, config)
                model = training_model.layers[-1]
            fit_on_devices(path, config, data, y_train, state, stop, training_model, model, log)
    except KeyboardInterrupt:
        state.stopped = True
    except FerError as exc:  # said in one line already: a checkpoint that cannot be loaded, too few images
        write_progress_quietly(path, status="failed", error=str(exc))
        raise
    except Exception as exc:
        reason = _failure_reason(exc)
        log.error("run failed: %s", reason)
        write_progress_quietly(path, status="failed", error=reason)
        raise FerError(f"training failed: {reason} (run directory {path})") from None

    return _finish(path, config, dataset, data, state, log)


def _finish(path: Path, config: TrainConfig, dataset: Dataset, data: TrainingData, state: RunState, log) -> Path:
    """The run's wrap-up after its last epoch: metrics.json on the reported split, final status.
    A run stopped on request ends at once, unmeasured: whoever stopped it is waiting, and its
    best model is measured when it is promoted (or by `fer-core evaluate`)."""
    wrap_up_start = time.monotonic()
    status = "stopped" if state.stopped else "finished"
    if not state.stop_reason and not state.stopped:
        state.stop_reason = "epochs"
    if state.stopped:
        log.info("stopped on request: the best model (epoch %d) is kept, not measured", state.best_epoch)
    elif (path / "model.keras").is_file():
        write_progress_quietly(
            path,
            wrapping_up=True,
            eta_seconds=None,
            phase=f"final evaluation: measuring the best model (epoch {state.best_epoch}) on the reported split",
        )
        try:
            measure_best_model(path, config, dataset, data)
        except Exception as exc:  # metrics are reproducible later with `fer-core evaluate`
            log.error("evaluating the best model failed: %s", _failure_reason(exc))
    write_progress_quietly(
        path,
        status=status,
        wrapping_up=False,
        phase=None,
        stop_reason=state.stop_reason,
        finished_at=now(),
        wrap_up_seconds=round(time.monotonic() - wrap_up_start, 2),
        best_val_accuracy=state.best_val_accuracy,
        best_epoch=state.best_epoch,
        minutes_spent=round(state.seconds / 60.0, 2),
    )
    run_ended()
    best = (
        f"best val_accuracy {state.best_val_accuracy:.4f} at epoch {state.best_epoch}"
        if state.best_epoch
        else "no epoch finished, so no best model"
    )
    log.info(
        "run %s: %s (%s) after %d epochs, %.1f min; %s",
        path,
        status,
        state.stop_reason,
        state.epoch,
        state.seconds / 60.0,
        best,
    )
    return path


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == 28:
        return "the disk is full"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


__all__ = [
    "TrainConfig",
    "train",
    "start_prepared",
    "resume",
    "prepare_data",
    "selection_split_name",
    "write_reported_metrics",
]
