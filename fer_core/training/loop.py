"""The training loop: one `TrainConfig` → one run directory (format: `fer_core.rundir`), written
only by the training process. The recipe it runs (model, augmentation, optimizer, schedule,
precision) is `fer_core.training.recipe`'s.

The best epoch is picked on a selection split that is never the reported one (see
`selection_split_name`); metrics.json reports the best model on the other split.

A stop request (a `STOP` file in the run directory, SIGTERM or SIGINT) ends the run after the
current batch; the epoch is closed out with validation so the best model is still kept. So does
a spent time budget.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core import NUM_CLASSES
from fer_core.backend import resolve_precision
from fer_core.data import Dataset, default_training_split, load_dataset
from fer_core.errors import FerError
from fer_core.fileio import read_json, save_model_atomic, write_json_atomic
from fer_core.training.recipe import (
    build_training_model,
    class_weight_map,
    compile_whole_step,
    distillation_targets,
    learning_rate_at,
    precision_policy,
)
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
    write_history,
    write_progress,
    write_progress_quietly,
)
from fer_core.training.config import TrainConfig

# The name recorded for a held-out slice of Training used as the selection split.
VALIDATION_SLICE = "validation"
STOP_REASONS = ("epochs", "budget", "early_stop", "stop_request")
PROGRESS_INTERVAL_S = 1.0  # how often progress.json is rewritten during an epoch
# The teachers' probabilities for the training images of a distillation run (see distillation_targets).
TEACHER_FILE = "teacher_probabilities.npy"


@dataclass
class TrainingData:
    x_train: np.ndarray  # (N, 48, 48, 1) uint8
    y_train: np.ndarray  # (N,) int
    x_val: np.ndarray
    y_val: np.ndarray
    train_split: str
    val_split: str


def selection_split_name(dataset: Dataset) -> str | None:
    """The split that picks the best epoch: PublicTest when PrivateTest is there to report on
    (the Kaggle CSV), else None, meaning a stratified slice of Training (the folder layout, where
    PublicTest is the reported split). Selection is never on the split that is reported."""
    names = dataset.split_names
    return "PublicTest" if "PrivateTest" in names and "PublicTest" in names else None


def prepare_data(config: TrainConfig, dataset: Dataset) -> TrainingData:
    """Training images and the selection split (see selection_split_name)."""
    dataset = dataset.head(config.limit)
    train_name = default_training_split(dataset)
    train = dataset.split(train_name) if train_name else dataset
    selection_name = selection_split_name(dataset)
    if selection_name:
        val = dataset.split(selection_name)
        x_tr, y_tr, x_va, y_va, val_name = train.images, train.labels, val.images, val.labels, selection_name
    else:
        from sklearn.model_selection import train_test_split

        counts = np.bincount(train.labels, minlength=NUM_CLASSES)
        stratify = train.labels if counts[counts > 0].min() >= 2 else None
        n_val = max(1, int(round(len(train) * config.validation_split)))
        if len(train) - n_val < 1:
            raise FerError(f"too few images to hold out a validation slice: {len(train)}")
        if stratify is not None and n_val < (counts > 0).sum():
            stratify = None  # too small a slice to hold every class once
        x_tr, x_va, y_tr, y_va = train_test_split(
            train.images, train.labels, test_size=n_val, random_state=config.seed, stratify=stratify
        )
        val_name = VALIDATION_SLICE
    if config.batch_size > len(x_tr):
        raise FerError(f"batch size {config.batch_size} is larger than the {len(x_tr)} training images")
    return TrainingData(x_tr[..., None], y_tr, x_va[..., None], y_va, train_name or "all", val_name)


# ---- the run ---------------------------------------------------------------------------------


class StopRequest:
    """Set by SIGTERM/SIGINT or a STOP file; checked after every batch."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.signalled = False

    def __call__(self) -> bool:
        return self.signalled or (self.run_dir / STOP_FILE).exists()

    def install(self) -> None:
        def handler(signum, _frame):
            self.signalled = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, handler)
            except ValueError:
                pass  # not the main thread (e.g. called from a test thread): STOP file only


