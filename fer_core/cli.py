"""`fer-core` (also `python -m fer_core`): stats, train, evaluate, predict, runs, stop, promote, compact.

User errors exit with code 2 and one line on stderr, never a traceback (FER_DEBUG=1 shows one).
Keras is imported only by the commands that need it, so `stats` starts fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from pathlib import Path

from fer_core import CLASS_NAMES, __version__
from fer_core.bench import TRAIN_IMAGES
from fer_core.errors import FerError
from fer_core.inference import TTA_MODES
from fer_core.train_config import TrainConfig

# Keep TensorFlow's C++ start-up chatter out of the CLI's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except FerError as exc:
        print(f"fer-core: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fer-core: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user error: still one line unless debugging
        if os.environ.get("FER_DEBUG"):
            traceback.print_exc()
        print(f"fer-core: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer-core", description="FER2013 data, models, training and evaluation.")
    parser.add_argument("--version", action="version", version=f"fer-core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("stats", help="describe a dataset: counts per split and class, pixels, odd images")
    p.add_argument("--data", required=True, help="FER2013 folder or CSV")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-cache", action="store_true", help="decode again instead of reading the cache")
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser("train", help="train a model; writes a run directory")
    p.add_argument("--model", help="registered model name (see `fer-core models`)")
    p.add_argument("--data", help="FER2013 folder or CSV")
    p.add_argument("--config", help="a config.json to start from (flags override it)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted or stopped run")
    p.add_argument(
        "--start",
        metavar="RUN_DIR",
        help="train a run folder holding only its config.json (how the dashboard launches runs)",
    )
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="warm start: begin from the weights of a trained name, run folder "
        "or .keras file of the same model (optimizer and schedule fresh)",
    )
    p.add_argument(
        "--teacher",
        metavar="MODELS",
        help="distill: mix the mean flip-TTA probabilities of these trained names, run folders or "
        ".keras files (comma-separated) into each training image's target",
    )
    p.add_argument(
        "--distill-weight",
        type=float,
        help="the teachers' share of each target with --teacher, in (0, 1] (default 0.5)",
    )
    p.add_argument("--out", help="folder for new run directories (default runs/ or $FER_RUNS_DIR)")
    p.add_argument("--run-dir", help="exact path of the new run directory")
    p.add_argument("--epochs", type=int, help="number of epochs (a cap when --minutes is given)")
    p.add_argument("--minutes", type=float, help="time budget: end after this many minutes, keeping the best model")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, dest="learning_rate")
    p.add_argument("--limit", type=int, help="use the first N images of each split (quick trials)")
    p.add_argument("--seed", type=int)
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (0 = off)")
    p.add_argument("--optimizer", choices=TrainConfig.OPTIONS["optimizer"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument(
        "--lr-schedule",
        choices=TrainConfig.OPTIONS["lr_schedule"],
        help="decay over the epochs, or over the time budget when --minutes is given",
    )
    p.add_argument("--warmup-epochs", type=int)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--class-weights", choices=TrainConfig.OPTIONS["class_weights"])
    p.add_argument("--no-flip", dest="flip", action="store_false", default=None)
    p.add_argument("--rotation", type=float, dest="rotation_degrees", help="max rotation in degrees")
    p.add_argument("--zoom", type=float)
    p.add_argument("--shift", type=float)
    p.add_argument("--erasing", type=float)
    p.add_argument("--validation-split", type=float)
    p.add_argument(
        "--precision",
        choices=TrainConfig.OPTIONS["precision"],
        help="auto (default): mixed_bfloat16 on a GPU or a CPU with bf16 instructions, else float32",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model hyperparameter, VALUE as JSON (e.g. --param image_size=96)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines on stderr")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="metrics of a model or an ensemble on one split")
    p.add_argument("--model", required=True, help="NAME_OR_DIR[,NAME_OR_DIR...]; several = ensemble")
    p.add_argument("--data", required=True)
    p.add_argument("--split", help="default: PrivateTest, else PublicTest, else test, else all")
    p.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        default="none",
        choices=TTA_MODES,
        help="test-time augmentation: average over the mirror image (flip; the default of a bare --tta), "
        "and also over centre crops of 44 and 40 px scaled back to 48 and their mirrors (flip+zoom)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--output", help="also write the JSON metrics to this file")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser(
        "ensemble", help="measure the ensemble of all trained models (Home's ensemble row) into trained/ensemble.json"
    )
    p.add_argument("--data", required=True)
    p.add_argument("--split", help="default: PrivateTest, else PublicTest, else test")
    p.set_defaults(handler=cmd_ensemble)

    p = sub.add_parser("predict", help="classify the faces in image files (or every image in a folder)")
    p.add_argument(
        "--model",
        help="NAME_OR_DIR[,NAME_OR_DIR...]; several = ensemble (default: the trained model with the best "
        "reported accuracy)",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--csv", help="also write a row per face to this CSV file (with the model and TTA used)")
    p.add_argument("--whole-image", action="store_true", help="classify each whole image as one face")
    p.add_argument("--min-face", type=int, default=30, help="smallest face side in pixels")
    p.add_argument("--tta", default="none", choices=TTA_MODES, help="test-time augmentation (see evaluate --help)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("bench", help="measure inference latency/throughput, the live frame path and training speed")
    p.add_argument("--models", help="NAME_OR_DIR[,...] (default: every trained model, else untrained builds)")
    p.add_argument("--repeats", type=int, default=200, help="timed calls per latency measurement")
    p.add_argument(
        "--train-images",
        type=int,
        default=TRAIN_IMAGES,
        help=f"images per epoch in the training comparison (default {TRAIN_IMAGES})",
    )
    p.add_argument("--train-rounds", type=int, default=3, help="alternating timings of each side (the median is kept)")
    p.add_argument("--no-train", action="store_true", help="skip the training comparison")
    p.add_argument("--train-models", default="cnn", help="MODEL[,...] registry names for the training comparison")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("models", help="list registered models and trained models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("runs", help="list training runs and their status")
    p.add_argument("--out", help="runs folder (default runs/ or $FER_RUNS_DIR)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser("stop", help="ask a running training run to stop after its current batch")
    p.add_argument("run_dir")
    p.set_defaults(handler=cmd_stop)

    p = sub.add_parser(
        "promote",
        help="copy a finished run's best model to trained/<name>/ (never destroys one: see --replace, --restore)",
    )
    p.add_argument("run_dir", nargs="?", help="the finished run to promote")
    p.add_argument("--name", help="default: the run's model name, or <model>-<date> when trained/ has that name")
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace an existing trained/<name>/; the current version is kept in trained/.versions/<name>/",
    )
    p.add_argument(
        "--restore",
        metavar="NAME",
        help="bring back the newest kept version of trained/NAME/ (or --version); the current one is kept",
    )
    p.add_argument("--version", dest="restore_version", metavar="VERSION", help="with --restore: which kept version")
    p.add_argument("--list-versions", metavar="NAME", help="list the kept versions of trained/NAME/")
    p.add_argument(
        "--data",
        help="the dataset to measure on (default: the run's own, from its config.json; name a copy here "
        "for a run trained on another machine)",
    )
    p.add_argument(
        "--no-compact",
        action="store_true",
        help="copy the model as trained (default: float16 weights, float32 compute, metrics measured again)",
    )
    p.set_defaults(handler=cmd_promote)

    p = sub.add_parser("compact", help="store a .keras file's weights as float16 (half the size)")
    p.add_argument("model_file", help="a .keras file, or a folder holding model.keras")
    p.add_argument("--out", help="where to write (default: replace the file, atomically)")
    p.set_defaults(handler=cmd_compact)
    return parser


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def _warn_report(dataset) -> None:
    for line in dataset.report.messages():
        print(f"fer-core: warning: {line}", file=sys.stderr)


# ---- commands --------------------------------------------------------------------------------


def cmd_stats(args) -> int:
    from fer_core.data import load_dataset
    from fer_core.data.stats import compute_statistics

    dataset = load_dataset(args.data, use_cache=not args.no_cache)
    _warn_report(dataset)
    stats = compute_statistics(dataset)
    if args.json:
        _print_json(stats)
        return 0
    print(f"{dataset.root}: {stats['n']} images")
    header = f"{'class':<10}" + "".join(f"{s:>13}" for s in stats["splits"])
    print(header)
    for name in CLASS_NAMES:
        print(f"{name:<10}" + "".join(f"{stats['splits'][s][name]:>13}" for s in stats["splits"]))
    print(f"{'total':<10}" + "".join(f"{stats['totals'][s]:>13}" for s in stats["splits"]))
    imbalance = stats["imbalance"]
    print(
        f"imbalance ({imbalance['basis']}): {imbalance['ratio']:.1f}x ({imbalance['largest']} vs {imbalance['smallest']})"
    )
    pixels = stats["pixels"]
    print(f"pixels: mean {pixels['mean']:.1f}, std {pixels['std']:.1f}, range {pixels['min']}..{pixels['max']}")
    print(f"blank images: {stats['blank']['count']}; near-constant: {stats['near_constant']['count']}")
    return 0


def _parse_params(items: list[str]) -> dict:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FerError(f"--param takes KEY=VALUE. Received: {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def train_config_from_args(args) -> TrainConfig:
    """The TrainConfig a new `fer-core train` run gets: --config's settings, overridden by the flags,
    with the warm start and the teachers resolved (the GPU recipes are checked through this too).

    Raises:
        FerError: no model or data, or settings TrainConfig refuses.
    """
    base = {}
    if args.config:
        from fer_core.fileio import read_json

        base = read_json(args.config)
        if not isinstance(base, dict):
            raise FerError(f"{args.config}: not a readable JSON config")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if args.param:
        overrides["model_params"] = {**base.get("model_params", {}), **_parse_params(args.param)}
    settings = {**base, **overrides}
    if not settings.get("model"):
        raise FerError("no model given (--model NAME)")
    if not settings.get("data"):
        raise FerError("no dataset given (--data PATH)")
    settings["data"] = str(Path(settings["data"]).expanduser())
    if args.init:
        from fer_core.recipe import describe_init

        settings["init_from"] = describe_init(args.init, settings["model"])
    if args.teacher:
        from fer_core.recipe import describe_teachers

        weight = 0.5 if args.distill_weight is None else args.distill_weight
        settings["distill_from"] = describe_teachers(args.teacher, weight)
    elif args.distill_weight is not None:
        raise FerError("--distill-weight needs --teacher (the models to distil from)")
    return TrainConfig.from_dict(settings)


def cmd_train(args) -> int:
    from fer_core import training

    if args.resume and args.start:
        raise FerError("--resume and --start each name a run; give one")
    if args.resume:
        run = training.resume(args.resume, echo=not args.quiet)
    elif args.start:
        run = training.start_prepared(args.start, echo=not args.quiet)
    else:
        config = train_config_from_args(args)
        from fer_core.data import load_dataset

        if not Path(config.data).exists():
            raise FerError(f"dataset path does not exist: {config.data}")
        dataset = load_dataset(config.data)
        _warn_report(dataset)
        run = training.train(config, out=args.out, run_dir=args.run_dir, dataset=dataset, echo=not args.quiet)
    from fer_core.runs import read_run

    info = read_run(run)
    print(
        json.dumps(
            {
                "run_dir": str(run),
                "status": info.status,
                "epoch": info.epoch,
                "best_val_accuracy": info.best_val_accuracy,
            }
        )
    )
    return 0


def load_models(spec: str):
    """Comma-separated model references → (loaded models, their ModelRefs)."""
    from fer_core.artifacts import load_model, resolve_model

    refs = [resolve_model(part.strip()) for part in spec.split(",") if part.strip()]
    if not refs:
        raise FerError("no model given (--model NAME_OR_DIR[,NAME_OR_DIR...])")
    return [load_model(r) for r in refs], refs


def cmd_evaluate(args) -> int:
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate

    from fer_core.evaluation import selection_warning

    models, refs = load_models(args.model)
    names = [ref.name for ref in refs]
    dataset = load_dataset(args.data)
    _warn_report(dataset)
    result = evaluate(models, dataset, split=args.split, tta=args.tta, names=names)
    metrics = result.metrics
    for ref in refs:
        warning = selection_warning(ref.name, ref.metrics, dataset, metrics["split"])
        if warning:
            print(f"fer-core: warning: {warning}", file=sys.stderr)
    if args.output:
        from fer_core.fileio import write_json_atomic

        write_json_atomic(args.output, metrics)
    if args.json:
        _print_json(metrics)
        return 0
    title = " + ".join(names) + (f" ({args.tta} TTA)" if args.tta != "none" else "")
    print(f"{title} on {metrics['split']} ({metrics['n']} images)")
    print(
        f"accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  "
        f"weighted-F1 {metrics['weighted_f1']:.4f}  loss {metrics['loss']:.4f}  ECE {metrics['calibration']['ece']:.4f}"
    )
    print(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name, row in metrics["per_class"].items():
        print(f"{name:<10}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>10}")
    return 0


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


def cmd_ensemble(args) -> int:
    from fer_core.data import load_dataset
    from fer_core.ensemble import ensemble_file, write_ensemble_record

    dataset = load_dataset(args.data)
    _warn_report(dataset)
    record = write_ensemble_record(dataset, split=args.split)
    members = "+".join(m["name"] for m in record["members"])
    print(
        f"ensemble {members} on {record['split']} ({record['n']} images): accuracy {record['accuracy']:.4f}, "
        f"flip TTA {record['with_tta']['accuracy']:.4f}, flip+zoom TTA {record['with_flip_zoom']['accuracy']:.4f} "
        f"-> {ensemble_file()}"
    )
    return 0


def cmd_predict(args) -> int:
    inputs = image_inputs(args.images)
    if all(error for _path, error in inputs):
        for _path, error in inputs:
            print(f"fer-core: error: {error}", file=sys.stderr)
        return 2
    from fer_core.data.images import read_grayscale
    from fer_core.inference import Classifier, FaceDetector, classify_image, with_tta

    models, refs = load_models(args.model) if args.model else load_best_model()
    model_name = "+".join(ref.name for ref in refs)
    classifier = with_tta(Classifier(models), args.tta)
    detector = FaceDetector()
    results, failed = [], 0
    for image, error in inputs:  # reported as each is done, in the order given
        entry = {"file": image, "model": model_name, "tta": args.tta, "faces": [], "error": error}
        if error is None:
            try:
                gray = read_grayscale(image)
                entry["faces"] = [
                    f.to_dict() for f in classify_image(gray, classifier, detector, args.whole_image, args.min_face)
                ]
            except FerError as exc:
                entry["error"] = str(exc)
        results.append(entry)
        if entry["error"]:
            failed += 1
            sys.stdout.flush()
            print(f"fer-core: error: {entry['error']}", file=sys.stderr, flush=True)
        elif not args.json:
            if not entry["faces"]:
                print(f"{image}: no face found (try --whole-image)", flush=True)
            for face in entry["faces"]:
                top = max(face["probabilities"].values())
                print(f"{image}: box {face['box']} -> {face['label']} ({top:.1%})", flush=True)
    if args.json:
        _print_json(results)
    if args.csv:
        from fer_core.fileio import write_text_atomic

        write_text_atomic(args.csv, predictions_csv(results))
    return 2 if failed else 0


def predictions_csv(results: list[dict]) -> str:
    """A row per face (a file without faces: one row saying so; a refused file: its error)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "face", "x", "y", "w", "h", "label", *CLASS_NAMES, "model", "tta", "error"])
    for entry in results:
        tail = [entry["model"], entry["tta"], entry["error"] or ""]
        if entry["error"] or not entry["faces"]:
            writer.writerow(
                [entry["file"], 0, "", "", "", "", "" if entry["error"] else "no face found"] + [""] * 7 + tail
            )
        for k, face in enumerate(entry["faces"]):
            probabilities = [f"{face['probabilities'][c]:.4f}" for c in CLASS_NAMES]
            writer.writerow([entry["file"], k + 1, *face["box"], face["label"], *probabilities, *tail])
    return buffer.getvalue()


