"""Cross-validations as the Train and Evaluate pages and `fer-core stop` see them: the read side
(finished ones, one's progress fold by fold, the settings a resume goes on with) and the stop
request. Only the cross-validation's process writes its folder, but for the STOP file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fer_core.errors import FerError
from fer_core.fileio import read_json
from fer_core.training.config import TrainConfig
from fer_core.training.crossval import CROSSVAL_FILE, SETTINGS_FILE, finished_fold


def is_crossval(folder: str | os.PathLike) -> bool:
    """Its settings are written first (by the launch or by `crossval`), before any fold exists."""
    return (Path(folder) / SETTINGS_FILE).is_file()


def request_crossval_stop(folder: str | os.PathLike) -> None:
    """Stop a cross-validation: the running fold after its current batch, and no fold after it
    (a STOP file in the folder and in each unfinished fold's run).

    Raises:
        FerError: a finished cross-validation.
    """
    from fer_core.rundir import STOP_FILE

    folder = Path(folder)
    if read_crossval(folder) is not None:
        raise FerError(f"{folder}: the cross-validation has finished; nothing to stop")
    (folder / STOP_FILE).write_text("stop requested\n", encoding="utf-8")
    for run_dir in folder.glob("fold-*"):
        if run_dir.is_dir() and not finished_fold(run_dir):
            (run_dir / STOP_FILE).write_text("stop requested\n", encoding="utf-8")


def resume_settings(folder: str | os.PathLike) -> tuple[TrainConfig, int, str | None]:
    """(config, folds, group_by) of a cross-validation folder, for `fer-core crossval --resume`.

    Raises:
        FerError: not a cross-validation folder, or one already finished.
    """
    folder = Path(folder)
    saved = read_json(folder / SETTINGS_FILE, None)
    if not isinstance(saved, dict) or "folds" not in saved:
        raise FerError(f"{folder}: not a cross-validation folder (no {SETTINGS_FILE})")
    if read_crossval(folder) is not None:
        raise FerError(f"{folder}: the cross-validation finished already (crossval.json)")
    folds, group_by = int(saved.pop("folds")), saved.pop("group_by", None)
    return TrainConfig.from_dict(saved), folds, group_by


def list_crossvals(root: str | os.PathLike | None = None) -> list[tuple[Path, dict]]:
    """(folder, crossval.json) of every finished cross-validation in the runs folder, newest first."""
    from fer_core.paths import runs_dir

    base = Path(root) if root is not None else runs_dir()
    found = [(file.parent, read_crossval(file.parent)) for file in base.glob(f"*/{CROSSVAL_FILE}")]
    return sorted(((f, d) for f, d in found if d), key=lambda item: item[0].stat().st_mtime, reverse=True)


def read_crossval(folder: str | os.PathLike) -> dict | None:
    """A crossval folder's crossval.json, or None."""
    data = read_json(Path(folder) / CROSSVAL_FILE, None)
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class CrossvalProgress:
    """Where a cross-validation stands: its status (running, stopping, stopped, failed, finished),
    the folds finished of all, and one line of text for the page."""

    status: str
    finished: int
    folds: int
    text: str

    @property
    def fraction(self) -> float:
        return self.finished / self.folds if self.folds else 0.0


def crossval_progress(folder: str | os.PathLike) -> CrossvalProgress:
    """The fold it is at and, from that fold's run, the epoch and time left; the folds still to
    come are counted at the finished folds' mean length where there are any."""
    from fer_core.rundir import CONSOLE_FILE, STOP_FILE
    from fer_core.training.runs import launched_process_alive, progress_view, read_run

    folder = Path(folder)
    settings = read_json(folder / SETTINGS_FILE, {}) or {}
    folds = int(settings.get("folds") or 0)
    if read_crossval(folder) is not None:
        return CrossvalProgress("finished", folds, folds, f"finished: {folds} folds")
    runs = [folder / f"fold-{k + 1}" for k in range(folds)]
    done = [finished_fold(run) for run in runs]  # read once a poll
    finished = sum(done)
    current = next((run for run, ended in zip(runs, done) if not ended), None)
    alive = launched_process_alive(folder.parent) and _launched_here(folder)
    fold_text = ""
    if current is not None and (current / "config.json").is_file():
        info = read_run(current)
        fold_text = progress_view(info).text
    where = f"fold {min(finished + 1, folds)} of {folds}"
    if alive:
        status = "stopping" if (folder / STOP_FILE).exists() else "running"
        text = f"{where}: {fold_text or 'starting'}"
        durations = [_minutes(run) for run, ended in zip(runs, done) if ended]
        left = folds - finished - 1
        if durations and left > 0:
            text += f"; then {left} more fold{'s' if left != 1 else ''}, about {left * sum(durations) / len(durations):.1f} min"
        return CrossvalProgress(status, finished, folds, text)
    console = (folder / CONSOLE_FILE).read_text(errors="replace").strip() if (folder / CONSOLE_FILE).is_file() else ""
    error = next((line for line in reversed(console.splitlines()) if "error:" in line), "")
    if error and "stopped" not in error:
        return CrossvalProgress("failed", finished, folds, error.split("error:", 1)[1].strip())
    return CrossvalProgress("stopped", finished, folds, f"stopped with {finished} of {folds} folds finished")


def _launched_here(folder: Path) -> bool:
    """Whether the dashboard's launch lock names this folder (the process it started is this one's)."""
    from fer_core.training.runs import LAUNCH_LOCK

    try:
        return (folder.parent / LAUNCH_LOCK).read_text().partition("\n")[2].strip() == folder.name
    except OSError:
        return False


def _minutes(run: Path) -> float:
    """The training minutes a finished fold's run spent (its state.json)."""
    from fer_core.rundir import STATE_FILE

    state = read_json(run / STATE_FILE, {}) or {}
    return float(state.get("seconds") or 0) / 60


def list_crossval_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """Every cross-validation folder in the runs folder (running, stopped, failed or finished),
    newest first: their names begin with the time they were made."""
    from fer_core.paths import runs_dir

    base = Path(root) if root is not None else runs_dir()
    if not base.is_dir():
        return []
    return sorted((p.parent for p in base.glob(f"*/{SETTINGS_FILE}")), key=lambda p: p.name, reverse=True)


def list_unfinished(root: str | os.PathLike | None = None) -> list[Path]:
    """Cross-validation folders in the runs folder without a crossval.json, newest first."""
    return [folder for folder in list_crossval_folders(root) if read_crossval(folder) is None]
