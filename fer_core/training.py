"""Training: one frozen `TrainConfig` → one run directory, written only by the training process.

A run directory holds `config.json`, `history.csv` (a row per finished epoch), `progress.json`
(status, epoch/batch, ETA; rewritten atomically), `model.keras` (best validation accuracy),
`checkpoint.keras` + `state.json` (the last epoch's full training state, for `--resume`),
`metrics.json` (the best model evaluated on the validation split) and `train.log`.

A stop request (a `STOP` file in the run directory, SIGTERM or SIGINT) ends the run after the
current batch; the epoch is closed out with validation so the best model is still kept.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
import math
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from fer_core import NUM_CLASSES
from fer_core.data import Dataset, default_training_split, load_dataset
from fer_core.errors import FerError
from fer_core.fileio import read_json, save_model_atomic, write_json_atomic, write_text_atomic

STOP_FILE = "STOP"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
LR_SCHEDULES = ("constant", "cosine", "linear")
STOP_REASONS = ("epochs", "budget", "early_stop", "stop_request")
CLASS_WEIGHTING = ("none", "balanced")
OPTIMIZERS = ("adam", "adamw", "sgd")
# The name recorded for a held-out slice of Training used as the selection split.
VALIDATION_SLICE = "validation"
PROGRESS_INTERVAL_S = 1.0  # how often progress.json is rewritten during an epoch


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run; saved as the run's config.json.

    Defaults are the paper's protocol: [0,1] scaling (inside the model), flip/rotation/zoom
    augmentation, Adam 1e-3, batch 64, categorical cross-entropy, early stopping on validation
    loss, up to 50 epochs, the best validation accuracy checkpointed.
    """

    model: str = "cnn"
    model_params: dict = field(default_factory=dict)
    data: str = ""
    seed: int = 1337
    epochs: int = 50  # a cap when `minutes` is set
    minutes: float | None = None  # time budget: the run ends by itself once it is spent
    batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    patience: int = 10  # epochs without a better validation loss before stopping; 0 = never
    label_smoothing: float = 0.0
    class_weights: str = "none"
    # Augmentation (applied on the fly in the training graph; the saved model has none of it).
    flip: bool = True
    rotation_degrees: float = 10.0
    zoom: float = 0.1
    shift: float = 0.0  # fraction of the side, both axes
    erasing: float = 0.0  # probability of random erasing per image
    validation_split: float = 0.1  # the stratified slice of Training that selects the best epoch (see prepare_data)
    limit: int | None = None  # first N images per split, for quick trials
    precision: str = "auto"  # resolved by resolve_precision before config.json is written
    # Warm start: the saved model whose weights this run starts from (optimizer and schedule fresh),
    # as written by describe_init: its path, model, reported metrics and cumulative epochs/minutes.
    init_from: dict | None = None

    def validate(self) -> None:
        """Refuse settings that cannot train, each with a one-line reason."""
        from fer_core.models import get_spec

        get_spec(self.model)
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be >= 1. Received: epochs={self.epochs}"),
            (self.minutes is None or (self.minutes > 0 and math.isfinite(self.minutes)), f"minutes must be > 0. Received: minutes={self.minutes}"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, f"batch size must be >= 1. Received: batch_size={self.batch_size}"),
            (self.learning_rate > 0 and math.isfinite(self.learning_rate), f"learning rate must be > 0. Received: learning_rate={self.learning_rate}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0. Received: weight_decay={self.weight_decay}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}. Received: optimizer={self.optimizer}"),
            (self.lr_schedule in LR_SCHEDULES, f"lr schedule must be one of {', '.join(LR_SCHEDULES)}. Received: lr_schedule={self.lr_schedule}"),
            (0 <= self.warmup_epochs < self.epochs or self.warmup_epochs == 0, f"warmup epochs must be < epochs. Received: warmup_epochs={self.warmup_epochs}"),
            (self.patience >= 0, f"patience must be >= 0. Received: patience={self.patience}"),
            (0 <= self.label_smoothing < 1, f"label smoothing must be in [0, 1). Received: label_smoothing={self.label_smoothing}"),
            (self.class_weights in CLASS_WEIGHTING, f"class weights must be one of {', '.join(CLASS_WEIGHTING)}. Received: class_weights={self.class_weights}"),
            (0 <= self.rotation_degrees <= 180, f"rotation must be in [0, 180] degrees. Received: rotation_degrees={self.rotation_degrees}"),
            (0 <= self.zoom < 1, f"zoom must be in [0, 1). Received: zoom={self.zoom}"),
            (0 <= self.shift < 1, f"shift must be in [0, 1). Received: shift={self.shift}"),
            (0 <= self.erasing <= 1, f"erasing must be a probability in [0, 1]. Received: erasing={self.erasing}"),
            (0 < self.validation_split < 1, f"validation split must be in (0, 1). Received: validation_split={self.validation_split}"),
            (self.limit is None or self.limit >= 1, f"limit must be >= 1 image per split. Received: limit={self.limit}"),
            (self.init_from is None or (isinstance(self.init_from, dict) and self.init_from.get("path")),
             f"init_from must name a saved model. Received: init_from={self.init_from}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}. Received: precision={self.precision}"),
        ]
        for ok, message in checks:
            if not ok:
                raise FerError(message)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FerError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**data)