def load_best_model():
    """The trained model with the best reported accuracy, as load_models returns it."""
    from fer_core.artifacts import best_model, load_model, saved_models

    best = best_model(saved_models())
    if best is None:
        raise FerError("no trained models yet: name one with --model (a run folder or .keras file)")
    return [load_model(best)], [best]


def cmd_bench(args) -> int:
    from fer_core import bench

    if args.repeats < 1 or args.train_images < 1 or args.train_rounds < 1:
        raise FerError("--repeats, --train-images and --train-rounds must be >= 1")
    refs = [r.strip() for r in args.models.split(",") if r.strip()] if args.models else None
    train_models = [m.strip() for m in args.train_models.split(",") if m.strip()]
    result = bench.run(
        refs,
        repeats=args.repeats,
        train_images=args.train_images,
        train_rounds=args.train_rounds,
        train=not args.no_train,
        train_models=train_models,
    )
    if args.json:
        _print_json(result)
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
    print(
        f"Haar detection (640x480 -> 320 px): p50 {result['detect_ms']['p50']:.2f} ms, p95 {result['detect_ms']['p95']:.2f} ms"
    )
    every = result["frame_ms_detect_every_frame"]
    print(
        f"live frame with one face ({result['live_model']}): p50 {result['frame_ms']['p50']:.2f} ms, "
        f"p95 {result['frame_ms']['p95']:.2f} ms, {result['frames_per_s']:.0f} frames/s "
        f"({result['frame']}); detecting on every frame: p50 {every['p50']:.2f} ms, p95 {every['p95']:.2f} ms"
    )
    for name, ips in result.get("train_ips_per_model", {}).items():
        print(
            f"training {name}: fer-core {ips['fer_core']:.0f} img/s vs model.fit {ips['keras_fit']:.0f} img/s "
            f"(ratio {ips['ratio']:.3f})"
        )
    return 0