def run_callback(
    run_dir: Path, config: TrainConfig, model, state: dict, stop: StopRequest, batches: int, log: logging.Logger
):
    from fer_core.backend import load_keras

    keras = load_keras()

    class RunCallback(keras.callbacks.Callback):
        """Writes progress, history, the best model and the resumable checkpoint; applies the
        learning-rate schedule, the time budget and early stopping."""

        def on_train_begin(self, logs=None):
            self.fit_start = time.monotonic()
            self.seconds_before = float(state.get("seconds", 0.0))  # spent before a resume

        def elapsed(self) -> float:
            return self.seconds_before + time.monotonic() - self.fit_start

        def set_rate(self, epoch, batch: int = 0) -> None:
            rate = learning_rate_at(config, epoch, self.elapsed(), epoch_fraction=(batch + 1) / max(1, batches))
            if rate != getattr(self, "rate", None):
                self.model.optimizer.learning_rate.assign(rate)
                self.rate = rate

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.epoch_start = time.monotonic()
            self.last_write = 0.0
            self.set_rate(epoch)
            write_progress(run_dir, status="running", epoch=epoch + 1, batch=0, batches=batches)

        def on_train_batch_begin(self, batch, logs=None):
            # A time-based schedule moves within the epoch, and so does the warm-up.
            if config.minutes or self.epoch < config.warmup_epochs:
                self.set_rate(self.epoch, batch)

        def on_train_batch_end(self, batch, logs=None):
            if stop():
                self.model.stop_training = True
                state["stopped"] = True
                state["stop_reason"] = "stop_request"
            elif config.minutes and self.elapsed() >= config.minutes * 60.0:
                self.model.stop_training = True
                state["stop_reason"] = "budget"
            now = time.monotonic()
            if now - self.last_write >= PROGRESS_INTERVAL_S or batch + 1 == batches:
                self.last_write = now
                elapsed = now - self.epoch_start
                # Time left from finished epochs only (validation included): the first batches
                # of a run compile the graph and are many times slower than the rest.
                recent = [row["seconds"] for row in state["history"][-3:] if row.get("seconds")]
                eta = None
                if recent:
                    per_epoch = sum(recent) / len(recent)
                    epochs_left = config.epochs - (state["epoch"] + 1)
                    eta = per_epoch * (1 - (batch + 1) / batches) + epochs_left * per_epoch
                extra = {}
                if config.minutes:
                    left = max(0.0, config.minutes * 60.0 - self.elapsed())
                    eta = left if eta is None else min(eta, left)
                    extra["minutes_left"] = round(left / 60.0, 2)
                write_progress(
                    run_dir,
                    batch=batch + 1,
                    batch_metrics={k: float(v) for k, v in (logs or {}).items()},
                    images_per_second=(batch + 1) * config.batch_size / max(elapsed, 1e-9),
                    eta_seconds=None if eta is None else round(eta, 1),
                    learning_rate=self.rate,
                    **extra,
                )

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            seconds = time.monotonic() - self.epoch_start
            row = {
                "epoch": epoch + 1,
                "loss": logs.get("loss"),
                "accuracy": logs.get("accuracy"),
                "val_loss": logs.get("val_loss"),
                "val_accuracy": logs.get("val_accuracy"),
                "learning_rate": self.rate,
                "seconds": round(seconds, 2),
            }
            improved = record_epoch(state, row)
            state["seconds"] = round(self.elapsed(), 2)
            if config.patience and state["wait"] >= config.patience and not state.get("stop_reason"):
                log.info("early stopping: validation loss has not improved for %d epochs", config.patience)
                state["early_stopped"] = True
                state["stop_reason"] = "early_stop"
                self.model.stop_training = True
            if state["epoch"] >= config.epochs and not state.get("stop_reason"):
                state["stop_reason"] = "epochs"
            # Order matters for a kill at any moment: the models first, then the history row (so
            # a finished epoch in history.csv always has its model), then state.json (so resume
            # never points past what is saved; it truncates history to state's epoch).
            if improved:
                save_model_atomic(model, run_dir / "model.keras")
            save_model_atomic(self.model, run_dir / CHECKPOINT_FILE)
            write_history(run_dir, state["history"])
            write_json_atomic(run_dir / STATE_FILE, {k: v for k, v in state.items() if k != "history"})
            log.info(
                "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.2g  %.0fs%s",
                epoch + 1,
                config.epochs,
                row["loss"] or float("nan"),
                row["accuracy"] or float("nan"),
                row["val_loss"] or float("nan"),
                row["val_accuracy"] or float("nan"),
                self.rate,
                seconds,
                "  *best*" if improved else "",
            )
            write_progress(
                run_dir,
                epoch=epoch + 1,
                batch=batches,
                epoch_metrics=row,
                best_val_accuracy=state["best_val_accuracy"],
                best_epoch=state["best_epoch"],
                minutes_spent=round(state["seconds"] / 60.0, 2),
            )

    return RunCallback()


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


