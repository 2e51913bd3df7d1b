"""The Keras callback that turns `model.fit` into a run: progress, history, the best model and
the resumable checkpoint, the learning-rate schedule, the time budget, early stopping and stop
requests. It updates a `RunState`; the loop (`fer_core.training.loop`) owns everything else.

Importing this module loads Keras (the class derives from Keras' callback): the loop imports
it when it fits, after the run's configuration has been checked without Keras."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fer_core.backend import load_keras
from fer_core.fileio import save_model_atomic, write_json_atomic
from fer_core.rundir import CHECKPOINT_FILE, STATE_FILE, write_history, write_progress
from fer_core.training.config import TrainConfig
from fer_core.training.recipe import learning_rate_at
from fer_core.training.state import RunState
from fer_core.training.stop_request import StopRequest

keras = load_keras()

PROGRESS_INTERVAL_S = 1.0  # how often progress.json is rewritten during an epoch


class RunCallback(keras.callbacks.Callback):
    """One fit of `model` (the inference model inside the training model: what model.keras
    keeps) in `run_dir`, `batches` training batches an epoch."""

    def __init__(
        self,
        run_dir: Path,
        config: TrainConfig,
        model,
        state: RunState,
        stop: StopRequest,
        batches: int,
        log: logging.Logger,
    ):
        super().__init__()
        self.run_dir, self.config, self.saved_model = run_dir, config, model
        self.state, self.stop, self.batches, self.log = state, stop, batches, log

    def on_train_begin(self, logs=None):
        self.fit_start = time.monotonic()
        self.seconds_before = float(self.state.seconds)  # spent before a resume

    def elapsed(self) -> float:
        return self.seconds_before + time.monotonic() - self.fit_start

    def set_rate(self, epoch, batch: int = 0) -> None:
        rate = learning_rate_at(self.config, epoch, self.elapsed(), epoch_fraction=(batch + 1) / max(1, self.batches))
        if rate != getattr(self, "rate", None):
            self.model.optimizer.learning_rate.assign(rate)
            self.rate = rate

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.cut_short = None  # the batch a stop request ended this epoch at, if it did
        self.epoch_start = time.monotonic()
        self.last_write = 0.0
        self.set_rate(epoch)
        write_progress(self.run_dir, status="running", epoch=epoch + 1, batch=0, batches=self.batches)

    def on_train_batch_begin(self, batch, logs=None):
        # A time-based schedule moves within the epoch, and so does the warm-up.
        if self.config.minutes or self.epoch < self.config.warmup_epochs:
            self.set_rate(self.epoch, batch)

    def on_train_batch_end(self, batch, logs=None):
        if self.stop():
            self.model.stop_training = True
            self.state.stopped, self.state.stop_reason = True, "stop_request"
            if batch + 1 < self.batches:
                self.cut_short = batch + 1
        elif self.config.minutes and self.elapsed() >= self.config.minutes * 60.0:
            self.model.stop_training = True
            self.state.stop_reason = "budget"
        now = time.monotonic()
        if now - self.last_write >= PROGRESS_INTERVAL_S or batch + 1 == self.batches:
            self.last_write = now
            self.write_batch_progress(batch, logs, elapsed=now - self.epoch_start)

    def on_test_batch_end(self, batch, logs=None):
        # Keras validates even an epoch a stop request ended early: cut that short as well
        # (`stop_evaluating`), and a validation a stop request arrives in.
        if self.cut_short is None and self.stop():
            self.model.stop_training = True
            self.state.stopped, self.state.stop_reason = True, "stop_request"
            self.cut_short = self.batches
        if self.cut_short is not None:
            self.model.stop_evaluating = True

    def write_batch_progress(self, batch, logs, elapsed: float) -> None:
        # Time left from finished epochs only (validation included): the first self.batches of a
        # run compile the graph and are many times slower than the rest.
        recent = [row["seconds"] for row in self.state.history[-3:] if row.get("seconds")]
        eta = None
        if recent:
            per_epoch = sum(recent) / len(recent)
            epochs_left = self.config.epochs - (self.state.epoch + 1)
            eta = per_epoch * (1 - (batch + 1) / self.batches) + epochs_left * per_epoch
        extra = {}
        if self.config.minutes:
            left = max(0.0, self.config.minutes * 60.0 - self.elapsed())
            eta = left if eta is None else min(eta, left)
            extra["minutes_left"] = round(left / 60.0, 2)
        write_progress(
            self.run_dir,
            batch=batch + 1,
            batch_metrics={k: float(v) for k, v in (logs or {}).items()},
            images_per_second=(batch + 1) * self.config.batch_size / max(elapsed, 1e-9),
            eta_seconds=None if eta is None else round(eta, 1),
            learning_rate=self.rate,
            **extra,
        )

    def on_epoch_end(self, epoch, logs=None):
        if self.cut_short is not None:
            # Stopped mid-epoch: that epoch is not kept (its validation is partial); the
            # best model and the checkpoint stay those of the last whole epoch, and a resume
            # trains this epoch again.
            self.log.info(
                "stopped at batch %d/%d of epoch %d; kept: epoch %d's checkpoint and the best model (epoch %d)",
                min(self.cut_short, self.batches),
                self.batches,
                epoch + 1,
                self.state.epoch,
                self.state.best_epoch,
            )
            write_progress(self.run_dir, epoch=epoch + 1, batch=min(self.cut_short, self.batches))
            return
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
        improved = self.state.record_epoch(row)
        self.state.seconds = round(self.elapsed(), 2)
        if self.config.patience and self.state.wait >= self.config.patience and not self.state.stop_reason:
            self.log.info("early stopping: validation loss has not improved for %d epochs", self.config.patience)
            self.state.early_stopped, self.state.stop_reason = True, "early_stop"
            self.model.stop_training = True
        if self.state.epoch >= self.config.epochs and not self.state.stop_reason:
            self.state.stop_reason = "epochs"
        # Order matters for a kill at any moment: the models first, then the history row (so
        # a finished epoch in history.csv always has its model), then state.json (so resume
        # never points past what is saved; it truncates history to state's epoch).
        if improved:
            save_model_atomic(self.saved_model, self.run_dir / "model.keras")
        save_model_atomic(self.model, self.run_dir / CHECKPOINT_FILE)
        write_history(self.run_dir, self.state.history)
        write_json_atomic(self.run_dir / STATE_FILE, self.state.saved())
        self.log.info(
            "epoch %d/%d  loss %.4f  acc %.4f  val_loss %.4f  val_acc %.4f  lr %.2g  %.0fs%s",
            epoch + 1,
            self.config.epochs,
            row["loss"] or float("nan"),
            row["accuracy"] or float("nan"),
            row["val_loss"] or float("nan"),
            row["val_accuracy"] or float("nan"),
            self.rate,
            seconds,
            "  *best*" if improved else "",
        )
        write_progress(
            self.run_dir,
            epoch=epoch + 1,
            batch=self.batches,
            epoch_metrics=row,
            best_val_accuracy=self.state.best_val_accuracy,
            best_epoch=self.state.best_epoch,
            minutes_spent=round(self.state.seconds / 60.0, 2),
        )