# ---- run directories -------------------------------------------------------------------------


def runs_dir() -> Path:
    """Where new runs go by default: $FER_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("FER_RUNS_DIR") or "runs")


def create_run_dir(config: TrainConfig, out: str | os.PathLike | None = None, run_dir: str | os.PathLike | None = None) -> Path:
    """Make a new, empty run directory; `mkdir` without exist_ok means two launches never share one."""
    if run_dir is not None:
        path = Path(run_dir)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir()
        except FileExistsError:
            raise FerError(f"run directory already exists: {path} (use --resume to continue a run)") from None
        except OSError as exc:
            raise FerError(f"cannot create the run directory {path}: {exc.strerror}") from None
        return path
    root = Path(out) if out is not None else runs_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FerError(f"cannot create the output folder {root}: {exc.strerror}") from None
    if not os.access(root, os.W_OK):
        raise FerError(f"the output folder is not writable: {root}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        path = root / (f"{stamp}-{config.model}" + (f"-{attempt}" if attempt else ""))
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise FerError(f"cannot create a run directory in {root}: {exc.strerror}") from None
    raise FerError(f"cannot create a unique run directory in {root}")


def write_progress(run_dir: Path, **fields) -> None:
    """Merge `fields` into progress.json, atomically."""
    path = Path(run_dir) / "progress.json"
    progress = read_json(path, {}) or {}
    progress.update(fields)
    progress["updated_at"] = _now()
    write_json_atomic(path, progress)


def read_history(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [{k: float(v) if k != "epoch" else int(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def _write_history(run_dir: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text_atomic(Path(run_dir) / "history.csv", buffer.getvalue())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---- data ------------------------------------------------------------------------------------


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


def class_weight_map(labels: np.ndarray, how: str) -> dict[int, float] | None:
    """'balanced': n / (k * count_c) for the classes present, as in scikit-learn."""
    if how == "none":
        return None
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    present = counts > 0
    return {c: float(len(labels) / (present.sum() * counts[c])) if counts[c] else 0.0 for c in range(NUM_CLASSES)}


# ---- model -----------------------------------------------------------------------------------


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

    model = build_model(config.model, **config.model_params)
    if config.init_from:
        _load_init_weights(model, config)
    augment = []
    if config.flip:
        augment.append(layers.RandomFlip("horizontal", seed=config.seed, name="aug_flip"))
    if config.rotation_degrees:
        augment.append(layers.RandomRotation(config.rotation_degrees / 360.0, fill_mode="reflect", seed=config.seed + 1, name="aug_rotation"))
    if config.zoom:
        augment.append(layers.RandomZoom(config.zoom, fill_mode="reflect", seed=config.seed + 2, name="aug_zoom"))
    if config.shift:
        augment.append(layers.RandomTranslation(config.shift, config.shift, fill_mode="reflect", seed=config.seed + 3, name="aug_shift"))
    if config.erasing:
        augment.append(layers.RandomErasing(factor=config.erasing, value_range=(0, 255), seed=config.seed + 4, name="aug_erasing"))
    inputs = keras.Input(shape=model.inputs[0].shape[1:], name="pixels")
    x = inputs
    for layer in augment:
        x = layer(x)
    training_model = keras.Model(inputs, model(x), name=f"train_{config.model}")
    training_model.compile(
        optimizer=_optimizer(config),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    compile_whole_step(training_model)
    return training_model, model


def describe_init(spec: str, model_name: str) -> dict:
    """Resolve a warm-start source (a trained name, a run folder or a .keras file) for `model_name`
    into what config.json records: its path, and where known its reported metrics and the epochs
    and minutes behind it (cumulative over its own warm starts), so a shipped model's full
    training stays known.

    Raises:
        FerError: not found, or a model of another registry family.
    """
    from fer_core.artifacts import resolve_model

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
        "epochs": len(history) + int(earlier.get("epochs", 0) or 0),
        "minutes": round(sum(r.get("seconds", 0.0) for r in history) / 60.0 + float(earlier.get("minutes", 0.0) or 0.0), 2),
    }


def _load_init_weights(model, config: TrainConfig) -> None:
    """Copy the warm-start model's weights into the freshly built `model` (same family and shapes)."""
    from fer_core.artifacts import load_model

    source = load_model(config.init_from["path"])
    if source.name != model.name:
        raise FerError(f"cannot warm-start {model.name} from {config.init_from['path']}: it is a {source.name} model")
    theirs, ours = source.get_weights(), model.get_weights()
    if len(theirs) != len(ours) or any(a.shape != b.shape for a, b in zip(theirs, ours)):
        raise FerError(f"cannot warm-start {model.name} from {config.init_from['path']}: its layers have other shapes "
                       "(different model parameters)")
    # Weights keep the new model's dtypes (a float16-stored source is cast to the training precision).
    model.set_weights([w.astype(o.dtype) for w, o in zip(theirs, ours)])


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


