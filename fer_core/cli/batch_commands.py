"""`fer-core batch`: a corpus of photos and videos in one resumable job (fer_core.batch), and
`fer-core batch --summary DIR --by COLUMNS`: each class's share per group with its interval."""

from __future__ import annotations

import dataclasses
import sys

from fer_core.cli.common import print_json
from fer_core.errors import FerError
from fer_core.inference.detectors import DEFAULT_DETECTOR, DETECTORS
from fer_core.inference.tta import TTA_MODES


def add_parsers(sub) -> None:
    from fer_core.batch.engines import ENGINES
    from fer_core.inference.options import DEFAULT_EVERY, DEFAULT_MIN_FACE

    p = sub.add_parser(
        "batch",
        help="analyse a corpus of photos and videos in one resumable job (this machine's processes or a Ray cluster)",
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="files, folders (recursive) or globs")
    p.add_argument("--out", help="the job's folder (a rerun into it skips what is done)")
    p.add_argument(
        "--manifest", help="a CSV with a `path` column (relative to the CSV); its other columns go into every row"
    )
    p.add_argument("--model", help="NAME_OR_DIR[,...] (default: the default model, `fer-core default`)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, choices=list(DETECTORS), help="face detector")
    p.add_argument(
        "--every", type=int, default=DEFAULT_EVERY, help="videos: analyse every N-th frame (default %(default)s)"
    )
    p.add_argument("--tta", default="none", choices=TTA_MODES, help="test-time augmentation")
    p.add_argument("--min-face", type=int, default=DEFAULT_MIN_FACE, help="smallest face side in pixels")
    p.add_argument("--whole-image", action="store_true", help="the inputs are face crops: no detection")
    p.add_argument("--engine", default="local", choices=ENGINES, help="local processes (default) or Ray Data")
    p.add_argument("--workers", type=int, default=1, help="worker processes (local) or actors (ray); default 1")
    p.add_argument("--address", help="ray: the cluster to join (default RAY_ADDRESS, else an embedded one)")
    p.add_argument("--gpus", type=float, help="ray: GPUs per actor (default: 1 where the cluster has GPUs)")
    p.add_argument(
        "--segment-seconds",
        type=float,
        default=300.0,
        help="videos are cut into segments of this length that run in parallel (default 300)",
    )
    p.add_argument("--summary", metavar="DIR", help="print a finished job's shares per group instead of running")
    p.add_argument("--by", default="", help="with --summary: the manifest columns to group by, comma-separated")
    p.add_argument("--json", action="store_true", help="with --summary: print JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(handler=cmd_batch)


def cmd_batch(args) -> int:
    if args.summary:
        return _summary(args)
    from fer_core.batch.inputs import gather
    from fer_core.batch.job import run_job
    from fer_core.batch.worker import Settings

    if not args.out:
        raise FerError("--out DIR is needed: the folder the job writes (and a rerun continues)")
    inputs = gather(args.inputs, args.manifest)
    settings = Settings(
        model=args.model or "",
        detector=args.detector,
        tta=args.tta,
        min_face=args.min_face,
        every=args.every,
        whole_image=args.whole_image,
        segment_seconds=args.segment_seconds,
    )
    if not args.model:
        from fer_core.catalog import default_or_error

        settings = dataclasses.replace(settings, model=default_or_error().name)
    echo = None if args.quiet else _echo()
    counts = run_job(inputs, args.out, settings, args.engine, args.workers, args.address, args.gpus, echo=echo)
    if echo is not None:
        print(file=sys.stderr)
    line = (
        f"{counts.finished} of {counts.inputs} inputs: {counts.done} analysed, {counts.skipped} done before, "
        f"{counts.failed} failed; {counts.frames} frames, {counts.faces} faces -> {args.out}"
    )
    print(line)
    if counts.finished < counts.inputs:
        print(f"fer-core: stopped with {counts.inputs - counts.finished} inputs left: run it again to go on")
        return 1
    if counts.failed:
        print(f"fer-core: {counts.failed} inputs failed: their reasons are in {args.out}/files.parquet")
        return 1
    return 0


def _echo():
    def echo(counts) -> None:
        print(
            f"\r{counts.finished}/{counts.inputs} inputs, {counts.failed} failed, {counts.faces} faces",
            end="",
            file=sys.stderr,
            flush=True,
        )

    return echo


def _summary(args) -> int:
    from fer_core.batch import summary

    by = [column.strip() for column in args.by.split(",") if column.strip()]
    table = summary(args.summary, by=by)
    if args.json:
        print_json(table.to_dict(orient="records"))
        return 0
    for row in table.to_dict(orient="records"):
        group = " ".join(f"{column}={row[column]}" for column in by) or "all"
        print(
            f"{group:<30} {row['class']:<10} {row['share']:6.1%}  [{row['low']:6.1%}, {row['high']:6.1%}]  "
            f"{row['files']} files, {row['faces']} faces"
        )
    return 0
