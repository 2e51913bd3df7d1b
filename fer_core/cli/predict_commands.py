"""`fer-core predict` and `fer-core video`: the faces in image and video files, classified."""

from __future__ import annotations

import sys
from pathlib import Path

from fer_core.cli.common import print_json, warn_unnamed_classes
from fer_core.errors import FerError
from fer_core.inference.detectors import DEFAULT_DETECTOR, DETECTORS
from fer_core.inference.tta import TTA_MODES
from fer_core.inference.options import DEFAULT_EVERY, DEFAULT_MIN_FACE


def add_parsers(sub) -> None:
    _add_predict_parser(sub)
    _add_video_parser(sub)


def _add_predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="classify the faces in image files (or every image in a folder)")
    p.add_argument(
        "--model",
        help="NAME_OR_DIR[,NAME_OR_DIR...]; several = ensemble (default: the default model, fer-core default)",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--csv", help="also write a row per face to this CSV file (with the model and TTA used)")
    p.add_argument("--whole-image", action="store_true", help="classify each whole image as one face")
    p.add_argument("--min-face", type=int, default=DEFAULT_MIN_FACE, help="smallest face side in pixels")
    p.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        choices=list(DETECTORS),
        help=f"face detector (default {DEFAULT_DETECTOR}: the most accurate)",
    )
    p.add_argument("--tta", default="none", choices=TTA_MODES, help="test-time augmentation (see evaluate --help)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_predict)


def image_inputs(arguments: list[str]) -> list[tuple[str, str | None]]:
    """(path, error) per image to classify, in the order given: a folder stands for the images in
    it (sorted, subfolders included); a missing path or an empty folder is an error of its own.
    Checked before any model loads, so a typo costs no Keras import."""
    from fer_core.data.images import IMAGE_EXTENSIONS

    inputs = []
    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            inputs += [(str(p), None) for p in found] or [(argument, f"{argument}: the folder holds no images")]
        elif path.is_file():
            inputs.append((argument, None))
        else:
            inputs.append((argument, f"{argument}: no such file or folder"))
    return inputs


def _add_video_parser(sub) -> None:
    from fer_core.inference.video import MAX_VIDEO_BYTES, MAX_VIDEO_MINUTES

    p = sub.add_parser("video", help="classify the faces of a video file, frame by frame, with stable face ids")
    p.add_argument("input", metavar="VIDEO")
    p.add_argument("--model", help="NAME_OR_DIR[,...] (default: the default model, fer-core default)")
    p.add_argument("--detector", default=DEFAULT_DETECTOR, choices=list(DETECTORS), help="face detector")
    p.add_argument("--every", type=int, default=DEFAULT_EVERY, help="analyse every N-th frame (default %(default)s)")
    p.add_argument("--min-face", type=int, default=DEFAULT_MIN_FACE, help="smallest face side in pixels")
    p.add_argument("--csv", help="write a row per face per analysed frame to this CSV file")
    p.add_argument("--output", help="write the video with the faces boxed and labelled to this MP4 file")
    p.add_argument(
        "--explain",
        action="store_true",
        help="with --output: draw where the model looks inside each box (attention_cnn's attention, else Grad-CAM)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=MAX_VIDEO_MINUTES,
        help=f"refuse longer videos (default {MAX_VIDEO_MINUTES:g})",
    )
    p.add_argument(
        "--max-mb", type=float, default=MAX_VIDEO_BYTES // 2**20, help="refuse larger files (default %(default)s MiB)"
    )
    p.add_argument("--json", action="store_true", help="print the summary and every row as JSON")
    p.set_defaults(handler=cmd_video)


def cmd_video(args) -> int:
    from fer_core.inference.video import probe
    from fer_core.inference.options import check_every
    from fer_core.recognizer import Recognizer

    if args.output and not args.output.lower().endswith(".mp4"):
        raise FerError(f"--output must name an .mp4 file. Received: {args.output}")
    if args.explain and not args.output:
        raise FerError("--explain draws into the annotated video: give --output FILE.mp4 too")
    check_every(args.every)
    if not args.max_minutes > 0 or not args.max_mb > 0:
        raise FerError("--max-minutes and --max-mb must be > 0")
    limits = {"max_minutes": args.max_minutes, "max_bytes": round(args.max_mb * 2**20)}
    probe(args.input, **limits)  # a bad file is refused before any model loads
    recognizer = Recognizer(args.model, detector=args.detector, min_face=args.min_face)
    warn_unnamed_classes(recognizer.refs)
    result = recognizer.video(args.input, every=args.every, output=args.output, explain=args.explain, **limits)
    if args.csv:
        from fer_core.fileio import write_text_atomic

        write_text_atomic(args.csv, result.to_csv())
    summary = result.summary()
    if args.json:
        print_json(
            {
                "file": args.input,
                "model": recognizer.model_name,
                "detector": args.detector,
                "every": args.every,
                "frames_read": result.frames_read,
                "frames_analysed": result.frames_analysed,
                "summary": summary.to_dict(orient="records"),
                "rows": result.frame().to_dict(orient="records"),
            }
        )
        return 0
    info = result.info
    print(
        f"{args.input}: {info.width}x{info.height}, {info.fps:.1f} frames/s, {result.frames_read} frames read, "
        f"{result.frames_analysed} analysed (every {args.every}); {summary.shape[0]} faces; model "
        f"{recognizer.model_name}, detector {args.detector}"
    )
    for record in summary.to_dict(orient="records"):
        shares = ", ".join(f"{c} {record[c]:.0%}" for c in recognizer.classes if record[c] >= 0.005)
        print(f"face {record['face']}: in {record['frames']} analysed frames; {shares}")
    if args.output:
        print(f"annotated video: {args.output}" + (" (with where the model looks)" if args.explain else ""))
    return 0


def cmd_predict(args) -> int:
    inputs = image_inputs(args.images)
    if all(error for _path, error in inputs):
        for _path, error in inputs:
            print(f"fer-core: error: {error}", file=sys.stderr)
        return 2
    from fer_core.recognizer import ImageResult, Recognizer

    recognizer = Recognizer(args.model, detector=args.detector, tta=args.tta, min_face=args.min_face)
    warn_unnamed_classes(recognizer.refs)
    used = {"model": recognizer.model_name, "tta": args.tta, "detector": args.detector}
    results, failed = [], 0
    for image, error in inputs:  # reported as each is done, in the order given
        if error is None:
            result = recognizer.results([image], whole_image=args.whole_image)[0]
        else:
            result = ImageResult(image, error=error)
        results.append(result)
        if result.error:
            failed += 1
            sys.stdout.flush()
            print(f"fer-core: error: {result.error}", file=sys.stderr, flush=True)
        elif not args.json:
            if not result.faces:
                print(f"{image}: no face found (try --whole-image)", flush=True)
            for face in result.faces:
                print(f"{image}: box {list(face.box)} -> {face.label} ({face.confidence:.1%})", flush=True)
    if args.json:
        print_json([{**result.to_dict(), **used} for result in results])
    if args.csv:
        from fer_core.fileio import write_text_atomic

        write_text_atomic(args.csv, predictions_csv(results, recognizer.classes, used))
    return 2 if failed else 0


def predictions_csv(results, classes, used: dict) -> str:
    """A row per face (a file without faces: one row saying so; a refused file: its error)."""
    from fer_core.recognizer import results_frame

    return results_frame(results, classes, used).to_csv(index=False)