def _optimizer(config: TrainConfig):
    from fer_core.backend import load_keras

    keras = load_keras()

    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=config.learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        # Nesterov momentum, as in Khaireddin & Chen's FER2013 VGGNet recipe; weight decay applied
        # by Keras as a decoupled shrink of the weights each step.
        return keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=0.9, nesterov=True,
                                    weight_decay=config.weight_decay or None)
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


def learning_rate_at(config: TrainConfig, epoch: int, elapsed_seconds: float = 0.0) -> float:
    """The learning rate for a 0-based epoch: linear warm-up over `warmup_epochs`, then constant,
    cosine or linear decay to zero over the schedule (`schedule_fraction`)."""
    if config.warmup_epochs and epoch < config.warmup_epochs:
        return config.learning_rate * (epoch + 1) / config.warmup_epochs
    t = schedule_fraction(config, epoch, elapsed_seconds)
    if config.lr_schedule == "cosine":
        return config.learning_rate * 0.5 * (1 + math.cos(math.pi * t))
    if config.lr_schedule == "linear":
        return config.learning_rate * (1.0 - t)
    return config.learning_rate


def has_gpu() -> bool:
    """Whether the active Keras backend sees a GPU."""
    from fer_core.backend import load_keras

    backend = load_keras().backend.backend()
    try:
        if backend == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # a backend that cannot list devices has none we can use
        return False
    return False


def resolve_precision(precision: str, flags: set[str] | None = None, gpu: bool | None = None) -> str:
    """'auto' → mixed_bfloat16 on a GPU or a CPU with native bf16 (avx512_bf16 / amx_bf16), else
    float32. Measured on 2-core CPUs with TensorFlow: bf16 roughly doubles training speed where
    the CPU has bf16 instructions and is ~5x slower where it has only AVX2."""
    if precision != "auto":
        return precision
    if flags is None:
        from fer_core.backend import cpu_flags

        flags = cpu_flags()
    if gpu is None:
        gpu = has_gpu()
    return "mixed_bfloat16" if gpu or {"avx512_bf16", "amx_bf16"} & flags else "float32"


