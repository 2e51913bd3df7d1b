"""What should a face cut by the picture's edge be completed with before it is classified?

    python tools/cut_face_check.py --data ../shared/fer2013 [--model vgg_fer] [--count 1000]

PublicTest faces are cut as the edge of a picture would cut them: a quarter, then a half of the
face taken away from the left, right, top or bottom. The visible part is completed to the
face's whole box by each fill of `fer_core.inference.faces.CUT_FILLS` (or, "stretch", resized
alone) and classified; prints the accuracy of each fill per cut, and of the uncut faces. The
choice it informs (`CUT_FILL`) is recorded in docs/performance.md.
"""

from __future__ import annotations

import argparse

import numpy as np

SHARES = (0.25, 0.5)
SIDES = ("left", "right", "top", "bottom")


def cut(face: np.ndarray, side: str, share: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The part of `face` the picture still shows, and what is missing (left, top, right, bottom)."""
    size = face.shape[0]
    gone = round(size * share)
    if side == "left":
        return face[:, gone:], (gone, 0, 0, 0)
    if side == "right":
        return face[:, : size - gone], (0, 0, gone, 0)
    if side == "top":
        return face[gone:], (0, gone, 0, 0)
    return face[: size - gone], (0, 0, 0, gone)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default=None, help="a trained model (default: the best)")
    parser.add_argument("--count", type=int, default=1000, help="the first PublicTest faces")
    args = parser.parse_args(argv)

    from fer_core.artifacts import load_model, resolve_model
    from fer_core.catalog import default_or_error
    from fer_core.data import load_dataset
    from fer_core.inference import Classifier
    from fer_core.inference.faces import CUT_FILLS, fill_outside, to_face

    dataset = load_dataset(args.data)
    chosen = np.flatnonzero(dataset.splits == "PublicTest")[: args.count]
    faces, labels = dataset.images[chosen], dataset.labels[chosen].astype(int)
    ref = resolve_model(args.model) if args.model else default_or_error()
    classify = Classifier(load_model(ref))

    def accuracy(crops) -> float:
        return float((classify(np.stack(crops)).argmax(axis=1) == labels).mean())

    print(f"{ref.name} on {len(chosen)} PublicTest faces; uncut: {accuracy(list(faces)):.4f}")
    print(f"{'cut':<18}" + "".join(f"{fill:>9}" for fill in CUT_FILLS))
    means = {fill: [] for fill in CUT_FILLS}
    for share in SHARES:
        for side in SIDES:
            row = []
            for fill in CUT_FILLS:
                crops = [to_face(fill_outside(*cut(face, side, share), fill)) for face in faces]
                row.append(accuracy(crops))
                means[fill].append(row[-1])
            print(f"{f'{share:.0%} off the {side}':<18}" + "".join(f"{value:>9.4f}" for value in row))
    print(f"{'mean':<18}" + "".join(f"{np.mean(values):>9.4f}" for values in means.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
