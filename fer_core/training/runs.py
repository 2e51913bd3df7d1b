"""Reading and stopping runs. Only the training process writes a run directory; everything here
reads it, except `request_stop` (drops a STOP file). Promotion is `promote`'s, launching `launch`'s."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from fer_core.artifacts import MODEL_FILE, ModelRef, saved_models
from fer_core.errors import FerError
from fer_core.fileio import read_json
from fer_core.paths import runs_dir
from fer_core.rundir import (
    CONFIG_FILE,
    CONSOLE_FILE,
    STOP_FILE,
    log_tail,
    pid_alive,
    read_progress,
)

ACTIVE = ("starting", "running", "stopping")
LAUNCH_LOCK = ".launch.lock"  # the pid of the training process the dashboard started, then its run's name
ENDED = ("finished", "stopped", "failed")  # a training process's last word in its progress.json


@dataclass
class RunInfo:
    path: Path
    status: str  # starting, running, stopping, finished, stopped, failed, interrupted, unknown
    model: str
    epoch: int
    epochs: int
    best_val_accuracy: float | None
    progress: dict
    config: dict

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def read_run(run_dir: str | os.PathLike) -> RunInfo:
    """The run's state; a run whose process is gone while it says "running" is "interrupted"."""
    path = Path(run_dir)
    if not path.is_dir():
        raise FerError(f"no such run directory: {path}")
    progress = read_progress(path)
    config = read_json(path / CONFIG_FILE, {}) or {}
    status = progress.get("status", "unknown")
    # Launched, the child not begun yet: a new run has no progress, a resumed one says "starting"
    # without a pid of its own.
    launching = (not progress or (status == "starting" and not progress.get("pid"))) and (path / CONSOLE_FILE).exists()
    if launching:
        if launched_process_alive(path.parent):
            status = "starting"  # its pid is the launch lock's, checked just now
        else:
            output = launch_output(path).strip()
            status = "failed"
            error = output.splitlines()[-1] if output else "the training process ended before it began"
            progress = {**progress, "error": error}
    elif status in ACTIVE and progress.get("host", socket.gethostname()) == socket.gethostname():
        if not pid_alive(progress.get("pid")):
            status = "interrupted"
        elif (path / STOP_FILE).exists():
            status = "stopping"  # asked to stop; the process ends its batch and exits
    best = progress.get("best_val_accuracy")
    return RunInfo(
        path=path,
        status=status,
        model=config.get("model", "?"),
        epoch=int(progress.get("epoch", 0) or 0),
        epochs=int(progress.get("epochs", config.get("epochs", 0)) or 0),
        best_val_accuracy=best if isinstance(best, (int, float)) and best >= 0 else None,
        progress=progress,
        config=config,
    )


def list_runs(root: str | os.PathLike | None = None) -> list[RunInfo]:
    """Runs under `root` (default runs/), newest first."""
    base = Path(root) if root is not None else runs_dir()
    if not base.is_dir():
        return []
    runs = [read_run(p) for p in base.iterdir() if p.is_dir() and (p / CONFIG_FILE).is_file()]
    return sorted(runs, key=lambda r: r.path.name, reverse=True)


def models_and_runs() -> list[ModelRef]:
    """Every model a user can pick: the trained ones by name, then each finished run's best
    model as "run <run name>", newest first, and each finished cross-validation's fold models as
    "run <crossval>/fold-K" (each measured on its own fold there). (Here, not in artifacts: the
    saved-model store sits below the runs and never reads them.)"""
    from fer_core.training.crossval import CROSSVAL_FILE

    runs = [(run, f"run {run.name}") for run in list_runs()]
    for summary in sorted(runs_dir().glob(f"*/{CROSSVAL_FILE}"), reverse=True):
        folder = summary.parent
        runs += [(run, f"run {folder.name}/{run.name}") for run in sorted(list_runs(folder), key=lambda r: r.name)]
    refs = saved_models()
    refs += [
        ModelRef(name, run.path / MODEL_FILE, run.path)
        for run, name in runs
        if (run.path / MODEL_FILE).is_file() and not run.active
    ]
    return refs


