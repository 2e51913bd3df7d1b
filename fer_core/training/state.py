"""A run's bookkeeping between epochs: what the callback updates and state.json keeps for resume."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

STOP_REASONS = ("epochs", "budget", "early_stop", "stop_request")


@dataclass
class RunState:
    epoch: int = 0  # epochs completed
    best_val_accuracy: float = -1.0
    best_epoch: int = 0
    best_val_loss: float = float("inf")
    wait: int = 0  # epochs since the validation loss last improved (early stopping)
    stopped: bool = False  # by a stop request or a signal
    early_stopped: bool = False
    seconds: float = 0.0  # training time over every resume
    stop_reason: str | None = None  # one of STOP_REASONS once decided
    history: list[dict] = field(default_factory=list)  # one row per completed epoch (history.csv)

    def record_epoch(self, row: dict) -> bool:
        """Add a finished epoch's history row; True when it is the best so far."""
        self.history.append(row)
        accuracy, loss = row.get("val_accuracy"), row.get("val_loss")  # a row read back may lack them
        improved = accuracy is not None and accuracy > self.best_val_accuracy
        if improved:
            self.best_val_accuracy, self.best_epoch = accuracy, row["epoch"]
        if loss is not None and loss < self.best_val_loss:
            self.best_val_loss, self.wait = loss, 0
        else:
            self.wait += 1
        self.epoch = row["epoch"]
        return improved

    def all_epochs_done(self, epochs: int) -> bool:
        return self.stop_reason in ("epochs", "budget", "early_stop") or self.epoch >= epochs or self.early_stopped

    def saved(self) -> dict:
        """What state.json holds: everything but the history, which history.csv keeps."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "history"}

    @classmethod
    def from_saved(cls, saved: dict, history: list[dict]) -> "RunState":
        """The state of state.json, with history.csv's rows up to its epoch (a run killed between
        writing the two has one row more, which resume drops and trains again)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"history"}
        state = cls(**{k: v for k, v in saved.items() if k in known})
        state.history = list(history[: state.epoch])
        return state

    @classmethod
    def from_history(cls, history: list[dict]) -> "RunState":
        """The state of a run killed after its first epoch's history row but before its first
        state.json (the epoch's models are saved before its row): replayed from the rows."""
        state = cls()
        for row in history:
            state.record_epoch(row)
        state.seconds = round(sum(float(row.get("seconds") or 0.0) for row in history), 2)
        return state
