"""The live webcam path, without any UI: track faces across frames, classify, smooth, draw, and
hand timeline rows to the page through a bounded queue.

streamlit-webrtc calls `LiveProcessor.process` on its worker thread with the newest frame and the
number of older ones it skipped: processing only the newest frame means a model slower than the
camera drops frames instead of falling behind. Nothing here touches Streamlit; the page drains
`LiveProcessor.drain()` into a `Timeline` on its own schedule.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from fer_core.errors import FerError
from fer_core.inference.classifier import Classifier
from fer_core.inference.faces import Face, detection_crop, draw_faces
from fer_core.inference.looks import LookMaps, blend_looks
from fer_core.inference.tracking import FaceTracker


WARM_UP_FRAMES = 3


class Smoother:
    """Exponential moving average of probabilities: p <- alpha * p_old + (1 - alpha) * p_new.

    `alpha` 0 means no smoothing. Keyed by a track id so each face smooths on its own.
    """

    def __init__(self, alpha: float = 0.0):
        if not 0 <= alpha < 1:
            raise FerError(f"smoothing must be in [0, 1). Received: alpha={alpha}")
        self.alpha = alpha
        self._state: dict[int, np.ndarray] = {}

    def __call__(self, key: int, probabilities: np.ndarray) -> np.ndarray:
        previous = self._state.get(key)
        smoothed = (
            probabilities
            if previous is None or self.alpha == 0
            else self.alpha * previous + (1 - self.alpha) * probabilities
        )
        self._state[key] = smoothed
        return smoothed

    def forget(self, keep: set[int]) -> None:
        for key in list(self._state):
            if key not in keep:
                del self._state[key]


@dataclass(frozen=True)
class LiveSettings:
    smoothing: float = 0.5  # EMA weight of the past, 0 = off
    min_face: int = 60  # smallest face side in camera pixels
    detect_every: int = 3  # run Haar every N frames; boxes are tracked in between
    show_fps: bool = True
    looks: bool = False  # where the model looks, blended into each face's box (`fer_core.inference.looks`)

    def validate(self) -> LiveSettings:
        if not 0 <= self.smoothing < 1:
            raise FerError(f"smoothing must be in [0, 1). Received: {self.smoothing}")
        if not 20 <= self.min_face <= 1000:
            raise FerError(f"minimum face size must be 20-1000 px. Received: {self.min_face}")
        if not 1 <= self.detect_every <= 60:
            raise FerError(f"detection interval must be 1-60 frames. Received: {self.detect_every}")
        return self


@dataclass
class LiveStats:
    frames: int = 0  # frames processed
    skipped: int = 0  # frames dropped because processing was slower than the camera
    fps: float = 0.0  # processed frames per second (moving average)
    frame_ms: float = 0.0  # processing time of the last frame
    mean_frame_ms: float = 0.0  # processing time a frame (moving average, like fps)
    rows_dropped: int = 0  # timeline rows lost because the page did not drain the queue in time
    faces: int = 0  # faces on the last frame
    error: str = ""  # the last processing error, set by the caller that keeps the stream alive


@dataclass(frozen=True)
class LiveView:
    """What the last processed frame showed, taken as one piece: the page's panel reads this and
    never the fields one by one, so its numbers are those of the frame in the video."""

    at: float  # processor clock time of the frame
    faces: tuple[Face, ...]  # as drawn, the largest first
    frame_ms: float  # processing time a frame, averaged (LiveStats.mean_frame_ms)
    fps: float
    look_kind: str | None = None  # the maps drawn: "attention", "gradcam", or None (overlay off)
    look_age_s: float | None = None  # the oldest map drawn on the frame, in seconds

    @property
    def latest(self) -> Face | None:
        return self.faces[0] if self.faces else None


@dataclass
class LiveProcessor:
    """One viewer's live state: tracker, smoothing, stats and the outgoing row queue.

    `process` runs on streamlit-webrtc's worker thread; `configure`, `drain` and `stats` are called
    from the page's script thread. Settings and the classifier are swapped as a pair under a lock
    and read once per frame, so a frame never mixes two configurations.
    """

    classifier: Classifier
    detector: object  # a fer_core.inference.detectors detector, made with live=True
    settings: LiveSettings = field(default_factory=LiveSettings)
    queue_size: int = 4096
    clock: object = time.time

    def __post_init__(self):
        self.settings.validate()
        self._lock = threading.Lock()
        self._tracker = FaceTracker(self.detector)
        self._smoother = Smoother(self.settings.smoothing)
        self._rows: queue.Queue = queue.Queue(maxsize=self.queue_size)
        self._last_frame_at: float | None = None
        self.stats = LiveStats()
        self.view: LiveView | None = None  # the last frame's results (None: nothing shown yet, or cleared)
        self._looks = None  # the maps of where the model looks, made when the overlay is first on

    def configure(
        self, classifier: Classifier | None = None, settings: LiveSettings | None = None, detector=None
    ) -> None:
        with self._lock:
            if settings is not None:
                self.settings = settings.validate()
            if classifier is not None:
                self.classifier = classifier
            if detector is not None and detector is not self.detector:
                self.detector = self._tracker.detector = detector  # tracks and their ids carry over

    def process(self, frame_bgr: np.ndarray, skipped: int = 0) -> np.ndarray:
        """The newest camera frame (BGR uint8) in, the annotated frame out."""
        import cv2

        with self._lock:
            classifier, settings, detector = self.classifier, self.settings, self.detector
        started = time.perf_counter()
        gray = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        detect = self.stats.frames % settings.detect_every == 0
        colour = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB) if detect and detector.reads_colour else None
        tracks = self._tracker.update(gray, detect=detect, min_face=settings.min_face, colour=colour)
        keys = [t.track_id for t in tracks]
        looks = self._looks_for(classifier) if settings.looks else None
        faces = []
        if tracks:
            # Each face cropped as on every other path: levelled on its eyes, a cut face completed.
            crops = np.stack([detection_crop(gray, t.detection) for t in tracks])
            probabilities = looks.classify(crops, keys) if looks is not None else classifier(crops)
            self._smoother.alpha = settings.smoothing
            faces = [
                Face.of(t.box, self._smoother(t.track_id, p), classifier.classes, t.detection.score, t.detection.cut)
                for t, p in zip(tracks, probabilities)
            ]
        self._smoother.forget(set(keys))
        now = self.clock()
        for track, face in zip(tracks, faces):
            self._put((now, track.track_id, face.cut, face.label, *face.probabilities.values()))
        picture, look_age = frame_bgr, None
        if looks is not None:
            looks.forget(set(keys))
            maps = looks.maps(keys)
            picture = blend_looks(frame_bgr, [t.box for t in tracks], [heat for heat, _ in maps])
            look_age = max((age for _, age in maps if age is not None), default=None)
        annotated = draw_faces(picture, faces, min_side=0)
        self._count(started, skipped, len(faces))
        # One assignment: a reader on another thread sees this frame's results or the last one's.
        self.view = LiveView(
            now,
            tuple(faces),
            self.stats.mean_frame_ms,
            self.stats.fps,
            looks.kind if looks is not None else None,
            look_age,
        )
        if settings.show_fps:  # the numbers the page's panel shows, in the same words
            text = f"{self.stats.fps:.1f} frames/s, {self.stats.mean_frame_ms:.0f} ms a frame"
            cv2.putText(annotated, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(annotated, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        return annotated

    def _looks_for(self, classifier: Classifier) -> LookMaps:
        """This stream's maps, made again when the model changes (a map belongs to its model)."""
        if self._looks is None or self._looks.classifier is not classifier:
            if self._looks is not None:
                self._looks.close()
            self._looks = LookMaps(classifier)
        return self._looks

    def close(self) -> None:
        """Stop the maps' worker thread, if one runs (the stream ended)."""
        if self._looks is not None:
            self._looks.close()

    @property
    def latest(self) -> Face | None:
        """The largest face of the last frame, smoothed."""
        view = self.view
        return view.latest if view is not None else None

    def current_view(self, max_age_s: float = 2.0) -> LiveView | None:
        """The last frame's results while frames keep coming; None once they stopped `max_age_s` ago."""
        view = self.view
        if view is None or self.clock() - view.at > max_age_s:
            return None
        return view

    def clear_view(self) -> None:
        """Forget what the last frame showed (the stream stopped): the panel must not keep it."""
        self.view = None

    def _count(self, started: float, skipped: int, faces: int) -> None:
        now = time.perf_counter()
        stats = self.stats
        stats.frame_ms = (now - started) * 1000
        # Averaged as fps is: frames that detect cost several times those that only track, so the
        # last frame's time jumps between the two.
        # The first frames build the model's compiled call and the detector's session (seconds):
        # averaged in, they would linger for dozens of frames beside a frame rate that is already
        # right ("27 frames/s, 156 ms a frame"), so both averages start after them.
        warming = stats.frames < WARM_UP_FRAMES
        stats.mean_frame_ms = stats.frame_ms if warming else 0.9 * stats.mean_frame_ms + 0.1 * stats.frame_ms
        if self._last_frame_at is not None:
            rate = 1.0 / max(now - self._last_frame_at, 1e-6)
            stats.fps = rate if warming or stats.fps == 0 else 0.9 * stats.fps + 0.1 * rate
        self._last_frame_at = now
        stats.frames += 1
        stats.skipped += skipped
        stats.faces = faces

    def _put(self, row: tuple) -> None:
        # Never block the video thread: when the page falls behind, the oldest rows give way.
        while True:
            try:
                self._rows.put_nowait(row)
                return
            except queue.Full:
                try:
                    self._rows.get_nowait()
                    self.stats.rows_dropped += 1
                except queue.Empty:
                    pass

    def drain(self, limit: int | None = None) -> list[tuple]:
        """Timeline rows (time, face, cut, label, a probability per class) produced since the last drain."""
        rows = []
        while limit is None or len(rows) < limit:
            try:
                rows.append(self._rows.get_nowait())
            except queue.Empty:
                break
        return rows


