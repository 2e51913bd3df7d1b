"""`fer-core train`, `runs`, `stop`, `promote`: runs and the trained models they become."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from fer_core.cli.common import print_json, warn_report
from fer_core.errors import FerError
from fer_core.training.config import TrainConfig


def add_parsers(sub) -> None:
    p = sub.add_parser("train", help="train a model; writes a run directory")
    p.add_argument("--model", help="registered model name (see `fer-core models`)")
    p.add_argument("--data", help="a dataset: FER2013's folder or CSV, or any folder of class folders or labelled CSV")
    p.add_argument("--config", help="a config.json to start from (flags override it)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted or stopped run")
    p.add_argument(
        "--start",
        metavar="RUN_DIR",
        help="train a run folder holding only its config.json (how the dashboard launches runs)",
    )
    _add_recipe_flags(p)
    p.add_argument("--out", help="folder for new run directories (default runs/ or $FER_RUNS_DIR)")
    p.add_argument("--run-dir", help="exact path of the new run directory")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines on stderr")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser(
        "crossval",
        help="K-fold cross-validation that keeps each group (subject) on one side: a run per fold",
    )
    p.add_argument("--model", help="registered model name")
    p.add_argument("--data", help="the dataset (its classes are the model's)")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--out", help="the crossval folder (default runs/crossval-<time>-<model>)")
    p.add_argument("--resume", metavar="DIR", help="continue a stopped cross-validation from its finished folds")
    p.add_argument("--config", help="a config.json to start from (flags override it)")
    _add_recipe_flags(p)
    p.add_argument("--json", action="store_true", help="print crossval.json")
    p.set_defaults(handler=cmd_crossval)

    p = sub.add_parser("devices", help="what a training run would use here: backend, devices (--devices N|all)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_devices)

    p = sub.add_parser("runs", help="list training runs and their status")
    p.add_argument("--out", help="runs folder (default runs/ or $FER_RUNS_DIR)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_runs)

    p = sub.add_parser(
        "stop",
        help="ask a running training run, cross-validation or batch job to stop (a batch job after the units in flight)",
    )
    p.add_argument("run_dir", help="a run folder, or a cross-validation's")
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
        "--again", action="store_true", help="promote a run already promoted, as a second model under another name"
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


def _add_recipe_flags(p) -> None:
    """The flags that make a run's TrainConfig, shared by `train` and `crossval`."""
    p.add_argument(
        "--detect-faces",
        action="store_true",
        default=None,
        help="the images are photos, not face crops: find each one's largest face first (images "
        "without one are skipped and named)",
    )
    p.add_argument(
        "--group-by",
        metavar="REGEX",
        help="the group (subject) of each image: the regex's first group on its file name, e.g. '^(S\\d+)_' "
        "(default: a CSV's group column); held-out faces and folds never split a group",
    )
    p.add_argument(
        "--init",
        metavar="MODEL",
        help="warm start: begin from the weights of a trained name, run folder "
        "or .keras file of the same model (optimizer and schedule fresh); for a dataset with other "
        "classes the body is kept and a new head built (transfer)",
    )
    p.add_argument(
        "--freeze-epochs",
        type=int,
        help="with --init: train only the new head for N epochs, body frozen, then every layer at a tenth of the rate",
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
        "--devices",
        type=_device_count,
        help="train on N devices, or all the backend sees, data-parallel (JAX backend; default 1)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model hyperparameter, VALUE as JSON (e.g. --param image_size=96)",
    )


def _device_count(text: str):
    """`--devices`: a count as a number, anything else as given (TrainConfig refuses it in one line)."""
    return int(text) if text.strip().lstrip("-").isdigit() else text


def train_config_from_args(args) -> TrainConfig:
    """The TrainConfig a new `fer-core train` run gets from the flags (`build_config` does the
    work; the GPU recipes are checked through this too)."""
    from fer_core.training.recipe import build_config

    return build_config(
        vars(args),
        config_file=args.config,
        params=args.param,
        init=args.init,
        teachers=args.teacher,
        distill_weight=args.distill_weight,
    )


def cmd_train(args) -> int:
    from fer_core.training import loop as training

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
        warn_report(dataset)
        run = training.train(config, out=args.out, run_dir=args.run_dir, dataset=dataset, echo=not args.quiet)
    from fer_core.training.runs import read_run

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


def cmd_devices(args) -> int:
    from fer_core.training.devices import describe_devices, devices_text

    found = describe_devices()
    print(json.dumps(found) if args.json else devices_text(found))
    return 0


