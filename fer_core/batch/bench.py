"""`fer-core bench --batch-inputs N`: a built corpus through `fer-core predict` one by one, the
local engine with 1 and 2 workers and Ray with 1 and 2 actors, each as a command (start-up and
model loads included, as a user runs them); images/s on photos with faces and on face crops
(`--whole-image`), video frames/s, and the peak memory of the largest worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from fer_core.batch.store import load_files


def _tree_rss_mb(root: int) -> dict[int, float]:
    """Resident memory (MB) of `root` and every process below it, by pid, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, IndexError, ValueError):
            continue
    found, stack = {}, [root]
    while stack:
        pid = stack.pop()
        if pid in rss:
            found[pid] = rss[pid]
        stack += children.get(pid, [])
    return found


def timed_command(args: list[str], env: dict | None = None) -> dict:
    """`fer-core ARGS` run to its end: seconds, and the peak memory of its largest process."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "fer_core", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )
    peak = {"largest_process_mb": 0.0}

    def watch():
        while process.poll() is None:
            sizes = _tree_rss_mb(process.pid)
            if sizes:
                peak["largest_process_mb"] = max(peak["largest_process_mb"], max(sizes.values()))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    code = process.wait()
    watcher.join()
    return {"seconds": round(time.monotonic() - started, 2), "exit": code, "peak_mb": round(peak["largest_process_mb"])}


def build_corpus(root: Path, photos: int, crops: int, video_frames: int) -> dict[str, Path]:
    """Photos of one or two drawn faces (640x480 JPEG), 48x48 face crops (PNG) and one video."""
    import cv2
    import numpy as np

    from fer_core.data.synthetic import drawn_face, face_frame

    folders = {name: root / name for name in ("photos", "crops", "video")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for k in range(photos):
        faces = [(80 + k % 200, 100, 170)] if k % 2 else [(40, 90, 150), (380, 110, 160)]
        cv2.imwrite(str(folders["photos"] / f"p{k:05d}.jpg"), face_frame(faces, seed=k))
    for k in range(crops):
        cv2.imwrite(str(folders["crops"] / f"c{k:05d}.png"), cv2.resize(drawn_face(96, seed=k), (48, 48)))
    if video_frames:
        import av

        with av.open(str(folders["video"] / "clip.mp4"), mode="w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
            for k in range(video_frames):
                frame = face_frame([(60 + k % 300, 60, 180), (420 - k % 200, 250, 150)], seed=k)
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return folders


# The start-up probe: a command over this many inputs is its start (imports, the pool or the
# cluster, a model a worker) and next to no work; one each for two workers.
START_INPUTS = 2


def bench_batch(model: str, inputs: int = 200, engines=("local", "ray"), video_frames: int = 250) -> dict:
    """The `batch` section of `fer-core bench`: per corpus (photos, crops, video) and runner,
    seconds, inputs (or frames) per second and peak memory of the largest process; for photos and
    crops also the same command over START_INPUTS inputs (`start_seconds`: its fixed cost), and
    for jobs the rate in the workers' own time (`per_second_in_workers`: what a corpus large
    enough to hide the start-up runs at)."""
    if inputs <= START_INPUTS:
        raise ValueError(f"the batch benchmark needs more than {START_INPUTS} inputs")
    result: dict = {"inputs": inputs, "video_frames": video_frames, "model": model}
    with tempfile.TemporaryDirectory(prefix="fer-batch-bench-") as tmp:
        root = Path(tmp)
        folders = build_corpus(root, inputs, inputs, video_frames)
        for corpus in ("photos", "crops"):
            few = root / f"{corpus}-start"
            few.mkdir()
            for path in sorted(folders[corpus].iterdir())[:START_INPUTS]:
                os.link(path, few / path.name)
            folders[f"{corpus}-start"] = few
        jobs = 0

        def batch(folder: Path, engine: str, workers: int, *extra: str) -> dict:
            nonlocal jobs
            jobs += 1
            out = root / f"job{jobs}"
            args = ["batch", str(folder), "--out", str(out), "--model", model, "--quiet"]
            row = timed_command([*args, "--engine", engine, "--workers", str(workers), *extra])
            # The workers' own time on their units (files.parquet), a worker's share: against the
            # whole command it shows what the engine costs besides the work.
            row["busy_seconds"] = round(float(load_files(out)["seconds"].sum()) / workers, 2)
            return row

        def run(folder: Path, runner: str, extra: list[str]) -> dict:
            if runner == "predict":
                return timed_command(["predict", str(folder), "--model", model, *extra, "--json"])
            engine, workers = runner.split("_")
            return batch(folder, engine, int(workers), *extra)

        runners = ["predict", *(f"{engine}_{workers}" for engine in engines for workers in (1, 2))]
        for corpus, extra, count in (("photos", [], inputs), ("crops", ["--whole-image"], inputs)):
            rows = {}
            for runner in runners:
                start, row = run(folders[f"{corpus}-start"], runner, extra), run(folders[corpus], runner, extra)
                row["start_seconds"] = start["seconds"]
                rows[runner] = _rates(row, count)
            result[corpus] = rows
        if video_frames:
            clip = folders["video"] / "clip.mp4"
            rows = {"video": timed_command(["video", str(clip), "--model", model, "--every", "1"])}
            for engine in engines:
                for workers in (1, 2):
                    rows[f"{engine}_{workers}"] = batch(
                        folders["video"], engine, workers, "--every", "1", "--segment-seconds", "2"
                    )
            result["video"] = {name: _rates(row, video_frames) for name, row in rows.items()}
    return result


def _rates(row: dict, count: int) -> dict:
    """Inputs (or frames) a second over the whole command, and in the workers' time where known."""
    row["per_second"] = round(count / row["seconds"], 2)
    if row.get("busy_seconds"):
        row["per_second_in_workers"] = round(count / row["busy_seconds"], 2)
    return row


def bench_memory(model: str, sizes=(1000, 5000)) -> dict:
    """Peak memory of a local one-worker job over face crops of each size: flat, as rows stream to shards."""
    with tempfile.TemporaryDirectory(prefix="fer-batch-memory-") as tmp:
        root = Path(tmp)
        crops = build_corpus(root, 0, max(sizes), 0)["crops"]
        found = {}
        for size in sizes:
            subset = root / f"crops{size}"
            subset.mkdir()
            for path in sorted(crops.iterdir())[:size]:
                os.link(path, subset / path.name)
            found[str(size)] = timed_command(
                ["batch", str(subset), "--out", str(root / f"job{size}"), "--model", model, "--whole-image", "--quiet"]
            )
    return found
