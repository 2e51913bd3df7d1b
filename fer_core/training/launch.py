"""Launching a training run or a cross-validation in its own process, one at a time per runs folder (the Train page)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

from fer_core.backend import resolve_precision
from fer_core.errors import FerError
from fer_core.fileio import write_json_atomic
from fer_core.paths import runs_dir
from fer_core.rundir import CONFIG_FILE, CONSOLE_FILE, create_run_dir, write_progress
from fer_core.training.config import TrainConfig
from fer_core.training.devices import describe_training_devices, resolve_devices, training_environment
from fer_core.training.runs import LAUNCH_LOCK, active_run, launched_process_alive


def launch(config: TrainConfig, root: str | os.PathLike | None = None) -> Path:
    """Start training `config` in its own process and session, so that no dashboard rerun, closed
    tab or server restart kills it. One training at a time per runs folder.

    The run directory and its config.json are written here, once, with the precision and devices resolved;
    the child (`fer-core train --start RUN_DIR`) reads them and is from then on the only writer.
    What it prints goes to the run's console.log.

    Returns:
        The run directory (progress.json appears once the child has loaded the data).

    Raises:
        FerError: missing data, a training already in progress, or a folder that cannot be written.
    """
    _check_data(config)

    def prepare(base: Path) -> tuple[Path, list[str]]:
        resolved = _resolved(config)
        path = create_run_dir(resolved.model, out=base)
        write_json_atomic(path / CONFIG_FILE, resolved.to_dict())
        return path, ["train", "--start", str(path), "--quiet"]

    return _launch(root, prepare)


def launch_resume(run_dir: str | os.PathLike) -> Path:
    """Go on with a stopped or interrupted run from its last completed epoch (`fer-core train
    --resume RUN_DIR`) in its own process, as `launch` does; one training at a time per runs folder.

    Raises:
        FerError: the run is running, finished, or has no completed epoch to go on from.
    """
    from fer_core.training.loop import resumable_state
    from fer_core.training.reporting import read_config

    path = Path(run_dir)

    def prepare(base: Path) -> tuple[Path, list[str]]:
        resumable_state(path, read_config(path))  # refused in one line before a process starts
        # "starting" with no process of its own yet: the run reads as launched (not as the
        # stopped run it was) until the child writes its pid.
        write_progress(path, status="starting", pid=None, error=None)
        return path, ["train", "--resume", str(path), "--quiet"]

    return _launch(path.parent, prepare)


def launch_crossval(
    config: TrainConfig,
    folds: int,
    group_by: str | None = None,
    root: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
) -> Path:
    """Start a cross-validation (`fer-core crossval --resume DIR` on a folder holding only its
    settings), or go on with a stopped one (`resume`: its folder), in its own process as `launch`
    does; one training at a time per runs folder.

    Raises:
        FerError: missing data, folds that cannot be made, a training already in progress.
    """
    from fer_core.training.crossval import crossval_folder, write_crossval_settings
    from fer_core.training.crossval_runs import resume_settings

    if resume is None:
        _check_data(config)

    def prepare(base: Path) -> tuple[Path, list[str]]:
        if resume is not None:
            path = Path(resume)
            resume_settings(path)  # refuses a finished or foreign folder before a process starts
        else:
            resolved = _resolved(config)
            path = crossval_folder(resolved.model, base)
            write_crossval_settings(path, resolved, folds, group_by)
        (path / CONSOLE_FILE).unlink(missing_ok=True)
        return path, ["crossval", "--resume", str(path)]

    return _launch(root, prepare)


def _check_data(config: TrainConfig) -> None:
    if not config.data or not Path(config.data).exists():
        raise FerError(f"dataset path does not exist: {config.data or '(none)'}")


def _resolved(config: TrainConfig) -> TrainConfig:
    """The precision and devices resolved for the process that trains, whose backend may not be
    this one's (FER_TRAIN_BACKEND)."""
    found = describe_training_devices()
    config = dataclasses.replace(config, precision=resolve_precision(config.precision, gpu=found["kind"] != "cpu"))
    return resolve_devices(config, found=found)


def _launch(root, prepare) -> Path:
    """Under the launch lock, with no training running: `prepare(runs folder)` gives the folder
    and the fer-core arguments; the child starts with its output in the folder's console.log."""
    base = Path(root) if root is not None else runs_dir()
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FerError(f"cannot create the runs folder {base}: {exc.strerror}") from None
    lock = _take_launch_lock(base)
    try:
        running = active_run(base)
        if running is not None:
            raise FerError(f"a training run is already in progress: {running.name} (stop it first)")
        path, arguments = prepare(base)
        with open(path / CONSOLE_FILE, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "fer_core", *arguments],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=training_environment(),
            )
        os.write(lock, f"{process.pid}\n{path.name}\n".encode())
    except BaseException:
        os.close(lock)
        (base / LAUNCH_LOCK).unlink(missing_ok=True)
        raise
    os.close(lock)
    return path


def _take_launch_lock(base: Path) -> int:
    """An exclusive lock file; a lock whose training process has ended is stale and replaced."""
    path = base / LAUNCH_LOCK
    for _attempt in range(2):
        try:
            return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if launched_process_alive(base):
                raise FerError(
                    "a training run is already in progress (launched from the dashboard); stop it first"
                ) from None
            try:
                age = time.time() - path.stat().st_mtime
            except OSError:
                age = 0.0
            if path.read_text().strip() == "" and age < 10:
                raise FerError("another launch is starting right now; try again in a moment") from None
            path.unlink(missing_ok=True)
    raise FerError("cannot take the launch lock; try again")
