"""A corpus in one job: inputs told apart, what is done skipped, the rest cut into units (chunks
of images, video segments), run by an engine, and written as shards as results come in; job.json
says how far it is (the Batch page and `fer-core batch` read it)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fer_core.batch import store
from fer_core.batch.inputs import Input, media_kind, video_segments
from fer_core.batch.worker import Settings
from fer_core.errors import FerError
from fer_core.fileio import file_sha256, read_json, write_json_atomic

IMAGES_PER_UNIT = 32  # a chunk's faces go through the classifier in one batch
PROGRESS_SECONDS = 1.0  # job.json's progress is rewritten at most this often
STOP_FILE = "STOP"  # `fer-core stop DIR` (or the Batch page) asks a job to stop here


@dataclass
class Counts:
    inputs: int = 0
    skipped: int = 0  # done by an earlier run of the job
    done: int = 0
    failed: int = 0
    frames: int = 0
    faces: int = 0
    started: float = field(default_factory=time.time)

    @property
    def finished(self) -> int:
        return self.skipped + self.done + self.failed


def identity(settings: Settings, model_hash: str) -> dict:
    """What makes two runs one job: the same model file and the same settings that change rows."""
    fields = asdict(settings)
    fields.pop("segment_seconds")  # the track ids are joined across segments: rows do not change
    return {**fields, "model_sha256": model_hash}


def run_job(
    inputs: list[Input],
    out: str | os.PathLike,
    settings: Settings,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    gpus: float | None = None,
    echo=None,
) -> Counts:
    """Analyse every input not already done into `out`; returns the counts.

    Raises:
        FerError: the settings differ from the job already in `out`, the engine cannot start.
    """
    from fer_core import __version__
    from fer_core.batch.engines import ENGINES, run_local, run_ray
    from fer_core.inference.options import check_every
    from fer_core.recognizer import Recognizer

    if engine not in ENGINES:
        raise FerError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if not isinstance(workers, int) or not 1 <= workers <= 256:
        raise FerError(f"--workers must be 1-256. Received: {workers!r}")
    check_every(settings.every)
    if not settings.segment_seconds > 0:
        raise FerError(f"--segment-seconds must be above 0. Received: {settings.segment_seconds}")
    recognizer = Recognizer(settings.model, settings.detector, settings.tta, settings.min_face)  # checks the options
    model_hash = "+".join(file_sha256(ref.model_file) for ref in recognizer.refs)
    out = Path(out)
    record = store.claim(out, identity(settings, model_hash))
    store.sweep(out)
    (out / STOP_FILE).unlink(missing_ok=True)
    classes = list(recognizer.classes)
    extras = sorted({key for item in inputs for key in item.extra})
    face_columns = [*_FACE_HEAD, *classes, "model", "detector", *extras]
    record.update(
        model={"name": recognizer.model_name, "sha256": model_hash, "classes": classes},
        engine=engine,
        workers=workers,
        versions=_versions(__version__, engine),
        face_columns=face_columns,
        pid=os.getpid(),
        status="running",
        error=None,
    )
    counts = Counts(inputs=len(inputs))
    writer = _Writer(out, record, counts, classes, extras, recognizer.model_name, settings.detector)
    todo = writer.not_done(inputs)
    # Chunks small enough that every worker gets some of a small corpus, 32 images at most.
    chunk = max(1, min(IMAGES_PER_UNIT, -(-len(todo) // (2 * workers))))
    units = _units(todo, settings, writer, chunk)
    stopped = lambda: (out / STOP_FILE).exists()  # noqa: E731
    run = run_local if engine == "local" else run_ray
    options = {} if engine == "local" else {"address": address, "gpus": gpus}
    try:
        for result in run(units, settings, workers, stopped, **options):
            writer.take(result)
            if echo:
                echo(counts)
        record["status"] = "stopped" if stopped() else "finished"
    except FerError as exc:
        record.update(status="failed", error=str(exc))
        raise
    except KeyboardInterrupt:
        record["status"] = "stopped"
        raise
    finally:
        store.gather_files(out)
        writer.progress(force=True)
    return counts


_FACE_HEAD = ["source", "frame", "time", "face", "x", "y", "w", "h", "cut", "score", "label"]


def _versions(version: str, engine: str) -> dict:
    import importlib.metadata as metadata

    names = ["keras", "numpy", "onnxruntime", "pyarrow", "av"] + (["ray"] if engine == "ray" else [])
    found = {"fer-studio": version}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _units(todo: list[Input], settings: Settings, writer: _Writer, chunk_size: int = IMAGES_PER_UNIT):
    """Units of work, lazily: each file's kind read from its content as it comes; a file that is
    neither an image nor a video is failed at once."""
    chunk: list[Input] = []
    number = 0
    for item in todo:
        try:
            kind = media_kind(item.path)
            if kind == "video":
                segments, fps = video_segments(item.path, settings.every, settings.segment_seconds)
        except FerError as exc:
            writer.fail(item, str(exc))
            continue
        if kind == "image":
            chunk.append(item)
            if len(chunk) == chunk_size:
                number += 1
                yield writer.expect_images(number, chunk)
                chunk = []
            continue
        writer.expect_video(item, len(segments))
        for segment in segments:
            number += 1
            yield {
                "id": number,
                "kind": "segment",
                "source": item.source,
                "path": item.path,
                "fps": fps,
                "start": segment.start,
                "end": segment.end,
                "index": segment.index,
                "count": segment.count,
            }
    if chunk:
        yield writer.expect_images(number + 1, chunk)


class _Writer:
    """Turns results into shards: an image chunk's at once, a video's when all its segments are in."""

    def __init__(self, out: Path, record: dict, counts: Counts, classes, extras, model: str, detector: str):
        self.out, self.record, self.counts = out, record, counts
        self.classes, self.extras, self.model, self.detector = classes, extras, model, detector
        self.by_source: dict[str, Input] = {}
        self.videos: dict[str, dict] = {}  # source -> {"count": n, "parts": {index: result}}
        self.taken: set[int] = set()  # unit ids already written (a retried unit's second result is dropped)
        self._last_progress = 0.0

    def not_done(self, inputs: list[Input]) -> list[Input]:
        """The inputs to analyse: all but those done by an earlier run on the same file as now."""
        latest = store.latest_files(self.out)
        done = {
            row.source: (row.size, row.mtime)
            for row in latest.itertuples()
            if row.status == "done" and "size" in latest.columns
        }
        todo = []
        for item in inputs:
            self.by_source[item.source] = item
            if done.get(item.source) == item.stamp:
                self.counts.skipped += 1
            else:
                todo.append(item)
        self.progress(force=True)
        return todo

    def expect_images(self, number: int, chunk: list[Input]) -> dict:
        return {"id": number, "kind": "images", "sources": [i.source for i in chunk], "paths": [i.path for i in chunk]}

    def expect_video(self, item: Input, count: int) -> None:
        self.videos[item.source] = {"count": count, "parts": {}}

    def fail(self, item: Input, error: str) -> None:
        """An input refused before any worker saw it (missing, empty, neither image nor video)."""
        self._commit([self._entry(item, "unknown", [], error, frames=0, seconds=0.0)])

    def take(self, result: dict) -> None:
        if result["id"] in self.taken:
            return
        self.taken.add(result["id"])
        if result["kind"] == "images":
            share = result["seconds"] / max(1, len(result["images"]))
            entries = [
                self._entry(self.by_source[i["source"]], "image", i["rows"], i["error"], 1, share, result)
                for i in result["images"]
            ]
            self._commit(entries)  # one shard a chunk: 20,000 photos are 625 files, not 20,000
        else:
            video = self.videos[result["source"]]
            video["parts"][result["index"]] = result
            if len(video["parts"]) == video["count"]:
                self._finish_video(self.by_source[result["source"]], video["parts"])
                del self.videos[result["source"]]
        self.progress()

    def _finish_video(self, item: Input, parts: dict) -> None:
        ordered = [parts[k] for k in sorted(parts)]
        errors = [part["error"] for part in ordered if part["error"]]
        seconds = sum(part["seconds"] for part in ordered)
        # Where it ran: every node and worker that analysed one of its segments.
        ran = {
            "node": ",".join(sorted({str(part.get("node", "")) for part in ordered})),
            "worker": ordered[-1].get("worker", 0),
        }
        if errors:
            self._commit([self._entry(item, "video", [], errors[0], 0, seconds, ran)])
            return
        frames = sum(len(part["sampled"]) for part in ordered)
        self._commit([self._entry(item, "video", join_tracks(ordered), None, frames, seconds, ran)])

    def _entry(self, item, kind, rows, error, frames, seconds, result=None) -> tuple:
        """(faces table, per-input row) of one input."""
        import pyarrow as pa

        size, mtime = item.stamp
        error = error.replace(item.path, item.source) if error else error  # named as the rows name it
        labels = [row[9] for row in rows]
        shares = {c: (labels.count(c) / len(labels) if labels else None) for c in self.classes}
        file_row = {
            "source": item.source,
            "kind": kind,
            "status": "failed" if error else "done",
            "error": error.splitlines()[0][:300] if error else "",
            "frames": frames if not error else 0,
            "faces": len(rows),
            "seconds": round(seconds, 4),
            "size": size,
            "mtime": mtime,
            "node": str((result or {}).get("node", "")),
            "worker": int((result or {}).get("worker", 0) or 0),
            **shares,
            **{key: item.extra.get(key, "") for key in self.extras},
        }
        columns = list(zip(*rows)) if rows else [[] for _ in range(len(_FACE_HEAD) - 1 + len(self.classes))]
        types = [pa.int64(), pa.float64(), pa.int64(), *[pa.int64()] * 4, pa.bool_(), pa.float64(), pa.string()]
        types += [pa.float64()] * len(self.classes)
        arrays = [pa.array([item.source] * len(rows), pa.string())]
        arrays += [pa.array(list(values), kind_) for values, kind_ in zip(columns, types)]
        arrays += [pa.array([self.model] * len(rows), pa.string()), pa.array([self.detector] * len(rows), pa.string())]
        arrays += [pa.array([item.extra.get(key, "")] * len(rows), pa.string()) for key in self.extras]
        return pa.Table.from_arrays(arrays, names=self.record["face_columns"]), file_row

    def _commit(self, entries: list[tuple]) -> None:
        """One shard of these inputs' faces, then their ledger rows (which make it count)."""
        import pyarrow as pa

        faces = pa.concat_tables([table for table, _row in entries])
        store.write_shard(self.out, faces, pa.Table.from_pylist([row for _table, row in entries]))
        for _table, row in entries:
            if row["status"] == "failed":
                self.counts.failed += 1
            else:
                self.counts.done += 1
                self.counts.frames += row["frames"]
                self.counts.faces += row["faces"]

    def progress(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._last_progress < PROGRESS_SECONDS:
            return
        self._last_progress = now
        elapsed = max(now - self.counts.started, 1e-6)
        analysed = self.counts.done + self.counts.failed
        left = self.counts.inputs - self.counts.finished
        self.record["progress"] = {
            **{k: v for k, v in asdict(self.counts).items() if k != "started"},
            "seconds": round(elapsed, 2),
            "inputs_per_second": round(analysed / elapsed, 3),
            "frames_per_second": round(self.counts.frames / elapsed, 3),
            "faces_per_second": round(self.counts.faces / elapsed, 3),
            "seconds_left": round(left * elapsed / analysed, 1) if analysed and left else (0.0 if not left else None),
            "updated": now,
        }
        write_json_atomic(self.out / store.JOB, self.record)


def join_tracks(parts: list[dict]) -> list[tuple]:
    """A video's rows with face ids: the tracker replayed over every sampled frame of all its
    segments in order (faceless frames included, they age the tracks), so a face seen on both
    sides of a cut keeps one id, the id one pass over the video gives."""
    from fer_core.inference.tracking import FaceTracks

    by_frame: dict[int, list[tuple]] = {}
    sampled: list[int] = []
    for part in parts:
        sampled += part["sampled"]
        for row in part["rows"]:
            by_frame.setdefault(row[0], []).append(row)
    tracks, rows = FaceTracks(), []
    for frame in sorted(sampled):
        faces = by_frame.get(frame, [])
        ids = tracks.update([tuple(row[3:7]) for row in faces])
        rows += [(row[0], row[1], face_id, *row[3:]) for row, face_id in zip(faces, ids)]
    return rows


def read_job(out: str | os.PathLike) -> dict:
    """job.json, or FerError where `out` holds no job."""
    record = read_json(Path(out) / store.JOB)
    if not isinstance(record, dict):
        raise FerError(f"{out}: not a batch job's folder (no readable {store.JOB})")
    return record


def is_job(out: str | os.PathLike) -> bool:
    return (Path(out) / store.JOB).is_file()


def request_stop(out: str | os.PathLike) -> None:
    """Ask the job writing `out` to stop: it hands out no more units, writes those in flight and
    ends "stopped"; the same command run again goes on."""
    (Path(out) / STOP_FILE).touch()
