"""`fer-core models`, `default`, `compact`, `bench`: the registry, the default model, stored files, speed."""

from __future__ import annotations

from fer_core.bench import TRAIN_IMAGES
from fer_core.cli.common import print_json
from fer_core.errors import FerError


def add_parsers(sub) -> None:
    p = sub.add_parser("models", help="list registered models and trained models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("default", help="show the default model, or make a trained model the default")
    p.add_argument("name", nargs="?", help="a trained model's name (omit to show the default)")
    p.add_argument("--clear", action="store_true", help="forget the choice: the best FER2013 model again")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_default)

    p = sub.add_parser("compact", help="store a .keras file's weights as float16 (half the size)")
    p.add_argument("model_file", help="a .keras file, or a folder holding model.keras")
    p.add_argument("--out", help="where to write (default: replace the file, atomically)")
    p.set_defaults(handler=cmd_compact)
    p = sub.add_parser("bench", help="measure inference latency/throughput, the live frame path and training speed")
    p.add_argument("--models", help="NAME_OR_DIR[,...] (default: every trained model, else untrained builds)")
    p.add_argument(
        "--repeats",
        type=int,
        default=200,
        help="timed calls per latency measurement (the video clip and the detection timings scale with it; default %(default)s)",
    )
    p.add_argument(
        "--train-images",
        type=int,
        default=TRAIN_IMAGES,
        help=f"images per epoch in the training comparison (default {TRAIN_IMAGES})",
    )
    p.add_argument("--train-rounds", type=int, default=3, help="alternating timings of each side (the median is kept)")
    p.add_argument("--no-train", action="store_true", help="skip the training comparison")
    p.add_argument("--train-models", default="cnn", help="MODEL[,...] registry names for the training comparison")
    p.add_argument("--no-detection", action="store_true", help="skip the face-detection benchmark")
    p.add_argument(
        "--data", help="a FER2013 copy whose PublicTest faces the detection benchmark pastes (default: drawn faces)"
    )
    p.add_argument(
        "--batch-inputs",
        type=int,
        default=0,
        help="also time fer-core batch (local and Ray, 1 and 2 workers) against predict and video on this many "
        "built photos and crops (default 0: skip)",
    )
    p.add_argument(
        "--batch-only", action="store_true", help="only the batch section (with --batch-inputs), and its memory check"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_bench)


def cmd_models(args) -> int:
    from fer_core.artifacts import saved_models
    from fer_core.catalog import default_model, model_summary, models_by_dataset
    from fer_core.models import get_spec, list_models

    registered = {name: get_spec(name).description for name in list_models()}
    refs = saved_models()
    default = default_model(refs)
    trained = {ref.name: model_summary(ref, getattr(default, "name", None)) for ref in refs}
    if args.json:
        print_json({"registered": registered, "trained": trained})
        return 0
    for name, description in registered.items():
        print(f"{name:<15}{description}")
    if not refs:
        print("trained: none")
    for tag, members in models_by_dataset(refs).items():
        listed = []
        for ref in members:
            row = trained[ref.name]
            said = f"{ref.name} ({row['accuracy']:.4f} on {row['split']})" if row["accuracy"] else ref.name
            listed.append(said + (" [default]" if row["default"] else ""))
        print(f"trained on {tag.title}: {', '.join(listed)}")
    return 0


def cmd_default(args) -> int:
    from fer_core.catalog import default_model, default_reason, model_dataset, set_default_model

    if args.clear and args.name:
        raise FerError("give a model name or --clear, not both")
    if args.clear:
        set_default_model(None)
    elif args.name:
        set_default_model(args.name)
    ref = default_model()
    if ref is None:
        raise FerError("no trained models yet: train one and promote it (fer-core promote RUN)")
    tag = model_dataset(ref)
    if args.json:
        print_json({"model": ref.name, "why": default_reason(ref), "dataset": tag.to_dict()})
        return 0
    print(f"{ref.name}: {default_reason(ref)}; classes {', '.join(tag.classes)}")
    return 0


def cmd_compact(args) -> int:
    from fer_core.artifacts import compact_model_file, resolve_model

    source = resolve_model(args.model_file).model_file
    report = compact_model_file(source, args.out)
    print(
        f"compacted {source} -> {args.out or source}: {report['bytes_before'] / 1e6:.1f} MB -> "
        f"{report['bytes_after'] / 1e6:.1f} MB, max |probability difference| {report['max_abs_difference']:.2g}"
    )
    return 0


