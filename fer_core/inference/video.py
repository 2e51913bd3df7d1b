"""Video files: every N-th frame's faces found, tracked across frames with stable ids, classified;
a row per face per sampled frame, a summary per face, and optionally an annotated MP4.

Decoded and encoded as streams with PyAV (FFmpeg), one frame in memory at a time, so a long
video costs time, not memory. No UI here: `fer-core video` and the Video page call `analyze`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fer_core.errors import FerError
from fer_core.inference.classifier import classify_image
from fer_core.inference.looks import LookMaps, blend_looks
from fer_core.inference.tracking import FaceTracks
from fer_core.inference.faces import draw_boxes
from fer_core.inference.options import DEFAULT_MIN_FACE, check_every

MAX_VIDEO_BYTES = 500 * 2**20
MAX_VIDEO_MINUTES = 30.0
MAX_VIDEO_PIXELS = 3840 * 2160  # a frame's; larger is refused before decoding


def row_columns(classes) -> tuple[str, ...]:
    """A row's columns for a model with these classes."""
    return ("time", "frame", "face", "x", "y", "w", "h", "cut", "label", *classes, "model", "detector")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    seconds: float
    frames: int  # as the container says (an estimate for some formats)
    codec: str


def probe(path: str | Path, max_bytes: int = MAX_VIDEO_BYTES, max_minutes: float = MAX_VIDEO_MINUTES) -> VideoInfo:
    """The video's size, rate and length, read from its header; refuses what `analyze` cannot do.

    Raises:
        FerError: missing, empty, too large or too long, not a video, no video stream, or frames
        over MAX_VIDEO_PIXELS.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise FerError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise FerError(f"{path.name}: the file is empty (0 bytes)")
    if size > max_bytes:
        raise FerError(f"{path.name}: the file is {size / 2**20:.1f} MiB, over the {max_bytes / 2**20:.3g} MiB limit")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FerError(f"{path.name}: holds no video frames (no video stream)")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
            seconds = float(stream.duration * stream.time_base) if stream.duration else 0.0
            if not seconds and container.duration:
                seconds = container.duration / 1_000_000
            frames = int(stream.frames or round(seconds * fps))
            codec = stream.codec_context.name
    except FerError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise FerError(f"{path.name}: not a video, or a format that cannot be read ({_short(exc)})") from None
    if not width or not height:
        raise FerError(f"{path.name}: the video stream has no frame size")
    if width * height > MAX_VIDEO_PIXELS:
        raise FerError(f"{path.name}: {width}x{height} frames, over the {MAX_VIDEO_PIXELS / 1e6:.1f} Mpx limit")
    if seconds > max_minutes * 60:
        raise FerError(f"{path.name}: {seconds / 60:.1f} minutes long, over the {max_minutes:g}-minute limit")
    return VideoInfo(width, height, fps, seconds, frames, codec)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


@dataclass
class VideoProgress:
    """How far an analysis is, readable from another thread (the page's progress bar)."""

    frames_done: int = 0
    frames_total: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def fraction(self) -> float:
        return min(1.0, self.frames_done / self.frames_total) if self.frames_total else 0.0

    @property
    def seconds_left(self) -> float | None:
        if not self.frames_done or not self.frames_total:
            return None
        elapsed = time.monotonic() - self.started
        return max(0.0, elapsed / self.frames_done * (self.frames_total - self.frames_done))


@dataclass
class VideoResult:
    info: VideoInfo
    rows: list[tuple]  # row_columns(classes)
    frames_read: int
    frames_analysed: int
    cancelled: bool
    output: Path | None
    classes: tuple[str, ...]  # the model's, in its output order

    def frame(self):
        """The rows as a DataFrame (`row_columns(classes)`)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(row_columns(self.classes)))

    def summary(self):
        """Per face: the sampled frames it was seen in, and the share of them per emotion."""
        import pandas as pd

        rows = self.frame()
        if rows.empty:
            return pd.DataFrame(columns=["face", "frames", *self.classes])
        shares = pd.crosstab(rows["face"], rows["label"], normalize="index").reindex(
            columns=list(self.classes), fill_value=0.0
        )
        shares.insert(0, "frames", rows.groupby("face").size())
        return shares.reset_index()

    def to_csv(self) -> str:
        return self.frame().to_csv(index=False, float_format="%.4f")


def analyze(
    path: str | Path,
    classifier,
    detector,
    every: int = 5,
    output: str | Path | None = None,
    model_name: str = "",
    min_face: int = DEFAULT_MIN_FACE,
    progress: VideoProgress | None = None,
    cancel: threading.Event | None = None,
    max_minutes: float = MAX_VIDEO_MINUTES,
    max_bytes: int = MAX_VIDEO_BYTES,
    classes: tuple[str, ...] | None = None,
    explain: bool = False,
) -> VideoResult:
    """Faces of every `every`-th frame, found by `detector`, classified by `classifier`, tracked
    with stable ids; with `output`, an MP4 (H.264) of every frame with the latest boxes drawn, and
    with `explain` the map of where the model looks blended into each box (attention_cnn's
    attention, else Grad-CAM: `fer_core.inference.looks`), made afresh on every analysed frame.

    Raises:
        FerError: the file is refused by `probe`, holds no frame, or breaks off before any frame
        (a file truncated later ends the analysis there, with the rows so far).
    """
    import av

    check_every(every)
    classes = tuple(classes or classifier.classes)
    info = probe(path, max_bytes=max_bytes, max_minutes=max_minutes)
    progress = progress or VideoProgress()
    progress.frames_total = info.frames
    tracks, rows = FaceTracks(), []
    read = analysed = 0
    overlay = _Overlay()
    looks = LookMaps(classifier, background=False) if explain else None
    tags = (model_name, getattr(detector, "name", ""))  # the last columns of every row
    encoder = _Encoder(output, info) if output else None
    cancelled = False
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            try:
                for frame in container.decode(stream):
                    if cancel is not None and cancel.is_set():
                        cancelled = True
                        break
                    rgb = frame.to_ndarray(format="rgb24")
                    if read % every == 0:
                        seconds = float(frame.time) if frame.time is not None else read / info.fps
                        frame_rows, overlay = _analyse_frame(
                            rgb, read, seconds, classifier, detector, tracks, min_face, looks, tags
                        )
                        rows.extend(frame_rows)
                        analysed += 1
                    if encoder is not None:
                        encoder.write(overlay.draw(rgb))
                    read += 1
                    progress.frames_done = read
            except av.error.FFmpegError as exc:
                if read == 0:
                    raise FerError(f"{Path(path).name}: the video cannot be decoded ({_short(exc)})") from None
                # A file cut off mid-way: keep what was read (the summary says how many frames).
    except av.error.FFmpegError as exc:
        raise FerError(f"{Path(path).name}: the video cannot be decoded ({_short(exc)})") from None
    finally:
        if encoder is not None:
            encoder.close()
    if read == 0 and not cancelled:
        if encoder is not None:
            Path(output).unlink(missing_ok=True)
        raise FerError(f"{Path(path).name}: holds no video frames")
    if not cancelled:
        progress.frames_total = read  # the container's count was an estimate; this is the count
    return VideoResult(info, rows, read, analysed, cancelled, Path(output) if output else None, tuple(classes))


@dataclass
class _Overlay:
    """What the annotated video shows on every frame until the next analysed one."""

    boxes: list = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    colours: list[int] = field(default_factory=list)  # one per track id, stable across frames
    heat: list | None = None  # the maps of where the model looks, with `explain`

    def draw(self, rgb: np.ndarray) -> np.ndarray:
        picture = blend_looks(rgb, self.boxes, self.heat, rgb=True) if self.heat is not None else rgb
        return draw_boxes(picture, self.boxes, self.labels, min_side=0, rgb=True, colour_index=self.colours)


def _analyse_frame(rgb, index, seconds, classifier, detector, tracks, min_face, looks, tags):
    """One sampled frame: its faces classified and tracked; their rows, and the overlay to draw."""
    faces = classify_image(rgb, classifier, detector, min_face=min_face, looks=looks)
    ids = tracks.update([f.box for f in faces])  # also ages the tracks of a faceless frame
    rows = [
        (round(seconds, 3), index, face_id, *face.box, face.cut, face.label) + tuple(face.probabilities.values()) + tags
        for face, face_id in zip(faces, ids)
    ]
    overlay = _Overlay(
        [f.box for f in faces],
        [f"face {i} {f.label} {f.confidence:.0%}" for f, i in zip(faces, ids)],
        [i - 1 for i in ids],
        [m for m, _ in looks.maps(range(len(faces)))] if looks is not None else None,
    )
    return rows, overlay


class _Encoder:
    """An H.264 MP4 written frame by frame (even sizes: the encoder's 4:2:0 needs them)."""

    def __init__(self, output: str | Path, info: VideoInfo):
        import av
        from fractions import Fraction

        self.path = Path(output)
        self.container = av.open(str(self.path), mode="w")
        rate = Fraction(info.fps).limit_denominator(1001)
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = info.width - info.width % 2, info.height - info.height % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"preset": "veryfast", "crf": "23"}

    def write(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(rgb[: self.stream.height, : self.stream.width]), format="rgb24"
        )
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


@dataclass
class VideoJob:
    """An analysis running on its own thread (the Video page's: a long video never holds up the
    page's script or any other page), with its progress, a cancel, and its result or error."""

    progress: VideoProgress
    cancel: threading.Event
    thread: threading.Thread
    result: VideoResult | None = None
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


def start_job(analyse) -> VideoJob:
    """`analyse(progress, cancel)` (a video's analysis) on a daemon thread; the job's `result` or
    `error` (one line) is set when it ends."""
    progress, cancel = VideoProgress(), threading.Event()
    job = VideoJob(progress, cancel, threading.Thread(daemon=True))

    def work():
        try:
            job.result = analyse(progress, cancel)
        except FerError as exc:
            job.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - said on the page in one line, the server goes on
            job.error = f"the analysis failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"

    job.thread = threading.Thread(target=work, name="fer-video", daemon=True)
    job.thread.start()
    return job


def face_at(path: str | Path, frame_index: int, box: tuple[int, int, int, int], detector=None) -> np.ndarray:
    """The face a video's row names (its frame, counted from 0 as the rows count them, and its
    box) as the model saw it: 48x48 grayscale, found again by `detector` on that frame so its whole
    box and eyes are the analysis's (levelled, a cut face completed); without a detector, or when
    it no longer overlaps the box, the box's crop as it is.

    Raises:
        FerError: the video has no such frame or cannot be decoded.
    """
    import av

    from fer_core.inference.detectors import to_gray
    from fer_core.inference.detectors.common import Detection
    from fer_core.inference.faces import crop_face, detection_crop, find_faces
    from fer_core.inference.tracking import iou

    try:
        with av.open(str(path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index == frame_index:
                    rgb = frame.to_ndarray(format="rgb24")
                    break
            else:
                raise FerError(f"{Path(path).name}: no frame {frame_index}")
    except av.error.FFmpegError as exc:
        raise FerError(f"{Path(path).name}: the video cannot be decoded ({_short(exc)})") from None
    gray = to_gray(rgb)
    if detector is not None:
        found = find_faces(rgb, detector, min_face=max(12, min(box[2], box[3]) // 2))
        overlaps = [(iou(detection.box, box), detection) for detection in found]
        best = max(overlaps, key=lambda pair: pair[0], default=(0.0, Detection(box, 1.0)))
        if best[0] > 0.5:
            return detection_crop(gray, best[1])
    return crop_face(gray, box)
