"""The Keras callback that turns `model.fit` into a run: progress, history, the best model and
the resumable checkpoint, the learning-rate schedule, the time budget, early stopping and stop
requests. It updates a `RunState`; the loop (`fer_core.training.loop`) owns everything else."""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

from fer_core.fileio import save_model_atomic, write_json_atomic
from fer_core.rundir import CHECKPOINT_FILE, STATE_FILE, STOP_FILE, write_history, write_progress
from fer_core.training.config import TrainConfig
from fer_core.training.recipe import learning_rate_at
from fer_core.training.state import RunState

PROGRESS_INTERVAL_S = 1.0  # how often progress.json is rewritten during an epoch


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
    run_dir: Path, config: TrainConfig, model, state: RunState, stop: StopRequest, batches: int, log: logging.Logger
):
    """The callback for one fit of `model` (the inference model inside the training model:
    what model.keras keeps) in `run_dir`. Built here, not at import, because the base class is
    Keras', and importing this module must not load Keras."""
    from fer_core.backend import load_keras

    keras = load_keras()

    class RunCallback(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.fit_start = time.monotonic()
            self.seconds_before = float(state.seconds)  # spent before a resume

        def elapsed(self) -> float:
            return self.seconds_before + time.monotonic() - self.fit_start

        def set_rate(self, epoch, batch: int = 0) -> None:
            rate = learning_rate_at(config, epoch, self.elapsed(), epoch_fraction=(batch + 1) / max(1, batches))
            if rate != getattr(self, "rate", None):
                self.model.optimizer.learning_rate.assign(rate)
                self.rate = rate

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.cut_short = None  # the batch a stop request ended this epoch at, if it did
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
                state.stopped, state.stop_reason = True, "stop_request"
                if batch + 1 < batches:
                    self.cut_short = batch + 1
            elif config.minutes and self.elapsed() >= config.minutes * 60.0:
                self.model.stop_training = True
                state.stop_reason = "budget"
            now = time.monotonic()
            if now - self.last_write >= PROGRESS_INTERVAL_S or batch + 1 == batches:
                self.last_write = now
                self.write_batch_progress(batch, logs, elapsed=now - self.epoch_start)

        def on_test_batch_end(self, batch, logs=None):
            # Keras validates even an epoch a stop request ended early: cut that short as well
            # (`stop_evaluating`), and a validation a stop request arrives in.
            if self.cut_short is None and stop():
                self.model.stop_training = True
                state.stopped, state.stop_reason = True, "stop_request"
                self.cut_short = batches
            if self.cut_short is not None:
                self.model.stop_evaluating = True

        def write_batch_progress(self, batch, logs, elapsed: float) -> None:
            # Time left from finished epochs only (validation included): the first batches of a
            # run compile the graph and are many times slower than the rest.
            recent = [row["seconds"] for row in state.history[-3:] if row.get("seconds")]
            eta = None
            if recent:
                per_epoch = sum(recent) / len(recent)
                epochs_left = config.epochs - (state.epoch + 1)
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
            if self.cut_short is not None:
                # Stopped mid-epoch: that epoch is not kept (its validation is partial); the
                # best model and the checkpoint stay those of the last whole epoch, and a resume
                # trains this epoch again.
                log.info(
                    "stopped at batch %d/%d of epoch %d; kept: epoch %d's checkpoint and the best model (epoch %d)",
                    min(self.cut_short, batches),
                    batches,
                    epoch + 1,
                    state.epoch,
                    state.best_epoch,
                )
                write_progress(run_dir, epoch=epoch + 1, batch=min(self.cut_short, batches))
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
            improved = state.record_epoch(row)
            state.seconds = round(self.elapsed(), 2)
            if config.patience and state.wait >= config.patience and not state.stop_reason:
                log.info("early stopping: validation loss has not improved for %d epochs", config.patience)
                state.early_stopped, state.stop_reason = True, "early_stop"
                self.model.stop_training = True
            if state.epoch >= config.epochs and not state.stop_reason:
                state.stop_reason = "epochs"
            # Order matters for a kill at any moment: the models first, then the history row (so
            # a finished epoch in history.csv always has its model), then state.json (so resume
            # never points past what is saved; it truncates history to state's epoch).
            if improved:
                save_model_atomic(model, run_dir / "model.keras")
            save_model_atomic(self.model, run_dir / CHECKPOINT_FILE)
            write_history(run_dir, state.history)
            write_json_atomic(run_dir / STATE_FILE, state.saved())
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
                best_val_accuracy=state.best_val_accuracy,
                best_epoch=state.best_epoch,
                minutes_spent=round(state.seconds / 60.0, 2),
            )

    return RunCallback()