def train(
    config: TrainConfig,
    out: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    dataset: Dataset | None = None,
    echo: bool = True,
) -> Path:
    """Train a new run; returns its run directory (status in progress.json)."""
    config = dataclasses.replace(config, precision=resolve_precision(config.precision))
    dataset = dataset if dataset is not None else _load_data(config)
    data = prepare_data(config, dataset)  # refuses before a run directory is made
    path = create_run_dir(config.model, out=out, run_dir=run_dir)
    write_json_atomic(path / CONFIG_FILE, config.to_dict())
    return _fit(path, config, dataset, data, new_run_state(), training_model=None, echo=echo)


def start_prepared(run_dir: str | os.PathLike, dataset: Dataset | None = None, echo: bool = True) -> Path:
    """Train a run whose directory holds only its config.json, as the dashboard's launch writes
    it (`fer_core.training.launch`): the config is read once, here, not passed along again.

    Raises:
        FerError: not such a directory, or settings or data that cannot train (also recorded
        in progress.json, for the Train page).
    """
    path = Path(run_dir)
    config = _read_config(path)
    if read_progress(path) or (path / STATE_FILE).exists():
        raise FerError(f"{path}: the run has already started (use --resume to continue it)")
    try:
        config = dataclasses.replace(config, precision=resolve_precision(config.precision))
        dataset = dataset if dataset is not None else _load_data(config)
        data = prepare_data(config, dataset)
    except FerError as exc:
        write_progress_quietly(path, status="failed", error=str(exc), finished_at=now())
        raise
    return _fit(path, config, dataset, data, new_run_state(), training_model=None, echo=echo)


def new_run_state() -> dict:
    """The training loop's bookkeeping at epoch 0 (what run_callback updates and STATE saves)."""
    return {
        "epoch": 0,
        "best_val_accuracy": -1.0,
        "best_epoch": 0,
        "best_val_loss": float("inf"),
        "wait": 0,
        "history": [],
        "stopped": False,
        "early_stopped": False,
        "seconds": 0.0,
        "stop_reason": None,
    }


def record_epoch(state: dict, row: dict) -> bool:
    """Add a finished epoch's history row to the run state; True when it is the best so far."""
    state["history"].append(row)
    accuracy, loss = row.get("val_accuracy"), row.get("val_loss")  # a row read back may lack them
    improved = accuracy is not None and accuracy > state["best_val_accuracy"]
    if improved:
        state["best_val_accuracy"] = accuracy
        state["best_epoch"] = row["epoch"]
    if loss is not None and loss < state["best_val_loss"]:
        state["best_val_loss"], state["wait"] = loss, 0
    else:
        state["wait"] += 1
    state["epoch"] = row["epoch"]
    return improved


def _state_from_history(history: list[dict]) -> dict:
    """The run state of a run killed after its first epoch's history row but before its first
    state.json (the epoch's models are saved before its row): replayed from the rows."""
    state = new_run_state()
    for row in history:
        record_epoch(state, row)
    state["seconds"] = round(sum(float(row.get("seconds") or 0.0) for row in history), 2)
    return {k: v for k, v in state.items() if k != "history"}


def _read_config(path: Path) -> TrainConfig:
    config_data = read_json(path / CONFIG_FILE)
    if not isinstance(config_data, dict):
        raise FerError(f"{path}: not a run directory (no readable {CONFIG_FILE})")
    return TrainConfig.from_dict(config_data)


def _load_data(config: TrainConfig) -> Dataset:
    if not config.data:
        raise FerError("no dataset given (--data PATH)")
    return load_dataset(config.data)


