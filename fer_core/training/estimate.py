"""How long a run will take, said before it starts: its training images and epochs at the speed
recorded for the same model, settings and precision on this machine (or one with the same
processor features and cores). No record, no number: the page then says so instead of guessing."""

from __future__ import annotations

import math
import os
import socket
import statistics
from dataclasses import dataclass
from pathlib import Path

from fer_core.paths import PROJECT_ROOT, runs_dir, trained_dir
from fer_core.backend import SPEED_FLAGS, cpu_flags
from fer_core.errors import FerError
from fer_core.fileio import read_json
from fer_core.rundir import CONFIG_FILE, PROGRESS_FILE, read_history
from fer_core.words import counted
from fer_core.training.config import TrainConfig
from fer_core.training.splits import HELD_OUT_FRACTION

# The shipped models' lineage: the timed runs behind them, read even where FER_TRAINED_DIR points
# elsewhere (a fresh trained/ folder has none).
SHIPPED_LINEAGE = PROJECT_ROOT / "trained"


@dataclass(frozen=True)
class RunEstimate:
    train_images: int
    images_per_second: float | None  # None: no record of this model on this kind of machine
    minutes: float | None  # the whole run, capped by its time budget
    source: str  # where the speed comes from, in words

    def describe(self, epochs: int) -> str:
        if self.minutes is None:
            return (
                f"{self.train_images:,} training images x {counted(epochs, 'epoch')}; no timed run of this model and "
                f"precision on this machine yet ({self.source}), so no estimate: the first epoch will tell"
            )
        length = (
            "under a minute"
            if self.minutes < 1
            else f"about {self.minutes:.1f} min"
            if self.minutes < 90
            else f"about {self.minutes / 60:.1f} hours"
        )
        return (
            f"{length} of training: {self.train_images:,} training images x {counted(epochs, 'epoch')} at "
            f"{self.images_per_second:.0f} images/s ({self.source})"
        )


def training_images(config: TrainConfig, counts: dict[str, int] | None = None, folds: int | None = None) -> int:
    """The number of images a run of `config` trains on (as prepare_data splits them), from the
    dataset's images per split (`fer_core.data.split_counts`, counted here when not given); with
    `folds`, what each fold of a cross-validation trains on."""
    from fer_core.data import split_counts

    counts = counts if counts is not None else split_counts(config.data)
    if config.limit:
        counts = {k: min(v, config.limit) for k, v in counts.items()}
    train = next((counts[k] for k in ("Training", "train") if k in counts), sum(counts.values()))
    if "PublicTest" in counts and "PrivateTest" in counts:
        return train  # PublicTest selects; all of Training trains
    if folds:  # each fold trains on the other folds' images
        train = train - math.ceil(train / folds)
    elif not any(k in counts for k in ("Training", "train", "PrivateTest", "PublicTest", "test")):
        # One pool: a share is held out to report on first (as_the_run_saw_it; scikit-learn rounds it up).
        train -= math.ceil(train * (config.held_out or HELD_OUT_FRACTION))
    return max(0, train - max(1, round(train * config.validation_split)))


def recorded_speed(config: TrainConfig, precision: str, roots: list[Path] | None = None) -> tuple[float, str] | None:
    """(images/s, where from): the median of the records of this model, settings and precision on
    this host, else the median of those on machines with this one's processor features and core
    count; None without any."""
    host, flags, cores = socket.gethostname(), sorted(set(SPEED_FLAGS) & cpu_flags()), os.cpu_count()
    same_host, same_kind = [], []
    for folder in _record_folders(roots):
        config_json = read_json(folder / CONFIG_FILE, {}) or {}
        progress = read_json(folder / PROGRESS_FILE, {}) or {}
        if (
            config_json.get("model") != config.model
            or config_json.get("precision") != precision
            or (config_json.get("model_params") or {}) != (config.model_params or {})
        ):
            continue
        speed = _images_per_second(folder, progress)
        if speed is None:
            continue
        environment = progress.get("environment") or {}
        if progress.get("host") == host:
            same_host.append((folder.name, speed))
        elif (
            not environment.get("gpus")
            and environment.get("cores") == cores
            and sorted(environment.get("cpu_flags") or []) == flags
        ):
            same_kind.append(speed)
    if same_host:  # the median: a run that shared the processor with other work is slower
        speeds = [speed for _name, speed in same_host]
        runs = f"run {same_host[0][0]}" if len(speeds) == 1 else f"median of {len(speeds)} runs"
        return statistics.median(speeds), f"{runs} on this machine"
    if same_kind:
        return statistics.median(
            same_kind
        ), f"median of {len(same_kind)} recorded runs on {cores}-core CPUs like this one"
    return None


def estimate_run(
    config: TrainConfig,
    precision: str | None = None,
    roots: list[Path] | None = None,
    counts: dict[str, int] | None = None,
    folds: int | None = None,
) -> RunEstimate:
    """The run's length before launch (`precision` resolved, default: as `auto` would pick on a
    CPU; `counts`: the dataset's images per split, when already known); with `folds`, the whole
    cross-validation's (a run a fold, the time budget shared by them).

    Raises:
        FerError: the dataset path does not exist.
    """
    from fer_core.backend import resolve_precision

    if not config.data:
        raise FerError("no dataset configured: set its path in the sidebar or FER_DATA")
    precision = precision or resolve_precision(config.precision, gpu=False)
    images = training_images(config, counts, folds)
    found = recorded_speed(config, precision, roots)
    if found is None:
        return RunEstimate(images, None, None, f"{config.model}, {precision}")
    speed, source = found
    minutes = config.epochs * images / speed / 60.0 * (folds or 1)
    if config.minutes:
        minutes = min(minutes, config.minutes)
    return RunEstimate(images, speed, minutes, source)


def _record_folders(roots: list[Path] | None) -> list[Path]:
    if roots is None:
        trained = {trained_dir().resolve(), SHIPPED_LINEAGE.resolve()}
        roots = [runs_dir(), *(lineage for folder in sorted(trained) for lineage in folder.glob("*/lineage"))]
    bases = roots
    folders = []
    for base in bases:
        if Path(base).is_dir():
            folders += [p for p in Path(base).iterdir() if (p / CONFIG_FILE).is_file()]
    return folders


def _images_per_second(folder: Path, progress: dict) -> float | None:
    """Training images over the median epoch time (validation included), leaving out the first
    epoch when there are others: it includes compiling the graph."""
    images = progress.get("train_images")
    seconds = [row["seconds"] for row in read_history(folder) if row.get("seconds")]
    if not images or not seconds:
        return None
    return images / statistics.median(seconds[1:] or seconds)
