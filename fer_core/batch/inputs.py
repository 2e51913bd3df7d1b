"""A corpus's inputs: files, folders (recursive), globs or a manifest CSV, each told apart as an
image or a video by its content, never its name, and the units of work they make (a chunk of
images, a time segment of a video)."""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from fer_core.errors import FerError

# The first bytes of the image formats the decoder reads (fer_core.data.images).
IMAGE_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"P2",  # PGM
    b"P5",
)
# Video containers (after MP4/MOV's `ftyp` at byte 4 and AVI's RIFF): a file that starts as one but
# cannot be opened is a broken video, not "not a video".
VIDEO_SIGNATURES = (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"FLV", b"OggS")
# Columns every row of the results has; a manifest may not name one of its own columns so.
OWN_COLUMNS = ("source", "frame", "time", "face", "x", "y", "w", "h", "cut", "score", "label", "model", "detector")
FILE_COLUMNS = ("source", "kind", "status", "error", "frames", "faces", "seconds", "size", "mtime")


@dataclass(frozen=True)
class Input:
    """One file of the corpus: `source` as the rows name it, `path` where it is read, and the
    manifest's other columns (participant, condition, ...), carried into every row."""

    source: str
    path: str
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def stamp(self) -> tuple[int, int]:
        """(size, mtime in ns): the file as it is now; (−1, −1) where it cannot be read."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return -1, -1
        return stat.st_size, stat.st_mtime_ns


def gather(arguments: list[str], manifest: str | None = None) -> list[Input]:
    """The inputs, in order, each once: a folder stands for every file under it (sorted), a glob
    for its matches; a manifest's `path` column is relative to the CSV. A path that does not
    exist is kept as an input (it gets a failed row), a glob that matches nothing is refused.

    Raises:
        FerError: no inputs, a glob matching nothing, or a manifest without a `path` column,
            with a column named as one of the results' own, or a path twice.
    """
    inputs: list[Input] = []
    for argument in arguments:
        if any(ch in argument for ch in "*?[") and not Path(argument).exists():
            matches = sorted(glob.glob(os.path.expanduser(argument), recursive=True))
            if not matches:
                raise FerError(f"{argument}: the pattern matches no file")
            inputs += [item for match in matches for item in _expand(match)]
        else:
            inputs += _expand(argument)
    if manifest:
        inputs += _manifest(Path(manifest))
    unique = list(dict.fromkeys(inputs))  # by source: a file named twice is analysed once
    if not unique:
        raise FerError("no inputs: name files, folders, globs or --manifest FILE.csv")
    return unique


def _expand(argument: str) -> list[Input]:
    path = Path(argument).expanduser()
    if path.is_dir():
        return [Input(str(p), str(p)) for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    return [Input(str(path), str(path))]


def _manifest(manifest: Path) -> list[Input]:
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise FerError(f"{manifest}: cannot read the manifest ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise FerError(f"{manifest}: the manifest is not UTF-8 text") from None
    reader = csv.DictReader(text.splitlines())
    columns = [name.strip() for name in reader.fieldnames or []]
    if "path" not in columns:
        raise FerError(f"{manifest}: a manifest needs a `path` column (relative to the CSV). Columns: {columns}")
    clash = sorted(set(columns) & (set(OWN_COLUMNS) | set(FILE_COLUMNS)) - {"path"})
    if clash:
        raise FerError(f"{manifest}: the column(s) {', '.join(clash)} are the results' own; rename them")
    inputs, seen = [], set()
    for number, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        relative = row.pop("path")
        if not relative:
            raise FerError(f"{manifest}, line {number}: no path")
        if relative in seen:
            raise FerError(f"{manifest}, line {number}: {relative} is listed twice")
        seen.add(relative)
        inputs.append(Input(relative, str((manifest.parent / relative).resolve()), row))
    return inputs


def media_kind(path: str) -> str:
    """ "image" or "video", read from the file's content (an image's signature, else a container
    with a video stream).

    Raises:
        FerError: no such file, an empty file, or neither an image nor a video.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        raise FerError(f"{path}: no such file") from None
    except OSError as exc:
        raise FerError(f"{path}: cannot be read ({exc.strerror})") from None
    if not head:
        raise FerError(f"{Path(path).name}: the file is empty (0 bytes)")
    if head.startswith(IMAGE_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    from fer_core.inference.video import probe

    try:
        probe(path, max_bytes=float("inf"), max_minutes=float("inf"))
    except FerError as exc:
        if head[4:8] == b"ftyp" or head.startswith(VIDEO_SIGNATURES) or (head[:4] == b"RIFF" and head[8:11] == b"AVI"):
            raise FerError(
                f"{Path(path).name}: the video cannot be read, truncated or corrupt ({_reason(exc)})"
            ) from None
        raise FerError(f"{Path(path).name}: neither an image nor a video this decoder reads") from None
    return "video"


def _reason(exc: FerError) -> str:
    return str(exc).split(": ", 1)[-1][:160]


@dataclass(frozen=True)
class Segment:
    """Frames [start, end) of a video (start a multiple of `every`, so the sampled frames are a
    whole pass's), the `index`-th of `count`."""

    start: int
    end: int
    index: int
    count: int


def video_segments(path: str, every: int, segment_seconds: float) -> tuple[list[Segment], float]:
    """A video cut into time segments of about `segment_seconds`; and its frame rate."""
    from fer_core.inference.video import probe

    info = probe(path, max_bytes=float("inf"), max_minutes=float("inf"))
    per_segment = max(every, int(round(segment_seconds * info.fps)) // every * every)
    frames = max(1, info.frames)
    starts = list(range(0, frames, per_segment))
    ends = starts[1:] + [None]
    # The last segment reads to the end, whatever the header's count said.
    return [
        Segment(start, end if end is not None else 2**62, k, len(starts))
        for k, (start, end) in enumerate(zip(starts, ends))
    ], info.fps