def cmd_models(args) -> int:
    from fer_core.artifacts import saved_models
    from fer_core.models import get_spec, list_models

    registered = {name: get_spec(name).description for name in list_models()}
    trained = {
        ref.name: {"accuracy": ref.metrics.get("accuracy"), "split": ref.metrics.get("split")} for ref in saved_models()
    }
    if args.json:
        _print_json({"registered": registered, "trained": trained})
        return 0
    for name, description in registered.items():
        print(f"{name:<15}{description}")
    print(
        "trained:",
        ", ".join(f"{k} ({v['accuracy']:.4f} on {v['split']})" if v["accuracy"] else k for k, v in trained.items())
        or "none",
    )
    return 0


def cmd_runs(args) -> int:
    from fer_core.runs import list_runs

    runs = list_runs(args.out)
    if args.json:
        _print_json(
            [
                {
                    "run_dir": str(r.path),
                    "status": r.status,
                    "model": r.model,
                    "epoch": r.epoch,
                    "epochs": r.epochs,
                    "best_val_accuracy": r.best_val_accuracy,
                }
                for r in runs
            ]
        )
        return 0
    for r in runs:
        best = f"{r.best_val_accuracy:.4f}" if r.best_val_accuracy is not None else "-"
        print(f"{r.name:<40}{r.status:<12}{r.model:<15}epoch {r.epoch}/{r.epochs}  best val_acc {best}")
    return 0