def cmd_runs(args) -> int:
    from fer_core.training.runs import list_runs

    runs = list_runs(args.out)
    if args.json:
        print_json(
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
    from fer_core.training.crossval_runs import is_crossval, request_crossval_stop
    from fer_core.training.runs import request_stop

    from fer_core.batch.job import is_job, request_stop as request_job_stop

    if is_job(args.run_dir):
        request_job_stop(args.run_dir)
    elif is_crossval(args.run_dir):
        request_crossval_stop(args.run_dir)
    else:
        request_stop(args.run_dir)
    print(f"stop requested: {args.run_dir}")
    return 0


def cmd_promote(args) -> int:
    from fer_core.fileio import read_json
    from fer_core.training.promote import list_versions, measured_on, promote, restore, versions_dir

    if args.list_versions:
        kept = list_versions(args.list_versions)
        for folder in kept:
            print(f"{folder.name}  {measured_on(folder)}")
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
    dataset = None
    if args.data:
        from fer_core.data import load_dataset

        dataset = load_dataset(args.data)
    final = promote(
        args.run_dir, args.name, compact=not args.no_compact, dataset=dataset, replace=args.replace, again=args.again
    )
    metrics = read_json(final / "metrics.json", {}) or {}
    print(
        f"promoted {args.run_dir} -> {final}: accuracy {metrics.get('accuracy', float('nan')):.4f} on "
        f"{metrics.get('split', '?')} (selected on {metrics.get('selection_split', '?')})"
    )
    return 0


# A cross-validation asked for without a length: an hour in all, shared by the folds.
DEFAULT_CROSSVAL_MINUTES = 60.0


def _say_estimate(config, folds: int | None = None) -> None:
    """The estimated length, on stderr before the work starts (what the Train page shows)."""
    from fer_core.training.estimate import estimate_run

    try:
        estimate = estimate_run(config, folds=folds)
    except FerError:
        return  # the data is checked, with its own error, when it loads
    print(f"fer-core: estimated length: {estimate.describe(config.epochs)}", file=sys.stderr)


def cmd_crossval(args) -> int:
    from fer_core.cli.common import print_json
    from fer_core.training.crossval import crossval

    budgeted = ""
    if args.resume:
        from fer_core.training.crossval_runs import resume_settings

        out = Path(args.resume)
        config, folds, group_by = resume_settings(out)
    else:
        if not args.model or not args.data:
            raise FerError("crossval needs --model and --data (or --resume DIR)")
        from fer_core.training.crossval import crossval_folder

        config, folds, group_by = train_config_from_args(args), args.folds, args.group_by
        out = Path(args.out) if args.out else crossval_folder(config.model, create=False)
        if (out / "crossval.json").exists():
            raise FerError(f"{out}: holds a finished cross-validation already; name another --out")
        if not config.minutes and args.epochs is None:
            config = dataclasses.replace(config, minutes=DEFAULT_CROSSVAL_MINUTES)
            budgeted = (
                f"no --minutes or --epochs: the cross-validation is budgeted {DEFAULT_CROSSVAL_MINUTES:g} min "
                f"({DEFAULT_CROSSVAL_MINUTES / max(folds, 1):.0f} a fold; --minutes changes it)"
            )

    def ready() -> None:  # the folds are made: what was chosen for the user, and how long it takes
        if budgeted:
            print(f"fer-core: {budgeted}", file=sys.stderr)
        _say_estimate(config, folds)

    result = crossval(config, folds, out, group_by=group_by, echo=False, ready=ready)
    if args.json:
        print_json(result)
        return 0
    for row in result["per_fold"]:
        print(
            f"fold {row['fold']}: accuracy {row['accuracy']:.4f}, macro-F1 {row['macro_f1']:.4f} "
            f"({row['train_images']} training / {row['test_images']} test images)"
        )
    accuracy, f1 = result["accuracy"], result["macro_f1"]
    print(
        f"{result['folds']} folds, {result['groups'] or 'no'} groups: accuracy {accuracy['mean']:.4f} ± "
        f"{accuracy['std']:.4f}, macro-F1 {f1['mean']:.4f} ± {f1['std']:.4f}; pooled {result['pooled']['accuracy']:.4f}"
    )
    near = result["near_identical_across_folds"]
    if near["count"]:
        print(
            f"fer-core: {near['count']} group(s) of near-identical images sit in different folds "
            f"(e.g. {', '.join(Path(f).name for f in near['examples'][0])}): the folds' numbers are inflated; "
            "--group-by with a subject pattern keeps each person in one fold",
            file=sys.stderr,
        )
    print(f"written: {out / 'crossval.json'}")
    return 0