def cmd_bench(args) -> int:
    from fer_core import bench

    if args.repeats < 1 or args.train_images < 1 or args.train_rounds < 1:
        raise FerError("--repeats, --train-images and --train-rounds must be >= 1")
    from fer_core.batch.bench import START_INPUTS

    if args.batch_inputs < 0 or 0 < args.batch_inputs <= START_INPUTS or (args.batch_only and not args.batch_inputs):
        # the start-up probe takes that many inputs: a corpus must be larger
        raise FerError(
            f"--batch-inputs must be > {START_INPUTS} (0: no batch section; needed with --batch-only). Received: {args.batch_inputs}"
        )
    refs = [r.strip() for r in args.models.split(",") if r.strip()] if args.models else None
    if args.batch_only:
        return _bench_batch(args, refs)
    train_models = [m.strip() for m in args.train_models.split(",") if m.strip()]
    result = bench.run(
        refs,
        repeats=args.repeats,
        train_images=args.train_images,
        train_rounds=args.train_rounds,
        train=not args.no_train,
        train_models=train_models,
        detection=not args.no_detection,
        data=args.data,
    )
    if args.batch_inputs:
        from fer_core.batch.bench import bench_batch

        result["batch"] = bench_batch(_bench_model(refs), inputs=args.batch_inputs)
    if args.json:
        print_json(result)
        return 0
    env = result["environment"]
    print(f"{env['cpu']} ({env['cores']} cores), {env['backend']} backend, keras {env['keras']}")
    print(
        f"{'model':<24}{'engine':>7}{'fast p50':>10}{'p95':>8}{'keras p50':>11}{'predict p50':>13}{'speedup':>9}"
        f"{'batch img/s (engine)':>22}"
    )
    for name, lat in result["latency_ms"].items():
        base, compiled = result["baseline_latency_ms"][name], result["keras_compiled_latency_ms"][name]
        print(
            f"{name:<24}{result['engine'][name]:>7}{lat['p50']:>8.2f}ms{lat['p95']:>6.2f}ms{compiled['p50']:>9.2f}ms"
            f"{base['p50']:>11.2f}ms{result['latency_speedup'][name]:>8.1f}x{result['throughput_ips'][name]:>13.0f}"
            f" ({result['batch_engine'][name]})"
        )
    for detector, live in result["live"].items():
        every = live["frame_ms_detect_every_frame"]
        print(
            f"live frame with one face ({result['live_model']}, {detector}: {live['frame']}): "
            f"p50 {live['frame_ms']['p50']:.2f} ms, p95 {live['frame_ms']['p95']:.2f} ms, "
            f"{live['frames_per_s']:.0f} frames/s; detecting on every frame p50 {every['p50']:.2f} ms; "
            f"detection alone p50 {live['detect_ms']['p50']:.2f} ms"
        )
    print(
        f"video files ({result['video_clip']}): "
        + ", ".join(f"{k} {v:.0f} frames/s" for k, v in result["video_frames_per_s"].items())
    )
    detection = result.get("detection")
    if detection:
        print(f"face detection on the benchmark scenes ({detection['faces_pasted']} pasted, and photos):")
        for detector, found in detection.items():
            if detector == "faces_pasted":
                continue
            print(
                f"  {detector:<10} found {found['faces_found']} of {found['faces']} ({found['recall']:.0%}); "
                f"phantoms {found['phantoms_in_scenes_with_faces']} in scenes with faces, "
                f"{found['phantoms_in_empty_scenes']} in {found['empty_scenes']} empty ones; "
                f"640x480 frame p50 {found['frame_ms']['p50']:.1f} ms; by side {found['recall_by_face_side']}; "
                f"by turn {found['recall_by_turn']}; photos {found['photos']}; crowd: "
                + ", ".join(f"{case} {share}" for case, share in found["crowd"].items())
                + f" ({found['phantoms_in_crowd_scenes']} phantoms)"
            )
    for name, ips in result.get("train_ips_per_model", {}).items():
        print(
            f"training {name}: fer-core {ips['fer_core']:.0f} img/s vs model.fit {ips['keras_fit']:.0f} img/s "
            f"(ratio {ips['ratio']:.3f})"
        )
    return 0


def _bench_model(refs) -> str:
    from fer_core.catalog import default_or_error

    return refs[0] if refs else default_or_error().name


def _start_and_workers_rate(row: dict) -> str:
    """The start-up and the rate in the workers' own time, where measured."""
    said = f", {row['start_seconds']:.1f} s to start" if "start_seconds" in row else ""
    if row.get("per_second_in_workers"):
        said += f", {row['per_second_in_workers']:.1f} in the workers' time"
    return said


def _bench_batch(args, refs) -> int:
    from fer_core.backend import environment
    from fer_core.batch.bench import bench_batch, bench_memory

    model = _bench_model(refs)
    result = {"environment": environment(), "batch": bench_batch(model, inputs=args.batch_inputs)}
    result["batch"]["memory_by_inputs"] = bench_memory(model)
    if args.json:
        print_json(result)
        return 0
    env = result["environment"]
    print(f"{env['cpu']} ({env['cores']} cores), {env['backend']} backend; model {model}")
    for corpus in ("photos", "crops", "video"):
        rows = result["batch"].get(corpus, {})
        unit = "frames/s" if corpus == "video" else "inputs/s"
        print(
            f"{corpus}: "
            + ", ".join(
                f"{name} {row['per_second']:.1f} {unit}{_start_and_workers_rate(row)} (peak {row['peak_mb']} MB)"
                for name, row in rows.items()
            )
        )
    memory = result["batch"]["memory_by_inputs"]
    print(
        "memory, one local worker over crops: " + ", ".join(f"{n} inputs {r['peak_mb']} MB" for n, r in memory.items())
    )
    return 0