# ---- the run ---------------------------------------------------------------------------------


class _StopRequest:
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


def _make_callback(run_dir: Path, config: TrainConfig, model, state: dict, stop: _StopRequest, batches: int, log: logging.Logger):
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

        def set_rate(self, epoch) -> None:
            rate = learning_rate_at(config, epoch, self.elapsed())
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
            if config.minutes:  # a time-based schedule moves within the epoch
                self.set_rate(self.epoch)

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
                per_batch = elapsed / (batch + 1)
                epochs_left = config.epochs - (state["epoch"] + 1)
                eta = per_batch * (batches - batch - 1) + epochs_left * per_batch * batches * 1.1
                extra = {}
                if config.minutes:
                    left = max(0.0, config.minutes * 60.0 - self.elapsed())
                    eta = min(eta, left)
                    extra["minutes_left"] = round(left / 60.0, 2)
                write_progress(
                    run_dir,
                    batch=batch + 1,
                    batch_metrics={k: float(v) for k, v in (logs or {}).items()},
                    images_per_second=(batch + 1) * config.batch_size / max(elapsed, 1e-9),
                    eta_seconds=round(eta, 1),
                    learning_rate=self.rate,
                    **extra,
                )

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            seconds = time.monotonic() - self.epoch_start
            row = {"epoch": epoch + 1, "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
                   "val_loss": logs.get("val_loss"), "val_accuracy": logs.get("val_accuracy"),
                   "learning_rate": self.rate, "seconds": round(seconds, 2)}
            state["history"].append(row)
            improved = row["val_accuracy"] is not None and row["val_accuracy"] > state["best_val_accuracy"]
            if improved:
                state["best_val_accuracy"] = row["val_accuracy"]
                state["best_epoch"] = epoch + 1
            if row["val_loss"] is not None and row["val_loss"] < state["best_val_loss"]:
                state["best_val_loss"], state["wait"] = row["val_loss"], 0
            else:
                state["wait"] += 1
            state["epoch"] = epoch + 1
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
            save_model_atomic(self.model, run_dir / "checkpoint.keras")
            _write_history(run_dir, state["history"])
            write_json_atomic(run_dir / "state.json", {k: v for k, v in state.items() if k != "history"})
            log.info(
                "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.2g  %.0fs%s",
                epoch + 1, config.epochs, row["loss"] or float("nan"), row["accuracy"] or float("nan"),
                row["val_loss"] or float("nan"), row["val_accuracy"] or float("nan"), self.rate, seconds,
                "  *best*" if improved else "",
            )
            write_progress(run_dir, epoch=epoch + 1, batch=batches, epoch_metrics=row,
                           best_val_accuracy=state["best_val_accuracy"], best_epoch=state["best_epoch"],
                           minutes_spent=round(state["seconds"] / 60.0, 2))

    return RunCallback()


