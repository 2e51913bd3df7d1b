"""`fer-core evaluate`, `ensemble`: metrics of models on a split; `review`: suspect labels."""

from __future__ import annotations

import sys
from pathlib import Path

from fer_core.cli.common import load_models, print_json, warn_report
from fer_core.errors import FerError
from fer_core.inference.tta import TTA_MODES


def add_parsers(sub) -> None:
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

    p = sub.add_parser(
        "review",
        help="rank a cross-validated dataset's images whose given label the out-of-fold model doubts (confident learning)",
    )
    p.add_argument("crossval_dir", help="a finished cross-validation folder (fer-core crossval)")
    p.add_argument("--csv", help="write the suspects to this CSV")
    p.add_argument(
        "--top",
        type=int,
        help="only the N most doubted, printed, in the CSV and in --json (default: 20 printed, every one in them)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_review)


def cmd_evaluate(args) -> int:
    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate

    from fer_core.evaluation import selection_warning

    models, refs = load_models(args.model)
    names = [ref.name for ref in refs]
    dataset = load_dataset(args.data)
    warn_report(dataset)
    from fer_core.artifacts import shared_classes

    classes = shared_classes(refs)
    from fer_core.evaluation.unseen import unseen_by

    dataset, split, note = unseen_by(refs, dataset, args.split)  # never a face one of them learned
    if note:
        print(f"fer-core: {note}", file=sys.stderr)
    result = evaluate(models, dataset, split=split, tta=args.tta, names=names, classes=classes)
    metrics = result.metrics
    if metrics.get("left_out_classes"):
        print(
            f"fer-core: warning: the model does not know {', '.join(metrics['left_out_classes'])}: "
            "their images were left out",
            file=sys.stderr,
        )
    if metrics.get("matched_by_synonym"):
        pairs = ", ".join(f"{data} as {model}" for data, model in metrics["matched_by_synonym"].items())
        print(f"fer-core: the data's classes matched by synonym: {pairs}", file=sys.stderr)
    for ref in refs:
        warning = selection_warning(ref.name, ref.metrics, dataset, metrics["split"])
        if warning:
            print(f"fer-core: warning: {warning}", file=sys.stderr)
    if args.output:
        from fer_core.fileio import write_json_atomic

        write_json_atomic(args.output, metrics)
    if args.json:
        print_json(metrics)
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


def cmd_ensemble(args) -> int:
    from fer_core.data import load_dataset
    from fer_core.evaluation.ensemble import ensemble_file, write_ensemble_record

    dataset = load_dataset(args.data)
    warn_report(dataset)
    record = write_ensemble_record(dataset, split=args.split)
    members = "+".join(m["name"] for m in record["members"])
    print(
        f"ensemble {members} on {record['split']} ({record['n']} images): accuracy {record['accuracy']:.4f}, "
        f"flip TTA {record['with_tta']['accuracy']:.4f}, flip+zoom TTA {record['with_flip_zoom']['accuracy']:.4f} "
        f"-> {ensemble_file()}"
    )
    return 0


def cmd_review(args) -> int:
    from fer_core.evaluation.label_review import review
    from fer_core.fileio import write_atomic

    if args.top is not None and args.top < 0:
        raise FerError(f"--top must be 0 or more. Received: {args.top}")
    suspects = review(args.crossval_dir)
    found = len(suspects)
    if args.top is not None:
        suspects = suspects.head(args.top)
    if args.csv:
        write_atomic(Path(args.csv), lambda temporary: suspects.to_csv(temporary, index=False))
    if args.json:
        print_json(suspects.to_dict(orient="records"))
        return 0
    for row in suspects.head(20 if args.top is None else args.top).itertuples():
        print(
            f"{row.rank:>4}  {row.path}: given {row.given} ({row.quality:.0%}), "
            f"suggested {row.suggested} ({row.suggested_probability:.0%})"
        )
    shown = f"; the {len(suspects)} most doubted" if len(suspects) < found else ""
    print(f"{found} suspect labels{shown}" + (f"; written: {args.csv}" if args.csv else ""))
    return 0