def resume(run_dir: str | os.PathLike, dataset: Dataset | None = None, echo: bool = True) -> Path:
    """Continue an interrupted or stopped run from its last completed epoch."""
    path = Path(run_dir)
    config = _read_config(path)
    config = dataclasses.replace(config, precision=resolve_precision(config.precision))
    state = read_json(path / STATE_FILE)
    if state is None and (path / CHECKPOINT_FILE).is_file() and read_history(path):
        state = _state_from_history(read_history(path))
    progress = read_progress(path)
    if (
        progress.get("status") == "running"
        and pid_alive(progress.get("pid"))
        and progress.get("host") == socket.gethostname()
    ):
        raise FerError(f"{path}: the run is still running (pid {progress['pid']})")
    if state is None or not (path / CHECKPOINT_FILE).is_file():
        raise FerError(f"{path}: no completed epoch to resume from; start a new run instead")
    all_epochs_done = (
        state.get("stop_reason") in ("epochs", "budget", "early_stop")
        or state["epoch"] >= config.epochs
        or state.get("early_stopped")
    )
    if all_epochs_done and progress.get("status") in ("finished", "stopped", "failed"):
        raise FerError(f"{path}: the run already finished ({state['epoch']} epochs); nothing to resume")
    if all_epochs_done:  # killed after its last epoch, before its wrap-up: do only the wrap-up
        state["history"] = read_history(path)[: state["epoch"]]
        state["stopped"] = False
        dataset = dataset if dataset is not None else _load_data(config)
        return _finish(path, config, dataset, prepare_data(config, dataset), state, _run_logger(path, echo))
    (path / STOP_FILE).unlink(missing_ok=True)
    state["history"] = read_history(path)[: state["epoch"]]
    state["stopped"] = False
    state["stop_reason"] = None
    dataset = dataset if dataset is not None else _load_data(config)
    data = prepare_data(config, dataset)

    from fer_core.backend import load_keras

    keras = load_keras()

    import fer_core.models  # noqa: F401  registers custom layers

    try:
        with precision_policy(config.precision):
            training_model = keras.saving.load_model(str(path / CHECKPOINT_FILE), safe_mode=True)
    except Exception as exc:
        raise FerError(f"{path}: the checkpoint cannot be loaded ({str(exc).splitlines()[0][:160]})") from None
    compile_whole_step(training_model)
    return _fit(path, config, dataset, data, state, training_model=training_model, echo=echo)