def active_run(root: str | os.PathLike | None = None) -> RunInfo | None:
    """The run currently training under `root`, if any."""
    return next((r for r in list_runs(root) if r.active), None)


@dataclass(frozen=True)
class ProgressView:
    """How far a run is, as the Train page shows it: a fraction and one line of text."""

    fraction: float
    text: str


def progress_view(info: RunInfo) -> ProgressView:
    """A budgeted run is as far as its time; other runs as far as their epochs and batches.

    Time left is said only from a measured rate: the training process writes `eta_seconds` once
    an epoch has finished (the first batches include graph compilation, far slower than the rest),
    and nothing while it measures the best model at the end.
    """
    progress, budget = info.progress, info.config.get("minutes")
    epochs, epoch = max(info.epochs, 1), max(info.epoch, 1)
    batches, batch = max(int(progress.get("batches") or 1), 1), int(progress.get("batch") or 0)
    if info.status == "finished":
        fraction = 1.0
    elif budget:
        spent = budget - float(progress.get("minutes_left", budget))
        fraction = min(1.0, spent / budget)
    else:
        fraction = min(1.0, ((epoch - 1) + batch / batches) / epochs)
    text = f"epoch {epoch}/{epochs}, batch {batch}/{batches}"
    speed = f"{progress.get('images_per_second', 0):.0f} images/s"
    if info.active and progress.get("wrapping_up"):
        text = progress.get("phase") or "final evaluation"
    elif info.status == "stopping":
        text = f"stopping after batch {batch}/{batches} of epoch {epoch}"
    elif info.active and progress.get("phase"):  # work before the first batch (distillation targets)
        text = f"{progress['phase']} (before epoch {epoch})"
    elif info.active and progress.get("minutes_left") is not None:
        text += f", {progress['minutes_left']:.1f} of {budget:g} budgeted min left ({speed})"
    elif info.active and progress.get("eta_seconds") is not None:
        text += f", about {progress['eta_seconds'] / 60:.1f} min left ({speed})"
    elif info.active and info.status != "starting":
        text += ", estimating time left (after the first epoch)"
    if progress.get("stop_reason") and not info.active:
        text += f" (ended by: {progress['stop_reason'].replace('_', ' ')})"
    return ProgressView(max(0.0, fraction), text)


def run_log(info: RunInfo, lines: int = 15) -> str | None:
    """The end of the run's train.log, else of what its process printed, else None."""
    return log_tail(info.path, lines) or (launch_output(info.path).strip() or None)


def request_stop(run_dir: str | os.PathLike) -> None:
    """Ask a run to stop after its current batch (the training process polls for the file)."""
    info = read_run(run_dir)
    if not info.active:
        raise FerError(f"{info.path}: the run is not running (status {info.status})")
    (info.path / STOP_FILE).write_text("stop requested\n", encoding="utf-8")


def launch_output(run_dir: str | os.PathLike) -> str:
    """What a launched training process printed (an error before its first epoch, say)."""
    try:
        return (Path(run_dir) / CONSOLE_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def launched_process_alive(root: str | os.PathLike | None = None) -> bool:
    """Whether the training process the dashboard launched under `root` is still at work.

    A process whose run already says it ended counts as done even while it lives: it has written
    its last word and is only exiting (TensorFlow takes seconds to shut down), and a user who
    sees "finished" must be able to launch the next run.
    """
    base = Path(root) if root is not None else runs_dir()
    try:
        pid_text, _, run_name = (base / LAUNCH_LOCK).read_text().partition("\n")
        pid = int(pid_text.strip() or 0)
    except (OSError, ValueError):
        return False
    run_name = run_name.strip()
    if run_name and read_progress(base / run_name).get("status") in ENDED:
        return False
    return pid_alive(pid)
