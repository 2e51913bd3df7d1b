"""Every folder fer_core reads or writes by default, each in one place with the environment
variable that moves it (tests and the dashboard's users set these, never a path in the code)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def trained_dir() -> Path:
    """Where promoted models live: $FER_TRAINED_DIR, else the project's trained/."""
    return Path(os.environ.get("FER_TRAINED_DIR") or PROJECT_ROOT / "trained")


def runs_dir() -> Path:
    """Where new runs go by default: $FER_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("FER_RUNS_DIR") or "runs")


def cache_dir() -> Path:
    """Decoded datasets, cached probabilities and ONNX graphs: $FER_CACHE_DIR, else ~/.cache/fer_studio."""
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer_studio")


def datasets_dir() -> Path:
    """Datasets brought through the dashboard (unpacked zips, corrected copies): $FER_DATASETS_DIR,
    else the user's data folder ($XDG_DATA_HOME or ~/.local/share)/fer_studio/datasets."""
    if os.environ.get("FER_DATASETS_DIR"):
        return Path(os.environ["FER_DATASETS_DIR"])
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "fer_studio" / "datasets"
