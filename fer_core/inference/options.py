"""The options every path to the faces takes, and the one place each is checked: the facade, the
CLI, `fer-core batch`, the pages and the service (whose 422s come from these same checks)."""

from __future__ import annotations

from fer_core.errors import FerError

# Smaller boxes hold too few pixels for a 48x48 face to mean anything (FER2013's are 48 px);
# every command, page and the service start from this.
DEFAULT_MIN_FACE = 30
MIN_FACE_RANGE = (8, 4096)
DEFAULT_EVERY = 5
EVERY_RANGE = (1, 1000)


def check_detector(name: str) -> str:
    from fer_core.inference.detectors import DETECTORS

    if name not in DETECTORS:
        raise FerError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return name


def check_tta(mode: str) -> str:
    from fer_core.inference.tta import TTA_MODES

    if mode not in TTA_MODES:
        raise FerError(f"unknown TTA mode {mode!r}; choose one of {', '.join(TTA_MODES)}")
    return mode


def check_min_face(pixels) -> int:
    low, high = MIN_FACE_RANGE
    if isinstance(pixels, bool) or not isinstance(pixels, int) or not low <= pixels <= high:
        raise FerError(f"min_face must be a whole number of pixels, {low}-{high}. Received: {pixels!r}")
    return pixels


def check_every(frames) -> int:
    low, high = EVERY_RANGE
    if isinstance(frames, bool) or not isinstance(frames, int) or not low <= frames <= high:
        raise FerError(f"every must be a whole number of frames, {low}-{high}. Received: {frames!r}")
    return frames
