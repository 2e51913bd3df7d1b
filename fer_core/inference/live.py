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
from fer_core.inference.faces import Face, crop_face, draw_faces

# The detector runs on a copy downscaled to this longest side: its cost grows with the pixel count, and
# faces at webcam distance stay well above its minimum size.
LIVE_DETECTION_SIDE = 320
# Below this normalised correlation a tracked face is taken as lost; its box then stays put until
# the next detection decides.
_TRACK_MIN_SCORE = 0.4
# A track Haar misses in this many detections in a row is dropped (one miss is usually flicker).
_MAX_MISSES = 2


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

    def validate(self) -> LiveSettings:
        if not 0 <= self.smoothing < 1:
            raise FerError(f"smoothing must be in [0, 1). Received: {self.smoothing}")
        if not 20 <= self.min_face <= 1000:
            raise FerError(f"minimum face size must be 20-1000 px. Received: {self.min_face}")
        if not 1 <= self.detect_every <= 60:
            raise FerError(f"detection interval must be 1-60 frames. Received: {self.detect_every}")
        return self


@dataclass
class Track:
    track_id: int
    box: tuple[int, int, int, int]  # x, y, w, h in camera-frame pixels
    template: np.ndarray  # the face as last detected, on the downscaled frame
    misses: int = 0


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """The detector's boxes when asked to detect; in between, each box follows its face by template
    matching around its last place on the downscaled frame (a millisecond or two, several times
    cheaper than detecting).

    Detections are matched to tracks by overlap, so a face keeps its id (and its smoothing) while
    it moves. Used by one thread at a time.
    """

    def __init__(self, detector, max_side: int = LIVE_DETECTION_SIDE):
        self.detector = detector
        self.max_side = max_side
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, gray: np.ndarray, detect: bool, min_face: int, colour: np.ndarray | None = None) -> list[Track]:
        """The tracks on this frame, largest face first; `colour`: the same frame in RGB, for a
        detector that reads colour (the tracker itself works on grayscale)."""
        import cv2

        height, width = gray.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = (
            cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
            if scale < 1
            else gray
        )
        if detect:
            seen = small
            if colour is not None:
                seen = (
                    cv2.resize(colour, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
                    if scale < 1
                    else colour
                )
            found = self.detector.detect(seen, min_face=max(12, round(min_face * scale)), max_side=max(small.shape))
            self._match([tuple(round(v / scale) for v in d.box) for d in found], small, scale)
        else:
            for track in self.tracks:
                track.box = self._follow(track, small, scale)
        self.tracks.sort(key=lambda t: t.box[2] * t.box[3], reverse=True)
        return list(self.tracks)

    def _match(self, boxes: list[tuple[int, int, int, int]], small: np.ndarray, scale: float) -> None:
        pairs = sorted(
            ((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)), reverse=True
        )
        matched_tracks, matched_boxes = set(), set()
        for overlap, ti, bi in pairs:
            if overlap < 0.3 or ti in matched_tracks or bi in matched_boxes:
                continue
            matched_tracks.add(ti)
            matched_boxes.add(bi)
            track = self.tracks[ti]
            track.box, track.template, track.misses = boxes[bi], _patch(small, boxes[bi], scale), 0
        kept = []
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.misses += 1
                if track.misses >= _MAX_MISSES:
                    continue
                track.box = self._follow(track, small, scale)
            kept.append(track)
        for bi, box in enumerate(boxes):
            if bi not in matched_boxes:
                kept.append(Track(self._next_id, box, _patch(small, box, scale)))
                self._next_id += 1
        self.tracks = kept

    @staticmethod
    def _follow(track: Track, small: np.ndarray, scale: float) -> tuple[int, int, int, int]:
        import cv2

        th, tw = track.template.shape[:2]
        x, y, w, h = (round(v * scale) for v in track.box)
        margin_x, margin_y = max(4, w // 2), max(4, h // 2)
        x0, y0 = max(0, x - margin_x), max(0, y - margin_y)
        x1, y1 = min(small.shape[1], x + w + margin_x), min(small.shape[0], y + h + margin_y)
        window = small[y0:y1, x0:x1]
        if th < 4 or tw < 4 or window.shape[0] < th or window.shape[1] < tw:
            return track.box
        scores = cv2.matchTemplate(window, track.template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(scores)
        if best < _TRACK_MIN_SCORE:
            return track.box
        return round((x0 + bx) / scale), round((y0 + by) / scale), track.box[2], track.box[3]


def _patch(small: np.ndarray, box: tuple[int, int, int, int], scale: float) -> np.ndarray:
    x, y, w, h = (round(v * scale) for v in box)
    x0, y0 = max(0, x), max(0, y)
    return small[y0 : min(small.shape[0], y + h), x0 : min(small.shape[1], x + w)].copy()


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
        faces = []
        if tracks:
            probabilities = classifier(np.stack([crop_face(gray, t.box) for t in tracks]))
            self._smoother.alpha = settings.smoothing
            faces = [
                Face(t.box, self._smoother(t.track_id, p), classifier.classes) for t, p in zip(tracks, probabilities)
            ]
        self._smoother.forget({t.track_id for t in tracks})
        now = self.clock()
        for track, face in zip(tracks, faces):
            self._put((now, track.track_id, face.label, *(float(p) for p in face.probabilities)))
        annotated = draw_faces(frame_bgr, faces, min_side=0)
        self._count(started, skipped, len(faces))
        # One assignment: a reader on another thread sees this frame's results or the last one's.
        self.view = LiveView(now, tuple(faces), self.stats.mean_frame_ms, self.stats.fps)
        if settings.show_fps:  # the numbers the page's panel shows, in the same words
            text = f"{self.stats.fps:.1f} frames/s, {self.stats.mean_frame_ms:.0f} ms a frame"
            cv2.putText(annotated, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(annotated, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        return annotated

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
        stats.mean_frame_ms = stats.frame_ms if stats.frames == 0 else 0.9 * stats.mean_frame_ms + 0.1 * stats.frame_ms
        if self._last_frame_at is not None:
            rate = 1.0 / max(now - self._last_frame_at, 1e-6)
            stats.fps = rate if stats.fps == 0 else 0.9 * stats.fps + 0.1 * rate
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
        """Timeline rows (time, face, label, 7 probabilities) produced since the last drain."""
        rows = []
        while limit is None or len(rows) < limit:
            try:
                rows.append(self._rows.get_nowait())
            except queue.Empty:
                break
        return rows


class Timeline:
    """A viewing session's rows: all of them (up to `max_rows`) for the CSV, recent ones for charts;
    a probability column per class of the model (`classes`)."""

    def __init__(self, classes, max_rows: int = 200_000):
        from collections import deque

        self._rows: deque = deque(maxlen=max_rows)
        self.classes = tuple(classes)

    def extend(self, rows: list[tuple]) -> None:
        self._rows.extend(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def frame(self, last_seconds: float | None = None, now: float | None = None):
        """A pandas DataFrame (time, face, label, a column per class); `time` as UTC datetimes."""
        import pandas as pd

        if last_seconds is not None and self._rows:
            # Called every second while streaming: walk back from the newest row (rows arrive in
            # time order) instead of copying an hour of them to keep the last minute.
            since = (now if now is not None else self._rows[-1][0]) - last_seconds
            rows = list(itertools.takewhile(lambda r: r[0] >= since, reversed(self._rows)))[::-1]
        else:
            rows = list(self._rows)
        frame = pd.DataFrame(rows, columns=["time", "face", "label", *self.classes])
        frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
        return frame

    def to_csv(self) -> bytes:
        frame = self.frame()
        frame["time"] = [
            datetime.fromtimestamp(t.timestamp(), timezone.utc).isoformat(timespec="milliseconds")
            for t in frame["time"]
        ]
        return frame.to_csv(index=False, float_format="%.6f").encode()