class Timeline:
    """A viewing session's rows: all of them (up to `max_rows` a model) for the CSV, recent ones
    for charts; a probability column per class of the model (`classes`). Switching to another
    model (`use`) keeps the rows so far: the CSV names each row's model, and holds a column per
    class any of them had (empty where a row's model has no such class)."""

    def __init__(self, classes, model: str = "", max_rows: int = 200_000):
        self.max_rows = max_rows
        self._earlier: list = []  # DataFrames of the models used before, with other classes
        self._start(tuple(classes), model)

    def _start(self, classes: tuple, model: str) -> None:
        from collections import deque

        self._rows: deque = deque(maxlen=self.max_rows)
        self.classes, self.model = classes, model

    def use(self, classes, model: str) -> None:
        """Go on with `model`: rows from now on are its; those so far stay in the CSV."""
        classes = tuple(classes)
        if (classes, model) == (self.classes, self.model):
            return
        if self._rows:
            self._earlier.append(self.frame())
        self._start(classes, model)

    def extend(self, rows: list[tuple]) -> None:
        self._rows.extend(rows)

    def __len__(self) -> int:
        return len(self._rows) + sum(len(frame) for frame in self._earlier)

    def frame(self, last_seconds: float | None = None, now: float | None = None):
        """The current model's rows as a pandas DataFrame (time, face, cut, label, a column per
        class, model); `time` as UTC datetimes."""
        import pandas as pd

        if last_seconds is not None and self._rows:
            # Called every second while streaming: walk back from the newest row (rows arrive in
            # time order) instead of copying an hour of them to keep the last minute.
            since = (now if now is not None else self._rows[-1][0]) - last_seconds
            rows = list(itertools.takewhile(lambda r: r[0] >= since, reversed(self._rows)))[::-1]
        else:
            rows = list(self._rows)
        frame = pd.DataFrame(rows, columns=["time", "face", "cut", "label", *self.classes])
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        frame["model"] = self.model
        return frame

    def to_csv(self) -> bytes:
        import pandas as pd

        frames = [*self._earlier, self.frame()]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        classes = list(dict.fromkeys(c for part in frames for c in part.columns[4:-1]))
        frame = frame[["time", "face", "cut", "label", *classes, "model"]].copy()
        frame["time"] = [
            datetime.fromtimestamp(t.timestamp(), timezone.utc).isoformat(timespec="milliseconds")
            for t in frame["time"]
        ]
        return frame.to_csv(index=False, float_format="%.6f").encode()
