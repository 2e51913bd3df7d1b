"""Launching a training run in its own process, one at a time per runs folder (the Train page)."""

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
from fer_core.rundir import CONFIG_FILE, CONSOLE_FILE, create_run_dir
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
    if not config.data or not Path(config.data).exists():
        raise FerError(f"dataset path does not exist: {config.data or '(none)'}")
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
        # Resolved for the process that trains, whose backend may not be this one's (FER_TRAIN_BACKEND).
        found = describe_training_devices()
        config = dataclasses.replace(config, precision=resolve_precision(config.precision, gpu=found["kind"] != "cpu"))
        config = resolve_devices(config, found=found)
        path = create_run_dir(config.model, out=base)
        write_json_atomic(path / CONFIG_FILE, config.to_dict())
        with open(path / CONSOLE_FILE, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "fer_core", "train", "--start", str(path), "--quiet"],
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