def _fit(
    path: Path, config: TrainConfig, dataset: Dataset, data: TrainingData, state: dict, training_model, echo: bool
) -> Path:
    from fer_core.backend import environment, load_keras

    keras = load_keras()

    log = _run_logger(path, echo)
    (path / STOP_FILE).unlink(missing_ok=True)
    # A process killed mid-write leaves its temp file (never the target) behind; sweep those.
    for leftover in path.glob(".*.tmp*"):
        leftover.unlink(missing_ok=True)
    stop = StopRequest(path)
    stop.install()
    write_progress(
        path,
        status="starting",
        pid=os.getpid(),
        host=socket.gethostname(),
        epochs=config.epochs,
        epoch=state["epoch"],
        started_at=now(),
        error=None,
        wrapping_up=False,
        backend=keras.backend.backend(),
        train_images=int(len(data.y_train)),
        val_images=int(len(data.y_val)),
        val_split=data.val_split,
        environment=environment(),
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
        keras.utils.set_random_seed(config.seed + state["epoch"])
        if training_model is None:
            training_model, model = build_training_model(config)
        else:
            model = training_model.layers[-1]
        batches = math.ceil(len(data.y_train) / config.batch_size)
        callback = run_callback(path, config, model, state, stop, batches, log)
        if config.distill_from:
            log.info("distillation targets from %d teacher(s)", len(config.distill_from["teachers"]))
            y_train = distillation_targets(
                config,
                data.y_train,
                data.x_train,
                path / TEACHER_FILE,
                report=lambda text: write_progress(path, phase=text),
            )
            write_progress(path, phase=None)
        else:
            y_train = keras.utils.to_categorical(data.y_train, NUM_CLASSES)
        y_val = keras.utils.to_categorical(data.y_val, NUM_CLASSES)
        # Class weights as per-image weights from the true labels: Keras' class_weight would read
        # the class off the target's argmax, which a soft (distilled) target may have moved.
        weights = class_weight_map(data.y_train, config.class_weights)
        training_model.fit(
            data.x_train,
            y_train,
            validation_data=(data.x_val, y_val),
            batch_size=config.batch_size,
            epochs=config.epochs,
            initial_epoch=state["epoch"],
            sample_weight=None if weights is None else np.array([weights[int(y)] for y in data.y_train], np.float32),
            callbacks=[callback],
            shuffle=True,
            verbose=0,
        )
    except KeyboardInterrupt:
        state["stopped"] = True
    except Exception as exc:
        reason = _failure_reason(exc)
        log.error("run failed: %s", reason)
        write_progress_quietly(path, status="failed", error=reason)
        raise FerError(f"training failed: {reason} (run directory {path})") from None

    return _finish(path, config, dataset, data, state, log)


def _finish(path: Path, config: TrainConfig, dataset: Dataset, data: TrainingData, state: dict, log) -> Path:
    """The run's wrap-up after its last epoch: metrics.json on the reported split, final status."""
    status = "stopped" if state["stopped"] else "finished"
    if not state.get("stop_reason") and not state["stopped"]:
        state["stop_reason"] = "epochs"
    if (path / "model.keras").is_file():
        write_progress_quietly(
            path,
            wrapping_up=True,
            eta_seconds=None,
            phase=f"final evaluation: measuring the best model (epoch {state['best_epoch']}) on the reported split",
        )
        try:
            _write_reported_metrics(path, config, dataset, data)
        except Exception as exc:  # metrics are reproducible later with `fer-core evaluate`
            log.error("evaluating the best model failed: %s", _failure_reason(exc))
    write_progress_quietly(
        path,
        status=status,
        wrapping_up=False,
        phase=None,
        stop_reason=state.get("stop_reason"),
        finished_at=now(),
        best_val_accuracy=state["best_val_accuracy"],
        best_epoch=state["best_epoch"],
        minutes_spent=round(state.get("seconds", 0.0) / 60.0, 2),
    )
    log.info(
        "run %s: %s (%s) after %d epochs, %.1f min; best val_accuracy %.4f at epoch %d",
        path,
        status,
        state.get("stop_reason"),
        state["epoch"],
        state.get("seconds", 0.0) / 60.0,
        state["best_val_accuracy"],
        state["best_epoch"],
    )
    return path


def write_reported_metrics(folder: str | os.PathLike, dataset: Dataset | None = None, name: str | None = None) -> dict:
    """(Re)write metrics.json of a folder holding model.keras and config.json (a run, or a model
    being promoted) from the model file as it is now, so shipped numbers are the stored file's.

    Raises:
        FerError: the training data named in config.json cannot be loaded.
    """
    path = Path(folder)
    config = _read_config(path)
    if dataset is None:
        if not config.data or not Path(config.data).exists():
            raise FerError(
                f"cannot measure {name or path.name}: its dataset {config.data or '(none)'} is not here "
                "(name a copy of it with --data)"
            )
        dataset = load_dataset(config.data)
    return _write_reported_metrics(path, config, dataset, prepare_data(config, dataset), name=name)


def _write_reported_metrics(
    path: Path, config: TrainConfig, dataset: Dataset, data: TrainingData, name: str | None = None
) -> dict:
    """metrics.json: the best model on the reported split (never the one that selected it),
    without TTA, with flip TTA (`with_tta`) and with flip+zoom TTA (`with_flip_zoom`); where the
    data has no other split it says so."""
    from fer_core.artifacts import load_model
    from fer_core.data import default_evaluation_split
    from fer_core.evaluation import classifier_for, compute_metrics, evaluate, predict_probabilities

    classify = classifier_for(load_model(path / "model.keras"))  # built once for both passes
    dataset = dataset.head(config.limit)
    split = default_evaluation_split(dataset)
    honest = split is not None and split != data.val_split
    names = [name or path.name]
    if honest:
        metrics = evaluate([classify], dataset, split=split, names=names).metrics
        for key, tta in (("with_tta", "flip"), ("with_flip_zoom", "flip+zoom")):
            augmented = evaluate([classify], dataset, split=split, tta=tta, names=names).metrics
            metrics[key] = {k: augmented[k] for k in ("accuracy", "macro_f1", "loss")}
    else:  # only a Training split: the selection slice is all there is to measure
        metrics = compute_metrics(data.y_val, predict_probabilities(classify, data.x_val))
        metrics.update(split=data.val_split, tta=False, models=names)
    metrics["selection_split"] = data.val_split
    metrics["reported_on_selection_split"] = not honest
    write_json_atomic(path / "metrics.json", metrics)
    return metrics


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