def cmd_stop(args) -> int:
    from fer_core.runs import request_stop

    request_stop(args.run_dir)
    print(f"stop requested: {args.run_dir}")
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


def cmd_promote(args) -> int:
    from fer_core.fileio import read_json
    from fer_core.runs import list_versions, promote, restore, versions_dir

    if args.list_versions:
        kept = list_versions(args.list_versions)
        for folder in kept:
            metrics = read_json(folder / "metrics.json", {}) or {}
            accuracy = metrics.get("accuracy")
            shown = f"{accuracy:.4f} on {metrics.get('split', '?')}" if isinstance(accuracy, float) else "no metrics"
            print(f"{folder.name}  {shown}")
        if not kept:
            print(f"no kept versions of {args.list_versions} in {versions_dir(args.list_versions)}")
        return 0
    if args.restore:
        if args.run_dir or args.replace:
            raise FerError("--restore NAME takes no run folder and no --replace")
        final = restore(args.restore, args.restore_version)
        metrics = read_json(final / "metrics.json", {}) or {}
        print(
            f"restored {final}: accuracy {metrics.get('accuracy', float('nan')):.4f} on {metrics.get('split', '?')}; "
            f"the version it replaced is kept in {versions_dir(args.restore)}"
        )
        return 0
    if args.restore_version:
        raise FerError("--version goes with --restore NAME")
    if not args.run_dir:
        raise FerError("name the run folder to promote (or --restore NAME, --list-versions NAME)")
    if not Path(args.run_dir).is_dir():
        raise FerError(f"no such run directory: {args.run_dir}")
    dataset = None
    if args.data:
        from fer_core.data import load_dataset

        dataset = load_dataset(args.data)
    final = promote(args.run_dir, args.name, compact=not args.no_compact, dataset=dataset, replace=args.replace)
    metrics = read_json(final / "metrics.json", {}) or {}
    print(
        f"promoted {args.run_dir} -> {final}: accuracy {metrics.get('accuracy', float('nan')):.4f} on "
        f"{metrics.get('split', '?')} (selected on {metrics.get('selection_split', '?')})"
    )
    return 0
