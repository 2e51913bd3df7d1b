"""What a worker does with one unit of work: one Recognizer per worker process (or Ray actor),
loaded once; a chunk of images through `Recognizer.results` (every face of the chunk in one
batch), or a video segment's sampled frames through `Recognizer.classify_arrays` a few frames at
a time. The facade does the work; the worker only feeds it and returns plain rows.

Face ids within a video are not given here: the job replays the tracker over the whole video's
boxes once all its segments are in (`job.join_tracks`), so they are the ids one pass would give.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

FRAMES_PER_CALL = 8  # sampled frames classified together: their faces in one batch


@dataclass(frozen=True)
class Settings:
    """What every worker builds its Recognizer from; part of the job's identity (job.json)."""

    model: str
    detector: str
    tta: str
    min_face: int
    every: int
    whole_image: bool
    segment_seconds: float

    def recognizer(self):
        from fer_core.recognizer import Recognizer

        return Recognizer(self.model, detector=self.detector, tta=self.tta, min_face=self.min_face)


class BatchWorker:
    """Holds one Recognizer; `__call__(unit)` returns the unit's result (a dict of plain values)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.recognizer = settings.recognizer().load()
        self.columns = tuple(self.recognizer.classes)

    def __call__(self, unit: dict) -> dict:
        started = time.monotonic()
        if unit["kind"] == "images":
            result = self._images(unit)
        else:
            result = self._segment(unit)
        result.update(id=unit["id"], kind=unit["kind"], seconds=time.monotonic() - started)
        result.update({key: unit[key] for key in ("source", "index") if key in unit})
        return result

    def _images(self, unit: dict) -> dict:
        """Per image: its rows (frame 0, face 1.. largest first) or its one-line error."""
        results = self.recognizer.results(
            list(unit["paths"]), names=list(unit["sources"]), whole_image=self.settings.whole_image
        )
        images = []
        for result in results:
            rows = [_face_row(0, 0.0, number, face) for number, face in enumerate(result.faces, start=1)]
            images.append({"source": result.file, "error": result.error, "rows": rows})
        return {"images": images}

    def _segment(self, unit: dict) -> dict:
        """A segment's sampled frames: rows (face id left 0), the frames it read, or the error
        that cut it (a file undecodable or truncated is failed whole by the job)."""
        import av

        from fer_core.errors import FerError
        from fer_core.inference.video import _short

        every, start, end = self.settings.every, unit["start"], unit["end"]
        rows, sampled, pending = [], [], []
        read_to, error = start, None

        def flush():
            found = self.recognizer.classify_arrays([rgb for _i, _t, rgb in pending], self.settings.whole_image)
            for (index, seconds, _rgb), faces in zip(pending, found):
                sampled.append(index)
                rows.extend(_face_row(index, seconds, 0, face) for face in faces)
            pending.clear()

        try:
            with av.open(unit["path"]) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                fps = unit["fps"]
                origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
                if start > 0:  # to the keyframe before the segment, then decoded up to its first frame
                    container.seek(int((start / fps + origin) / stream.time_base), stream=stream, backward=True)
                index = None
                for frame in container.decode(stream):
                    if index is None:
                        index = 0 if start == 0 else int(round((float(frame.time) - origin) * fps))
                    else:
                        index += 1
                    if index < start:
                        continue
                    if index >= end:
                        break
                    read_to = index + 1
                    if index % every == 0:
                        seconds = float(frame.time) if frame.time is not None else index / fps
                        pending.append((index, round(seconds, 3), frame.to_ndarray(format="rgb24")))
                        if len(pending) == FRAMES_PER_CALL:
                            flush()
        except av.error.FFmpegError as exc:
            where = f"at frame {read_to}" if read_to > 0 else "from its start"
            error = f"{unit['source']}: the video cannot be decoded {where} ({_short(exc)})"
        except FerError as exc:
            error = str(exc)
        if pending:
            flush()
        return {"rows": rows, "sampled": sampled, "read_to": read_to, "error": error}


def _face_row(frame: int, seconds: float, number: int, face) -> tuple:
    """(frame, time, face, x, y, w, h, cut, score, label, *probabilities)."""
    probabilities = tuple(float(p) for p in face.probabilities.values())
    score = float(face.score) if math.isfinite(face.score) else 0.0
    return (frame, seconds, number, *face.box, bool(face.cut), score, face.label, *probabilities)
