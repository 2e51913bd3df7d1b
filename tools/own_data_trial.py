"""Transfer against training from scratch on a small dataset with other classes, at the same minutes.

    .venv/bin/python tools/own_data_trial.py --data ../shared/fer2013 --out runs/own-data-trial \
        [--train-images 1000] [--test-images N] [--minutes 3] [--model vgg_fer] [--init vgg_fer] \
        [--recipes scratch,frozen,warm] [--seeds 1,2,3] [--crossval-folds 5]

The dataset: FER2013's PublicTest faces regrouped into three valence classes (negative: angry,
disgust, fear, sad; neutral; positive: happy, surprise), written as an image folder with `train/`
(a seeded, stratified `--train-images`) and `test/` (the rest). The shipped models never trained
on PublicTest and never picked an epoch on it, so a transfer from them starts from no knowledge of
these faces. Every run is a plain `fer-core train` command (printed), each with `--minutes`.
The recipes: `scratch` (no start); `frozen` keeps the FER2013 model's body, builds a 3-class head,
trains the head alone for `--freeze-epochs 2`, then every layer at a tenth of the rate; `warm`
keeps the body and a new head as well, every layer at the full rate from the first step. Each
recipe runs once per `--seeds` (the training seed; the dataset is the same), and the report gives
each run and the mean and standard deviation (ddof 1) per recipe. `--test-images N` reports on a
seeded, stratified N of the held-out faces (quicker final evaluations). With `--crossval-folds`, a
`fer-core crossval` of the transfer on the training images alone follows, timed. With
`--load-check`, FER2013's training folder is loaded (no cache) as itself and as a dataset of other
classes (the same files linked under renamed class folders), timed. Prints one JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VALENCE = {"angry": "negative", "disgust": "negative", "fear": "negative", "sad": "negative"}
VALENCE.update({"happy": "positive", "surprise": "positive", "neutral": "neutral"})


def build(data: Path, out: Path, train_images: int, test_images: int | None = None, seed: int = 7) -> Path:
    from sklearn.model_selection import train_test_split

    files = sorted(p for p in (data / "test").glob("*/*") if p.parent.name in VALENCE)
    labels = [VALENCE[p.parent.name] for p in files]
    train, test = train_test_split(files, train_size=train_images, random_state=seed, stratify=labels)
    if test_images:
        test_labels = [VALENCE[p.parent.name] for p in test]
        test, _ = train_test_split(test, train_size=test_images, random_state=seed, stratify=test_labels)
    root = out / "valence"
    shutil.rmtree(root, ignore_errors=True)
    for split, chosen in (("train", train), ("test", test)):
        for file in chosen:
            target = root / split / VALENCE[file.parent.name]
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(file, target / f"{file.parent.name}_{file.name}")
    (root / "train_all").mkdir()  # the training images alone, for the cross-validation
    for folder in (root / "train").iterdir():
        shutil.copytree(folder, root / "train_all" / folder.name)
    return root


def load_check(data: Path, out: Path) -> dict:
    """Seconds to load FER2013's training folder without the cache, as FER2013 and as a dataset of
    its own classes (every file linked under a renamed class folder: `happy` -> `joy`, ...)."""
    import os

    from fer_core.data import load_dataset

    renamed = out / "renamed" / "train"
    shutil.rmtree(renamed.parent, ignore_errors=True)
    for folder in sorted((data / "train").iterdir()):
        target = renamed / f"{folder.name}_own"
        target.mkdir(parents=True)
        for file in folder.iterdir():
            os.symlink(file.resolve(), target / file.name)
    timings = {}
    for name, root in (("fer2013", data / "train"), ("own_classes", renamed)):
        began = time.monotonic()
        dataset = load_dataset(root, use_cache=False)
        timings[name] = {
            "seconds": round(time.monotonic() - began, 1),
            "images": len(dataset),
            "classes": len(dataset.classes),
        }
    return timings


def fer_core(*args) -> tuple[float, str]:
    command = [sys.executable, "-m", "fer_core", *map(str, args)]
    print("$ fer-core " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    began = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr.strip().splitlines()[-1])
    return time.monotonic() - began, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--train-images", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--model", default="vgg_fer")
    parser.add_argument("--init", default="vgg_fer")
    parser.add_argument("--freeze-epochs", type=int, default=2)
    parser.add_argument("--test-images", type=int, default=None)
    parser.add_argument("--recipes", default="scratch,frozen")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--crossval-folds", type=int, default=0)
    parser.add_argument("--load-check", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    if args.load_check:
        print(json.dumps(load_check(Path(args.data), out), indent=2), flush=True)
        if args.skip_training:
            return 0
    root = build(Path(args.data), out, args.train_images, args.test_images)
    common = ["--model", args.model, "--data", root, "--minutes", args.minutes, "--epochs", 200, "--quiet"]
    report = {"dataset": str(root), "train_images": args.train_images, "minutes": args.minutes}
    recipes = {
        "scratch": [],
        "frozen": ["--init", args.init, "--freeze-epochs", args.freeze_epochs, "--lr", "0.001"],
        "warm": ["--init", args.init, "--lr", "0.001"],
    }
    for name in args.recipes.split(","):
        runs = []
        for seed in args.seeds.split(","):
            run = out / f"{name}-seed{seed}"
            shutil.rmtree(run, ignore_errors=True)
            seconds, _ = fer_core("train", *common, *recipes[name], "--seed", seed, "--run-dir", run)
            metrics = json.loads((run / "metrics.json").read_text())
            history = (run / "history.csv").read_text().strip().splitlines()
            runs.append(
                {
                    "seed": int(seed),
                    "seconds": round(seconds, 1),
                    "epochs": len(history) - 1,
                    "split": metrics["split"],
                    "n": metrics["n"],
                    "accuracy": round(metrics["accuracy"], 4),
                    "macro_f1": round(metrics["macro_f1"], 4),
                }
            )
            print(json.dumps({name: runs[-1]}), file=sys.stderr, flush=True)
        report[name] = {"runs": runs}
        for key in ("accuracy", "macro_f1"):
            values = np.array([r[key] for r in runs])
            spread = values.std(ddof=1) if len(values) > 1 else 0.0
            report[name][key] = {"mean": round(float(values.mean()), 4), "std": round(float(spread), 4)}
    if args.crossval_folds:
        cv = out / "crossval"
        shutil.rmtree(cv, ignore_errors=True)
        minutes = args.minutes * args.crossval_folds
        seconds, stdout = fer_core(
            "crossval",
            "--model",
            args.model,
            "--data",
            root / "train_all",
            "--folds",
            args.crossval_folds,
            "--init",
            args.init,
            "--freeze-epochs",
            args.freeze_epochs,
            "--minutes",
            minutes,
            "--epochs",
            200,
            "--out",
            cv,
            "--json",
        )
        result = json.loads(stdout)
        report["crossval"] = {
            "seconds": round(seconds, 1),
            "folds": args.crossval_folds,
            "accuracy": {k: round(v, 4) for k, v in result["accuracy"].items()},
            "macro_f1": {k: round(v, 4) for k, v in result["macro_f1"].items()},
            "pooled_accuracy": round(result["pooled"]["accuracy"], 4),
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
