"""A corpus in one job: thousands of photos and hours of video, resumable, on this machine's
processes or a Ray cluster.

    from fer_core import batch
    faces = batch.load("out/")                            # a row per face per analysed frame
    shares = batch.summary("out/", by=["participant"])    # each class's share, 95% intervals

Modules: `inputs` (files, folders, globs, a manifest; images and videos told apart by content;
video segments), `worker` (one Recognizer a worker: the facade does the work), `engines` (local
processes; Ray Data), `job` (units, shards as results come in, track ids joined across segments,
progress in job.json), `store` (the folder: atomic shards, the ledger that makes a rerun skip
what is done, `load`, `load_files`), `summary`, `launch` (a dashboard job in its own process: start,
resume, stop) and `bench` (the benchmark's batch section). `fer-core batch` and the Batch page call `run_job`.
"""

from fer_core.batch.store import load, load_files
from fer_core.batch.summary import summary

__all__ = ["load", "load_files", "summary"]
