"""Does turning a face so its eyes are level (`fer_core.inference.faces.ALIGN_EYES`) help?

    python tools/alignment_check.py --data ../shared/fer2013 [--model vgg_fer] [--count 700] [--detector NAME]

PublicTest faces are enlarged into a larger canvas and turned by ±15 and ±30 degrees; the detector
(the default one unless named) finds each (its eye landmarks give the turn back) and the model
classifies the crop as found and the crop turned upright. Prints the accuracy of both, and of the original faces, on the faces
found in every case. The decision it informs is recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse

import numpy as np

TURNS = (-30, -15, 15, 30)
FACE_SIDE, CANVAS = 144, 320


def turned_scene(face: np.ndarray, turn: float) -> np.ndarray:
    """The face enlarged at the centre of a canvas continuing its edges, all turned by `turn`."""
    import cv2

    big = cv2.resize(face, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_CUBIC)
    pad = (CANVAS - FACE_SIDE) // 2
    canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    matrix = cv2.getRotationMatrix2D((CANVAS / 2, CANVAS / 2), turn, 1.0)
    return cv2.warpAffine(canvas, matrix, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default=None, help="a trained model (default: the best)")
    parser.add_argument("--count", type=int, default=700, help="PublicTest faces, the first of each class in turn")
    parser.add_argument("--detector", default=None, help="a face detector with eyes (default: the default one)")
    args = parser.parse_args(argv)

    from fer_core.artifacts import load_model, resolve_model
    from fer_core.catalog import default_or_error
    from fer_core.data import load_dataset
    from fer_core.inference import DEFAULT_DETECTOR, Classifier, crop_face, make_detector

    dataset = load_dataset(args.data)
    chosen = np.flatnonzero(dataset.splits == "PublicTest")[: args.count]
    ref = resolve_model(args.model) if args.model else default_or_error()
    classify = Classifier(load_model(ref))
    detector = make_detector(args.detector or DEFAULT_DETECTOR)
    upright, level, original, labels = [], [], [], []
    for index in chosen:
        face = dataset.images[index]
        for turn in TURNS:
            scene = turned_scene(face, turn)
            found = detector.detect(scene, min_face=40)
            if not found:
                continue
            best = found[0]
            upright.append(crop_face(scene, best.box))
            level.append(crop_face(scene, best.box, best.eyes))
            original.append(face)
            labels.append(int(dataset.labels[index]))
    labels = np.array(labels)
    found_share = len(labels) / (len(chosen) * len(TURNS))
    for name, crops in (
        ("original faces (not turned)", original),
        ("turned, as found", upright),
        ("turned, eyes levelled", level),
    ):
        accuracy = float((classify(np.stack(crops)).argmax(axis=1) == labels).mean())
        print(f"{name:<30} accuracy {accuracy:.4f}")
    print(
        f"faces found: {len(labels)} of {len(chosen) * len(TURNS)} ({found_share:.0%}); model {ref.name}, {detector.name}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
