"""`fer-core serve` (the HTTP service) and `fer-core export` (ONNX and TFLite files)."""

from __future__ import annotations

import os

from fer_core.errors import FerError


def add_parsers(sub) -> None:
    from fer_core.inference.detectors import DETECTORS
    from fer_core.inference.tta import TTA_MODES

    p = sub.add_parser("serve", help="serve the models over HTTP (FastAPI on uvicorn; OpenAPI at /docs)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", help="the default model: NAME[,NAME...] (default: fer-core default's)")
    p.add_argument("--detector", choices=list(DETECTORS), help="the default face detector")
    p.add_argument("--tta", default="none", choices=TTA_MODES, help="the default test-time augmentation")
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own models (default 1)")
    p.add_argument("--max-body-mb", type=float, help="refuse larger request bodies with 413 (default 64)")
    p.add_argument(
        "--max-queue",
        type=int,
        help="analyses in progress or waiting, per worker, before 503 + Retry-After (default 32)",
    )
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser(
        "export", help="write a trained model as an ONNX or TFLite file with its labels and preprocessing"
    )
    p.add_argument("model", metavar="MODEL", help="a trained model's name, a run folder or a .keras file")
    p.add_argument("--format", required=True, choices=("onnx", "tflite"))
    p.add_argument("--quantize", choices=("int8", "float16"), help="smaller weights (accuracy measured with --data)")
    p.add_argument("--output", help="the folder to write (default: exports/<model>-<format>[-<quantize>])")
    p.add_argument("--data", help="FER2013 (or another dataset) to check the export on its test split")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_export)


def cmd_serve(args) -> int:
    if not 1 <= args.port <= 65535:
        raise FerError(f"--port must be 1-65535. Received: {args.port}")
    if not 1 <= args.workers <= 64:
        raise FerError(f"--workers must be 1-64. Received: {args.workers}")
    if args.max_body_mb is not None and not args.max_body_mb > 0:
        raise FerError(f"--max-body-mb must be > 0. Received: {args.max_body_mb}")
    if args.max_queue is not None and not 1 <= args.max_queue <= 10_000:
        raise FerError(f"--max-queue must be 1-10000. Received: {args.max_queue}")
    if args.model:  # a typo is refused here, not by a server that never becomes healthy
        from fer_core.cli.common import warn_unnamed_classes
        from fer_core.recognizer import Recognizer

        warn_unnamed_classes(Recognizer(args.model, detector=args.detector, tta=args.tta).refs)
    try:
        import uvicorn
    except ImportError:
        raise FerError("the service needs fastapi and uvicorn: pip install -e . installs them") from None
    # Each worker process builds the app from these (uvicorn's factory), so all serve the same.
    for name, value in (
        ("FER_SERVE_MODEL", args.model),
        ("FER_SERVE_DETECTOR", args.detector),
        ("FER_SERVE_TTA", args.tta),
        ("FER_SERVE_MAX_BODY_MB", args.max_body_mb),
        ("FER_SERVE_MAX_QUEUE", args.max_queue),
    ):
        if value is not None:
            os.environ[name] = str(value)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not os.environ.get("FER_API_KEY"):
        print(f"fer-core: warning: serving on {args.host} without FER_API_KEY: anyone who reaches it can use it")
    uvicorn.run(
        "fer_core.serve.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )
    return 0


def cmd_export(args) -> int:
    from fer_core.cli.common import print_json
    from fer_core.export import export_model

    report = export_model(args.model, args.format, quantize=args.quantize, output=args.output, data=args.data)
    if args.json:
        print_json(report)
        return 0
    check = report["check"]
    print(
        f"wrote {report['model_file']} ({report['bytes'] / 1e6:.1f} MB) with labels.txt, preprocess.json, MODEL_CARD.md"
    )
    print(
        f"checked against the Keras model on {check['faces']} {check['source']}: max |probability difference| "
        f"{check['max_abs_difference']:.2g}, top-1 agreement {check['top1_agreement']:.2%}"
    )
    if "accuracy" in report:
        measured = report["accuracy"]
        print(
            f"accuracy on {measured['split']} ({measured['n']} faces): {measured['export']:.4f} exported, "
            f"{measured['keras']:.4f} the Keras model"
        )
    return 0