def _run_logger(run_dir: Path, echo: bool) -> logging.Logger:
    log = logging.getLogger(f"fer_core.run.{run_dir.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers.clear()
    file_handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
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
    config.validate()
    config = dataclasses.replace(config, precision=resolve_precision(config.precision))
    if dataset is None:
        if not config.data:
            raise FerError("no dataset given (--data PATH)")
        dataset = load_dataset(config.data)
    data = prepare_data(config, dataset)
    path = create_run_dir(config, out=out, run_dir=run_dir)
    write_json_atomic(path / "config.json", config.to_dict())
    state = {"epoch": 0, "best_val_accuracy": -1.0, "best_epoch": 0, "best_val_loss": float("inf"),
             "wait": 0, "history": [], "stopped": False, "early_stopped": False, "seconds": 0.0,
             "stop_reason": None}
    return _fit(path, config, dataset, data, state, training_model=None, echo=echo)


def resume(run_dir: str | os.PathLike, dataset: Dataset | None = None, echo: bool = True) -> Path:
    """Continue an interrupted or stopped run from its last completed epoch."""
    path = Path(run_dir)
    config_data = read_json(path / "config.json")
    if config_data is None:
        raise FerError(f"{path}: not a run directory (no readable config.json)")
    config = TrainConfig.from_dict(config_data)
    config.validate()
    config = dataclasses.replace(config, precision=resolve_precision(config.precision))
    state = read_json(path / "state.json")
    progress = read_json(path / "progress.json", {}) or {}
    if progress.get("status") == "running" and pid_alive(progress.get("pid")) and progress.get("host") == socket.gethostname():
        raise FerError(f"{path}: the run is still running (pid {progress['pid']})")
    if state is None or not (path / "checkpoint.keras").is_file():
        raise FerError(f"{path}: no completed epoch to resume from; start a new run instead")
    all_epochs_done = (state.get("stop_reason") in ("epochs", "budget", "early_stop")
                       or state["epoch"] >= config.epochs or state.get("early_stopped"))
    if all_epochs_done and progress.get("status") in ("finished", "stopped", "failed"):
        raise FerError(f"{path}: the run already finished ({state['epoch']} epochs); nothing to resume")
    if all_epochs_done:  # killed after its last epoch, before its wrap-up: do only the wrap-up
        state["history"] = read_history(path)[: state["epoch"]]
        state["stopped"] = False
        if dataset is None:
            dataset = load_dataset(config.data)
        return _finish(path, config, dataset, prepare_data(config, dataset), state, _run_logger(path, echo))
    (path / STOP_FILE).unlink(missing_ok=True)
    state["history"] = read_history(path)[: state["epoch"]]
    state["stopped"] = False
    state["stop_reason"] = None
    if dataset is None:
        dataset = load_dataset(config.data)
    data = prepare_data(config, dataset)

    from fer_core.backend import load_keras

    keras = load_keras()

    import fer_core.models  # noqa: F401  registers custom layers

    try:
        with precision_policy(config.precision):
            training_model = keras.saving.load_model(str(path / "checkpoint.keras"), safe_mode=True)
    except Exception as exc:
        raise FerError(f"{path}: the checkpoint cannot be loaded ({str(exc).splitlines()[0][:160]})") from None
    compile_whole_step(training_model)
    return _fit(path, config, dataset, data, state, training_model=training_model, echo=echo)


def _fit(path: Path, config: TrainConfig, dataset: Dataset, data: TrainingData, state: dict, training_model,
         echo: bool) -> Path:
    from fer_core.backend import environment, load_keras

    keras = load_keras()

    log = _run_logger(path, echo)
    (path / STOP_FILE).unlink(missing_ok=True)
    # A process killed mid-write leaves its temp file (never the target) behind; sweep those.
    for leftover in path.glob(".*.tmp*"):
        leftover.unlink(missing_ok=True)
    stop = _StopRequest(path)
    stop.install()
    write_progress(path, status="starting", pid=os.getpid(), host=socket.gethostname(), epochs=config.epochs,
                   epoch=state["epoch"], started_at=_now(), error=None, backend=keras.backend.backend(),
                   train_images=int(len(data.y_train)), val_images=int(len(data.y_val)), val_split=data.val_split,
                   environment=environment())
    log.info("run %s: %s on %d training / %d validation (%s) images, backend %s",
             path, config.model, len(data.y_train), len(data.y_val), data.val_split, keras.backend.backend())
    try:
        keras.utils.set_random_seed(config.seed + state["epoch"])
        if training_model is None:
            training_model, model = build_training_model(config)
        else:
            model = training_model.layers[-1]
        batches = math.ceil(len(data.y_train) / config.batch_size)
        callback = _make_callback(path, config, model, state, stop, batches, log)
        y_train = keras.utils.to_categorical(data.y_train, NUM_CLASSES)
        y_val = keras.utils.to_categorical(data.y_val, NUM_CLASSES)
        training_model.fit(
            data.x_train, y_train,
            validation_data=(data.x_val, y_val),
            batch_size=config.batch_size,
            epochs=config.epochs,
            initial_epoch=state["epoch"],
            class_weight=class_weight_map(data.y_train, config.class_weights),
            callbacks=[callback],
            shuffle=True,
            verbose=0,
        )
    except KeyboardInterrupt:
        state["stopped"] = True
    except Exception as exc:
        reason = _failure_reason(exc)
        log.error("run failed: %s", reason)
        _safe_progress(path, status="failed", error=reason)
        raise FerError(f"training failed: {reason} (run directory {path})") from None

    return _finish(path, config, dataset, data, state, log)


def _finish(path: Path, config: TrainConfig, dataset: Dataset, data: TrainingData, state: dict, log) -> Path:
    """The run's wrap-up after its last epoch: metrics.json on the reported split, final status."""
    status = "stopped" if state["stopped"] else "finished"
    if not state.get("stop_reason") and not state["stopped"]:
        state["stop_reason"] = "epochs"
    if (path / "model.keras").is_file():
        try:
            _write_reported_metrics(path, config, dataset, data)
        except Exception as exc:  # metrics are reproducible later with `fer-core evaluate`
            log.error("evaluating the best model failed: %s", _failure_reason(exc))
    _safe_progress(path, status=status, stop_reason=state.get("stop_reason"), finished_at=_now(),
                   best_val_accuracy=state["best_val_accuracy"], best_epoch=state["best_epoch"],
                   minutes_spent=round(state.get("seconds", 0.0) / 60.0, 2))
    log.info("run %s: %s (%s) after %d epochs, %.1f min; best val_accuracy %.4f at epoch %d",
             path, status, state.get("stop_reason"), state["epoch"], state.get("seconds", 0.0) / 60.0,
             state["best_val_accuracy"], state["best_epoch"])
    return path


def write_reported_metrics(folder: str | os.PathLike, dataset: Dataset | None = None, name: str | None = None) -> dict:
    """(Re)write metrics.json of a folder holding model.keras and config.json (a run, or a model
    being promoted) from the model file as it is now, so shipped numbers are the stored file's.

    Raises:
        FerError: the training data named in config.json cannot be loaded.
    """
    path = Path(folder)
    config = TrainConfig.from_dict(read_json(path / "config.json"))
    if dataset is None:
        if not config.data or not Path(config.data).exists():
            raise FerError(f"cannot measure {name or path.name}: its dataset {config.data or '(none)'} is not here")
        dataset = load_dataset(config.data)
    return _write_reported_metrics(path, config, dataset, prepare_data(config, dataset), name=name)


def _write_reported_metrics(path: Path, config: TrainConfig, dataset: Dataset, data: TrainingData,
                            name: str | None = None) -> dict:
    """metrics.json: the best model on the reported split (never the one that selected it),
    without and with flip TTA; where the data has no other split it says so."""
    from fer_core.artifacts import load_model
    from fer_core.data import default_evaluation_split
    from fer_core.evaluation import evaluate

    model = load_model(path / "model.keras")
    dataset = dataset.head(config.limit)
    split = default_evaluation_split(dataset)
    honest = split is not None and split != data.val_split
    if honest:
        plain = evaluate([model], dataset, split=split, names=[name or path.name])
        flipped = evaluate([model], dataset, split=split, tta=True, names=[name or path.name])
        metrics = plain.metrics
        metrics["with_tta"] = {k: flipped.metrics[k] for k in ("accuracy", "macro_f1", "loss")}
    else:  # only a Training split: the selection slice is all there is to measure
        from fer_core.evaluation import compute_metrics, predict_probabilities

        metrics = compute_metrics(data.y_val, predict_probabilities(model, data.x_val))
        metrics.update(split=data.val_split, tta=False, models=[name or path.name])
    metrics["selection_split"] = data.val_split
    metrics["reported_on_selection_split"] = not honest
    write_json_atomic(path / "metrics.json", metrics)
    return metrics


def _safe_progress(path: Path, **fields) -> None:
    try:
        write_progress(path, **fields)
    except OSError:
        pass  # e.g. the disk is full: the reader will see the process gone and call it failed


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == 28:
        return "the disk is full"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def pid_alive(pid) -> bool:
    """Whether a process with this pid exists on this machine."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["TrainConfig", "train", "resume", "describe_init", "resolve_precision", "selection_split_name", "runs_dir", "read_history", "write_progress", "learning_rate_at"]
